import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { InternalNetworks } from '../../agent/flows/normalize.js';
import { parseCalicoLine } from '../../agent/flows/sources/calico.js';
import { networkAccess } from '../../aggregator/compute/network-access.js';
import {
  configuredEvidence,
  networkAccessEvidence,
  snapshotConfigurationSource,
} from '../../aggregator/network-access/index.js';
import { loadClusterSnapshot, readClusterSnapshot } from '../../aggregator/snapshot/index.js';
import { packageRoot } from '../../common/package-root.js';
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
  t.same(row('shop/frontend')?.stagedPolicies, ['shop/knp.default.restrict-frontend-egress']);
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
