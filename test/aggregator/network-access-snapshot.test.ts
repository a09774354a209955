import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { InternalNetworks } from '../../agent/flows/normalize.js';
import { parseCalicoLine } from '../../agent/flows/sources/calico.js';
import { HubbleParser } from '../../agent/flows/sources/hubble.js';
import { networkAccess } from '../../aggregator/compute/network-access.js';
import {
  configuredEvidence,
  networkAccessEvidence,
  snapshotConfigurationSource,
} from '../../aggregator/network-access/index.js';
import { loadClusterSnapshot, readClusterSnapshot } from '../../aggregator/snapshot/index.js';
import { packageRoot } from '../../common/package-root.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';

/**
 * --cluster-snapshot: a directory of Kubernetes YAML as `kubectl get ... -A -o yaml` writes it (List documents of
 * items, several documents per file), read strictly; and the demo's snapshot (examples/flows/cluster) against the
 * Calico sample it ships with, expected answers worked out by hand from the YAML and examples/flows/EXPECTED.md.
 */

const root = packageRoot();

t.test('List documents and multi-document files are read; other kinds are counted and left out', async (t) => {
  const dir = tempDir(t);
  writeFileSync(
    join(dir, 'pods.yaml'),
    `apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Pod, metadata: {name: web-0, namespace: shop, labels: {app: web}}, spec: {serviceAccountName: web}}
  - {apiVersion: v1, kind: Pod, metadata: {name: node-exporter-x2k8p, namespace: monitoring}, spec: {hostNetwork: true}}
  - {apiVersion: apps/v1, kind: Deployment, metadata: {name: web, namespace: shop}}
`,
  );
  mkdirSync(join(dir, 'policies'));
  writeFileSync(
    join(dir, 'policies', 'all.yml'),
    `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec: {endpointSelector: {matchLabels: {app: web}}, ingress: [{fromEntities: [cluster]}]}
---
`,
  );
  writeFileSync(join(dir, 'README.txt'), 'not read');
  const { snapshot, problems } = readClusterSnapshot(dir);
  t.same(problems, []);
  t.equal(snapshot.files, 2);
  t.equal(snapshot.pods.length, 2);
  t.equal(snapshot.namespaces.length, 1);
  t.equal(snapshot.policies.length, 1);
  t.equal(snapshot.ignored, 1, 'the Deployment');
  const cfg = await snapshotConfigurationSource(snapshot).configuration(0, 1);
  t.same(
    cfg?.pods.map((p) => `${p.namespace}/${p.name}`),
    ['shop/web-0'],
    'a host-network pod is the node, not an endpoint',
  );
  const web = cfg && configuredEvidence(cfg, 0, 1).endpoints.get('shop/web');
  t.equal(web?.ingressProtected, true, 'a CNP with ingress rules applies');
  t.equal(web?.ingressFromInternet, false, 'entity cluster is not the internet');
});

t.test('strict: every unusable document is a counted problem naming its file and place', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'bad.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: {name: a\n');
  writeFileSync(
    join(dir, 'list.yaml'),
    `apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Pod, metadata: {name: no-namespace}}
  - 42
  - {kind: Pod, metadata: {name: b, namespace: x}}
---
- just a list
---
kind: PodList
`,
  );
  writeFileSync(join(dir, 'pretty.json'), '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ok"}}');
  const { snapshot, problems } = readClusterSnapshot(dir);
  t.same(
    problems.map((p) => [p.file, p.document]),
    [
      ['bad.yaml', 1],
      ['list.yaml', 1],
      ['list.yaml', 1],
      ['list.yaml', 1],
      ['list.yaml', 2],
      ['list.yaml', 3],
    ],
  );
  t.match(problems[1]?.reason, /items\[0\]: Pod no-namespace: metadata.namespace is missing/);
  t.match(problems[2]?.reason, /items\[1\]: not an object/);
  t.match(problems[3]?.reason, /apiVersion is missing/);
  t.match(problems[5]?.reason, /PodList without an items list/);
  t.equal(snapshot.namespaces.length, 1, 'JSON files are read too');
  t.throws(() => loadClusterSnapshot(dir), {
    code: 'VERDICT_CONFIG_INVALID',
    message: /6 document\(s\) cannot be used: bad.yaml document 1: not valid YAML/,
  });
  t.throws(() => loadClusterSnapshot(tempDir(t)), { code: 'VERDICT_CONFIG_INVALID', message: /no .yaml/ });
});

t.test('the demo snapshot against the Calico sample: configured and observed evidence, and a finding', async (t) => {
  const snapshot = loadClusterSnapshot(join(root, 'examples', 'flows', 'cluster'));
  const cfg = await snapshotConfigurationSource(snapshot).configuration(0, 1);
  const internal = new InternalNetworks();
  const flows = readFileSync(join(root, 'examples', 'flows', 'calico', 'flows.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => {
      const r = parseCalicoLine(l, internal);
      return r.kind === 'flow' ? [r.flow] : [];
    });
  const ev = networkAccessEvidence(networkAccess(flows), cfg && configuredEvidence(cfg, 0, 1));
  t.same(ev.configuration, { source: `snapshot ${join(root, 'examples', 'flows', 'cluster')}`, problems: [] });
  const row = (id: string) => ev.endpoints.find((e) => e.endpoint === id);
  // Ingress: frontend-ingress (0.0.0.0/0: internet), cart-ingress, checkout-policy, payments-isolation + api-allow,
  // allow-dns select them; prometheus none. Egress: security.allow-kube-dns (types Egress, selector all()) applies to
  // every pod, so all are egress protected; its Pass sends the rest to the default tier, where only checkout has an
  // egress policy (internet on 443, payments, cart); the others fall to the profile: internet and every namespace.
  const pick = (id: string) => {
    const r = row(id);
    return (
      r && [
        r.evidence,
        r.ingressProtected,
        r.egressProtected,
        r.ingressFromInternet,
        r.egressToInternet,
        r.ingressFromOtherNamespaces,
        r.egressToOtherNamespaces,
      ]
    );
  };
  t.same(pick('shop/frontend'), ['configured', true, true, true, true, false, true]);
  t.same(pick('shop/cart'), ['configured', true, true, false, true, false, true]);
  t.same(pick('shop/checkout'), ['configured', true, true, false, true, false, true]);
  t.same(pick('payments/api'), ['configured', true, true, false, true, true, true]);
  t.same(pick('kube-system/coredns'), ['configured', true, true, false, true, true, true]);
  t.same(pick('monitoring/prometheus-k8s'), ['configured', false, true, true, true, true, true]);
  t.same(
    row('shop/checkout')?.configured?.egressNamespaces,
    ['kube-system', 'payments'],
    'DNS in kube-system, payments',
  );
  t.equal(row('shop/checkout')?.envoyEnabled, true, 'an istio-proxy container');
  t.same(row('shop/frontend')?.stagedPolicies, ['shop/restrict-frontend-egress']);
  t.same(row('payments/api')?.appliedPolicies, [
    'payments/api-allow',
    'payments/security.payments-isolation',
    'security.allow-kube-dns',
  ]);
  // The findings, by hand:
  // - allow-dns selects CoreDNS for ingress, yet the sample's 118 allowed connections to it were decided by the
  //   kube-system profile (EXPECTED.md: "Only the namespace profile decided its ingress").
  // - security.allow-kube-dns applies to every pod's egress (Calico: protected), but its last rule passes and no
  //   default-tier policy selects prometheus', cart's or frontend's egress: the profile decided 13, 15 and 128
  //   allowed connections (EXPECTED.md's profile-decided egress of those three).
  // - payments-isolation passes only shop and payments to the next tier, yet monitoring reached payments/api.
  t.same(
    ev.findings.map((f) => [f.endpoint, f.direction, f.kind, f.connections]),
    [
      ['kube-system/coredns', 'ingress', 'protected-but-unprotected-traffic', 118],
      ['monitoring/prometheus-k8s', 'egress', 'protected-but-unprotected-traffic', 13],
      ['payments/api', 'ingress', 'namespace-traffic-not-configured', 0],
      ['shop/cart', 'egress', 'protected-but-unprotected-traffic', 15],
      ['shop/frontend', 'egress', 'protected-but-unprotected-traffic', 128],
    ],
  );
  t.match(ev.findings[2]?.detail, /namespace\(s\) monitoring, which no rule in force allows/);
});

t.test('the Hubble sample with Cilium policies: configured and observed evidence, and two findings', async (t) => {
  // Cilium policies for the Hubble sample's pods (cilium.io/v2, as `kubectl get cnp,ccnp -A -o yaml` prints them).
  // Semantics: docs.cilium.io "Policy Enforcement Modes" (selected in a direction: default-deny there), "Layer 3
  // Examples" (fromEntities world, toFQDNs, endpoint selectors in a CNP limited to its namespace unless they name
  // k8s:io.kubernetes.pod.namespace), "Deny Policies" (deny wins).
  const dir = tempDir(t);
  writeFileSync(
    join(dir, 'cluster.yaml'),
    `apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: Namespace, metadata: {name: shop}}
  - {apiVersion: v1, kind: Namespace, metadata: {name: payments}}
  - {apiVersion: v1, kind: Namespace, metadata: {name: kube-system}}
  - {apiVersion: v1, kind: Namespace, metadata: {name: monitoring}}
  - {apiVersion: v1, kind: Pod, metadata: {name: frontend-7d9f8b6c5d-x2v9k, namespace: shop, labels: {app: frontend}}}
  - {apiVersion: v1, kind: Pod, metadata: {name: cart-5b7c9d8f4-q8w2z, namespace: shop, labels: {app: cart}}}
  - {apiVersion: v1, kind: Pod, metadata: {name: checkout-6c8d7f9b5-k2p7m, namespace: shop, labels: {app: checkout}}}
  - {apiVersion: v1, kind: Pod, metadata: {name: api-84f6d9c7b-t4n9v, namespace: payments, labels: {app: payments-api}}}
  - {apiVersion: v1, kind: Pod, metadata: {name: coredns-5d78c9869d-h7r2x, namespace: kube-system, labels: {k8s-app: kube-dns}}}
  - {apiVersion: v1, kind: Pod, metadata: {name: prometheus-k8s-0, namespace: monitoring, labels: {app.kubernetes.io/name: prometheus}}}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: frontend-ingress, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  ingress: [{fromEntities: [world], toPorts: [{ports: [{port: "8080", protocol: TCP}]}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cart, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: cart}}
  ingress: [{fromEndpoints: [{matchLabels: {app: frontend}}]}]
  egress: [{toEndpoints: [{matchLabels: {app: checkout}}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: checkout, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: checkout}}
  ingress: [{fromEndpoints: [{matchLabels: {app: frontend}}, {matchLabels: {app: cart}}]}]
  egress:
    - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: payments}}]
    - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}}]
    - toFQDNs: [{matchName: api.stripe.com}]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: payments-api}
spec:
  endpointSelector: {matchLabels: {k8s:io.kubernetes.pod.namespace: payments, app: payments-api}}
  ingress: [{fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: shop}}]}]
  ingressDeny: [{fromEntities: [world]}]
`,
  );
  const cfg = await snapshotConfigurationSource(loadClusterSnapshot(dir)).configuration(0, 1);
  const parser = new HubbleParser(new InternalNetworks());
  const results = readFileSync(join(root, 'examples', 'flows', 'hubble', 'flows.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => parser.line(l));
  const flows = [...results.flatMap((r) => (r.kind === 'flow' ? [r.flow] : [])), ...parser.flush()];
  const ev = networkAccessEvidence(networkAccess(flows), cfg && configuredEvidence(cfg, 0, 1));
  const pick = (id: string) => {
    const r = ev.endpoints.find((e) => e.endpoint === id);
    return (
      r && [
        r.ingressProtected,
        r.egressProtected,
        r.ingressFromInternet,
        r.egressToInternet,
        r.ingressFromOtherNamespaces,
        r.egressToOtherNamespaces,
      ]
    );
  };
  // [ingressProtected, egressProtected, fromInternet, toInternet, fromOtherNs, toOtherNs], by hand from the YAML:
  t.same(pick('shop/frontend'), [true, false, true, true, false, true], 'world on 8080; no egress policy');
  t.same(pick('shop/cart'), [true, true, false, false, false, false], 'frontend in, checkout out, nothing else');
  t.same(pick('shop/checkout'), [true, true, false, true, false, true], 'toFQDNs is some internet; payments, DNS');
  t.same(pick('payments/api'), [true, false, false, true, true, true], 'shop in, world denied; no egress policy');
  t.same(pick('kube-system/coredns'), [false, false, true, true, true, true], 'no policy: everything allowed');
  t.same(pick('monitoring/prometheus-k8s'), [false, false, true, true, true, true], 'no policy');
  // Observed (EXPECTED.md, Hubble): cart's H27 forwarded to world; api accepted prometheus from monitoring. Trace
  // events that carry no verdict (H6, H10, H16, H20, H27) are no evidence of unprotected traffic.
  t.same(
    ev.findings.map((f) => [f.endpoint, f.direction, f.kind, f.connections]),
    [
      ['payments/api', 'ingress', 'namespace-traffic-not-configured', 0],
      ['shop/cart', 'egress', 'internet-traffic-not-configured', 1],
    ],
  );
});

t.test(
  'the aggregator with --cluster-snapshot: configured evidence and findings over HTTP; a bad one stops the start',
  async (t) => {
    const dir = join(root, 'examples', 'flows', 'cluster');
    const agg = await startTestAggregator(t, { clusterSnapshotDir: dir });
    const base = `http://127.0.0.1:${agg.httpPort}`;
    // No flows stored: every endpoint is the configuration's, and nothing disagrees.
    const access = (await (await fetch(`${base}/api/v1/network-access?namespace=shop`)).json()) as {
      configuration: { source: string };
      endpoints: { endpoint: string; evidence: string; ingressProtected: boolean; observed: unknown }[];
    };
    t.equal(access.configuration.source, `snapshot ${dir}`);
    t.same(
      access.endpoints.map((e) => [e.endpoint, e.evidence, e.ingressProtected, e.observed]),
      [
        ['shop/cart', 'configured', true, null],
        ['shop/checkout', 'configured', true, null],
        ['shop/frontend', 'configured', true, null],
      ],
    );
    const findings = (await (await fetch(`${base}/api/v1/network-access/findings`)).json()) as { items: unknown[] };
    t.same(findings.items, []);

    const bad = tempDir(t);
    writeFileSync(join(bad, 'p.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n');
    await t.rejects(startTestAggregator(t, { clusterSnapshotDir: bad }), {
      code: 'VERDICT_CONFIG_INVALID',
      message:
        /--cluster-snapshot .*1 document\(s\) cannot be used: p.yaml document 1: Pod x: metadata.namespace is missing/,
    });
  },
);
