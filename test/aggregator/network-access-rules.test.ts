import t from 'tap';
import { parseAllDocuments } from 'yaml';
import {
  configuredEvidence,
  type ClusterConfiguration,
  type ConfiguredEndpoint,
} from '../../aggregator/network-access/index.js';
import type { ClusterPod } from '../../aggregator/network-access/configured.js';

/**
 * Rule semantics of configured network access (issue 15): Calico network sets behind selectors, global(), ports and
 * L7, partial Pass rules, host endpoints, and Cilium's L4-only rules, entities, CIDR sets and deny policies. Each
 * policy sample is an upstream documentation example (cited next to it, changed only where the comment says), and
 * each expected flag is worked out by hand in the comment before it, from the definitions in Calico's
 * compliance-reports overview (tigera/docs calico-enterprise/reference/resources/compliance-reports/overview.mdx):
 * an endpoint is protected if a policy with rules in that direction applies to it; it "allows ingress traffic from
 * the internet" if an allow rule applying to it has no source selector or CIDR, a non-private source CIDR, or "a
 * source selector that matches one or more NetworkSets that contain at least one non-private IP".
 */

const T0 = Date.UTC(2026, 10, 20, 10, 0, 0);
const HOUR = 3_600_000;

/** Objects from YAML text, as `kubectl get -o yaml` or the docs write them. */
function objects(text: string): Record<string, unknown>[] {
  return parseAllDocuments(text).map((d) => d.toJS() as Record<string, unknown>);
}

function pod(namespace: string, name: string, labels: Record<string, string>): ClusterPod {
  return { namespace, name, labels, serviceAccount: 'default', envoy: false };
}

function evaluate(
  yamlText: string,
  pods: ClusterPod[],
  namespaces: string[],
  internalCidrs: string[] = [],
): { endpoints: Map<string, ConfiguredEndpoint>; problems: string[] } {
  const cfg: ClusterConfiguration = {
    source: 'test',
    namespaces: namespaces.map((name) => ({ name, labels: {} })),
    pods,
    policies: objects(yamlText).map((object) => ({ fromMs: -Infinity, toMs: Infinity, object })),
  };
  const ev = configuredEvidence(cfg, T0, T0 + HOUR, { internalCidrs });
  return { endpoints: ev.endpoints, problems: ev.problems };
}

function row(ev: { endpoints: Map<string, ConfiguredEndpoint> }, endpoint: string): ConfiguredEndpoint {
  const r = ev.endpoints.get(endpoint);
  if (!r) throw new Error(`no endpoint ${endpoint}: ${[...ev.endpoints.keys()].join(', ')}`);
  return r;
}

/** The flags of one endpoint, in one object, so a case states all of them. */
function flags(e: ConfiguredEndpoint) {
  return {
    ingressProtected: e.ingressProtected,
    egressProtected: e.egressProtected,
    ingressFromInternet: e.ingressFromInternet,
    egressToInternet: e.egressToInternet,
    ingressNamespaces: e.ingressNamespaces,
    egressNamespaces: e.egressNamespaces,
  };
}

// ------------------------------------------------------------------------------------------------ network sets

// Calico "Global network set" reference, Sample YAML
// (https://docs.tigera.io/calico/latest/reference/resources/globalnetworkset): documentation ranges 198.51.100.0/28
// and 203.0.113.0/24, public address space.
const GLOBAL_SET_SAMPLE = `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: a-name-for-the-set
  labels:
    role: external-database
spec:
  nets:
  - 198.51.100.0/28
  - 203.0.113.0/24
`;

t.test('a GlobalNetworkSet behind an egress selector is the internet unless its nets are internal', async (t) => {
  // A GlobalNetworkPolicy (the only kind a GlobalNetworkSet is visible to without global()) lets app=api reach the
  // set. Its nets are public: some of the internet → egressToInternet true. A GNP's selector also names pods of
  // every namespace carrying the label, so egress to other namespaces is allowed too (the overview: a
  // GlobalNetworkPolicy rule with no destination CIDR allows another namespace). Ingress: no ingress policy.
  const policy = `${GLOBAL_SET_SAMPLE}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: api-to-db}
spec:
  selector: app == 'api'
  types: [Egress]
  egress:
  - action: Allow
    destination:
      selector: role == 'external-database'
`;
  const pods = [pod('shop', 'api-7d9f8b6c5d-x2k8p', { app: 'api' })];
  const ev = evaluate(policy, pods, ['shop', 'payments']);
  t.same(flags(row(ev, 'shop/api')), {
    ingressProtected: false,
    egressProtected: true,
    ingressFromInternet: true,
    egressToInternet: true,
    ingressNamespaces: ['payments'],
    egressNamespaces: ['payments'],
  });
  // --internal-cidr naming both ranges makes the set internal: no internet any more.
  const inside = evaluate(policy, pods, ['shop', 'payments'], ['198.51.100.0/24', '203.0.113.0/24']);
  t.equal(row(inside, 'shop/api').egressToInternet, false, 'the set is inside --internal-cidr');
  // With no set matching the selector, the rule names pods only.
  const noSet = evaluate(policy.replace(GLOBAL_SET_SAMPLE, ''), pods, ['shop', 'payments']);
  t.equal(row(noSet, 'shop/api').egressToInternet, false, 'a selector matching no network set is not the internet');
});

t.test('a source selector matching a 0.0.0.0/0 GlobalNetworkSet allows (or denies) the whole internet', async (t) => {
  // The case: source selector role == 'external' matching a GlobalNetworkSet with nets 0.0.0.0/0. As an
  // Allow: ingressFromInternet; the GNP's selector also names role=external pods of every namespace, so "other" is
  // allowed in too. As a Deny before an allow-all, the whole internet is denied (the set covers all of it), other
  // namespaces still allowed by the allow-all (the deny covers only their role=external pods).
  const set = `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: everything, labels: {role: external}}
spec: {nets: [0.0.0.0/0]}
`;
  const allow = `${set}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: from-external}
spec:
  selector: app == 'web'
  ingress:
  - action: Allow
    source: {selector: role == 'external'}
`;
  const pods = [pod('web', 'web-0', { app: 'web' })];
  t.same(flags(row(evaluate(allow, pods, ['web', 'other']), 'web/web')), {
    ingressProtected: true,
    egressProtected: false,
    ingressFromInternet: true,
    egressToInternet: true,
    ingressNamespaces: ['other'],
    egressNamespaces: ['other'],
  });
  const deny = `${set}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: no-external}
spec:
  selector: app == 'web'
  ingress:
  - action: Deny
    source: {selector: role == 'external'}
  - action: Allow
`;
  const d = row(evaluate(deny, pods, ['web', 'other']), 'web/web');
  t.equal(d.ingressFromInternet, false, 'the set covers the whole internet: denied before the allow-all');
  t.same(d.ingressNamespaces, ['other'], 'pods of other namespaces reach the allow-all (no pod has role=external)');
});

// Calico "Network set" reference, Sample YAML (https://docs.tigera.io/calico/latest/reference/resources/networkset),
// and the same set with in-cluster nets beside it (ours: 10.0.5.0/24, a private range).
const NETWORK_SET_SAMPLES = `
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata:
  name: external-database
  namespace: staging
  labels:
    role: db
spec:
  nets:
  - 198.51.100.0/28
  - 203.0.113.0/24
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata:
  name: in-cluster-database
  namespace: staging
  labels:
    role: db-internal
spec:
  nets:
  - 10.0.5.0/24
`;

t.test(
  "a namespaced NetworkSet is the internet only if its nets are, and only for its namespace's policies",
  async (t) => {
    // Three NetworkPolicies: staging/to-db (role == 'db': public nets → internet), staging/to-internal-db
    // (role == 'db-internal': 10.0.5.0/24 → not the internet), prod/to-db (role == 'db' in prod: "A NetworkSet in a
    // specific namespace only applies to network policies in that namespace" → matches nothing → not the internet).
    const text = `${NETWORK_SET_SAMPLES}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: to-db, namespace: staging}
spec:
  selector: app == 'api'
  types: [Egress]
  egress: [{action: Allow, destination: {selector: role == 'db'}}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: to-internal-db, namespace: staging}
spec:
  selector: app == 'worker'
  types: [Egress]
  egress: [{action: Allow, destination: {selector: role == 'db-internal'}}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: to-db, namespace: prod}
spec:
  selector: app == 'api'
  types: [Egress]
  egress: [{action: Allow, destination: {selector: role == 'db'}}]
`;
    const ev = evaluate(
      text,
      [
        pod('staging', 'api-0', { app: 'api' }),
        pod('staging', 'worker-0', { app: 'worker' }),
        pod('prod', 'api-0', { app: 'api' }),
      ],
      ['staging', 'prod'],
    );
    t.equal(row(ev, 'staging/api').egressToInternet, true, 'external-database: public nets');
    t.equal(row(ev, 'staging/worker').egressToInternet, false, 'in-cluster-database: 10.0.5.0/24 is in-cluster');
    t.equal(row(ev, 'prod/api').egressToInternet, false, "staging's sets are not visible to prod's policies");
    t.same(row(ev, 'staging/api').egressNamespaces, [], 'a selector alone stays in the policy namespace');
  },
);

t.test('global() in a namespaceSelector names non-namespaced resources, never a namespace', async (t) => {
  // Calico "Global network set" reference: a NetworkPolicy rule "whose namespaceSelector includes global()" sees
  // GlobalNetworkSets. staging/allow-global allows ingress from `namespaceSelector: global()` only: the global
  // sets' nets (0.0.0.0/0 here) → ingressFromInternet; no namespace matches global() → no other namespace.
  const text = `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: everything, labels: {role: external}}
spec: {nets: [0.0.0.0/0]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: allow-global, namespace: staging}
spec:
  selector: all()
  types: [Ingress]
  ingress: [{action: Allow, source: {namespaceSelector: global()}}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: allow-external, namespace: prod}
spec:
  selector: all()
  types: [Ingress]
  ingress: [{action: Allow, source: {selector: role == 'external'}}]
`;
  const ev = evaluate(text, [pod('staging', 'web-0', {}), pod('prod', 'web-0', {})], ['staging', 'prod', 'dev']);
  t.same(flags(row(ev, 'staging/web')), {
    ingressProtected: true,
    egressProtected: false,
    ingressFromInternet: true,
    egressToInternet: true,
    ingressNamespaces: [],
    egressNamespaces: ['dev', 'prod'],
  });
  // Without global(), a NetworkPolicy's selector does not reach GlobalNetworkSets ("can be selected only by Calico
  // global network policies", Calico "Use external IPs or networks rules in policy").
  t.equal(row(ev, 'prod/web').ingressFromInternet, false, 'a NetworkPolicy selector alone sees no global set');
});

t.test("Calico's ip-protect deny-list example: a partial deny leaves the internet allowed", async (t) => {
  // Calico "Use external IPs or networks rules in policy", "Limit traffic to or from external networks, global
  // network set" (https://docs.tigera.io/calico/latest/network-policy/policy-rules/external-ips-policy): the
  // GlobalNetworkSet and both GlobalNetworkPolicies verbatim. Added: a NetworkSet in staging with the deny-list label
  // and 0.0.0.0/0, which the example's `!has(projectcalico.org/namespace)` keeps out of the deny rule.
  // Hand-derived for a pod labelled apply-ip-protect=true: ip-protect (order 0) denies the set's two ranges, some of
  // the internet; forward-default-allow (order 1000) allows everything else → ingress protected, ingress from the
  // internet and from every other namespace allowed. Egress: no policy.
  const text = `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: ip-protect
  labels:
    ip-deny-list: 'true'
spec:
  nets:
    - 192.0.2.55/32
    - 203.0.113.0/24
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: forward-default-allow
spec:
  selector: apply-ip-protect == 'true'
  order: 1000
  doNotTrack: true
  applyOnForward: true
  types:
    - Ingress
  ingress:
    - action: Allow
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: ip-protect
spec:
  selector: apply-ip-protect == 'true'
  order: 0
  doNotTrack: true
  applyOnForward: true
  types:
    - Ingress
  ingress:
    - action: Deny
      source:
        selector: ip-deny-list == 'true' && !has(projectcalico.org/namespace)
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: not-this-one, namespace: staging, labels: {ip-deny-list: 'true'}}
spec: {nets: [0.0.0.0/0]}
`;
  const ev = evaluate(text, [pod('edge', 'gateway-0', { 'apply-ip-protect': 'true' })], ['edge', 'staging']);
  t.same(flags(row(ev, 'edge/gateway')), {
    ingressProtected: true,
    egressProtected: false,
    ingressFromInternet: true,
    egressToInternet: true,
    ingressNamespaces: ['staging'],
    egressNamespaces: ['staging'],
  });
  t.same(row(ev, 'edge/gateway').appliedPolicies, ['forward-default-allow', 'ip-protect']);
  // The same deny with the namespace term removed matches the staging set too (0.0.0.0/0): the whole internet is
  // denied before the allow.
  const all = evaluate(
    text.replace(' && !has(projectcalico.org/namespace)', ''),
    [pod('edge', 'gateway-0', { 'apply-ip-protect': 'true' })],
    ['edge', 'staging'],
  );
  t.equal(row(all, 'edge/gateway').ingressFromInternet, false, 'a matched 0.0.0.0/0 set denies the whole internet');
});

// ------------------------------------------------------------------------------------------------ ports and L7

t.test(
  'ports narrow what a rule allows, not whom: an allow on one port allows, a deny on one port decides nothing',
  async (t) => {
    // Calico "automatic labels" (https://docs.tigera.io/calico/latest/network-policy/get-started/calico-policy/
    // calico-labels), the foo-and-bar GlobalNetworkPolicy verbatim: color=red pods in foo and bar accept port 8080
    // from namespace baz. Hand-derived for foo/red: ingress protected; from baz only (on one port: still "allows
    // ingress traffic from another namespace"); not from the internet (a namespaceSelector names pods).
    const fooAndBar = `
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: foo-and-bar
spec:
  namespaceSelector: projectcalico.org/name in {"foo", "bar"}
  selector: color == "red"
  types:
  - Ingress
  ingress:
  - action: Allow
    source:
      namespaceSelector: projectcalico.org/name == "baz"
    destination:
      ports:
      - 8080
`;
    const ev = evaluate(fooAndBar, [pod('foo', 'red-0', { color: 'red' })], ['foo', 'bar', 'baz']);
    t.same(flags(row(ev, 'foo/red')), {
      ingressProtected: true,
      egressProtected: false,
      ingressFromInternet: false,
      egressToInternet: true,
      ingressNamespaces: ['baz'],
      egressNamespaces: ['bar', 'baz'],
    });
    // A Deny on port 22 from anywhere, then an Allow from anywhere (the Calico NetworkPolicy reference's Rule fields
    // protocol and destination.ports): the deny covers part of every class, so the allow still lets the internet in.
    // An HTTP match (Rule.http, Calico's application-layer rule) narrows the same way.
    const denySsh = `
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: no-ssh, namespace: foo}
spec:
  selector: all()
  ingress:
  - action: Deny
    protocol: TCP
    destination: {ports: [22]}
  - action: Deny
    http: {methods: [DELETE]}
  - action: Allow
`;
    const d = row(evaluate(denySsh, [pod('foo', 'red-0', { color: 'red' })], ['foo', 'baz']), 'foo/red');
    t.equal(d.ingressFromInternet, true, 'a deny on one port leaves the other ports to the allow');
    t.same(d.ingressNamespaces, ['baz']);
    // Without the port the same deny takes everything.
    const denyAll = denySsh
      .replace('    protocol: TCP\n    destination: {ports: [22]}\n', '')
      .replace('  - action: Deny\n    http: {methods: [DELETE]}\n', '');
    const a = row(evaluate(denyAll, [pod('foo', 'red-0', { color: 'red' })], ['foo', 'baz']), 'foo/red');
    t.same([a.ingressFromInternet, a.ingressNamespaces], [false, []], 'a deny with no port decides the class');
  },
);

t.test('the Kubernetes NetworkPolicy reference example: ports, ipBlock except, namespaceSelector', async (t) => {
  // Kubernetes "Network Policies", the test-network-policy example verbatim
  // (https://kubernetes.io/docs/concepts/services-networking/network-policies/#networkpolicy-resource).
  // Hand-derived for default/db (role=db): ingress from 172.17.0.0/16 (private: not the internet), from namespaces
  // labelled project=myproject (myproject: another namespace) and from role=frontend pods of default, on TCP 6379;
  // egress to 10.0.0.0/24 only (private; an ipBlock names no namespace) on TCP 5978.
  const text = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
`;
  const cfg: ClusterConfiguration = {
    source: 'test',
    namespaces: [
      { name: 'default', labels: {} },
      { name: 'myproject', labels: { project: 'myproject' } },
      { name: 'other', labels: {} },
    ],
    pods: [pod('default', 'db-0', { role: 'db' })],
    policies: objects(text).map((object) => ({ fromMs: -Infinity, toMs: Infinity, object })),
  };
  t.same(flags(row(configuredEvidence(cfg, T0, T0 + HOUR), 'default/db')), {
    ingressProtected: true,
    egressProtected: true,
    ingressFromInternet: false,
    egressToInternet: false,
    ingressNamespaces: ['myproject'],
    egressNamespaces: [],
  });
});

// ------------------------------------------------------------------------------------------------ Pass

t.test('a Pass covering part of a class sends that part to the next tier', async (t) => {
  // Calico tiers ("Get started with policy tiers", https://docs.tigera.io/calico/latest/network-policy/
  // policy-tiers/tiered-policy): a Pass rule hands the packet to the next tier; a tier whose policies apply but do
  // not match ends in deny. The security tier passes checkout pods of shop (part of shop's pods: the selector needs
  // pod labels) and denies the rest; the default tier's Kubernetes policy allows every namespace. Hand-derived:
  // shop's checkout pods reach payments (passed, then allowed) → ingress from shop allowed; other namespaces are
  // denied by the security tier → only shop. Before this evaluation a partial Pass was skipped and the deny took
  // all of shop.
  const text = `
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: security.isolate, namespace: payments}
spec:
  tier: security
  selector: all()
  types: [Ingress]
  ingress:
  - action: Pass
    source:
      namespaceSelector: projectcalico.org/name == 'shop'
      selector: app == 'checkout'
  - action: Deny
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-namespaces, namespace: payments}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {}}]
`;
  const ev = evaluate(text, [pod('payments', 'api-0', { app: 'api' })], ['payments', 'shop', 'dev']);
  const r = row(ev, 'payments/api');
  t.same(r.ingressNamespaces, ['shop'], 'the passed part of shop is allowed by the next tier');
  t.equal(r.ingressFromInternet, false, 'the internet is not passed: denied by the security tier');
  // The same Pass when the next tier allows nothing from shop: still nothing.
  const closed = evaluate(
    text.replace('  - from: [{namespaceSelector: {}}]', '  - from: [{podSelector: {}}]'),
    [pod('payments', 'api-0', { app: 'api' })],
    ['payments', 'shop', 'dev'],
  );
  t.same(row(closed, 'payments/api').ingressNamespaces, [], 'passed, then not allowed by the next tier');
});

// ------------------------------------------------------------------------------------------------ Cilium

t.test('Cilium: L4-only rules, entities, CIDR sets with except, and deny policies', async (t) => {
  const docs = `
# Cilium "Layer 4 Policies", Limit ingress/egress ports (https://docs.cilium.io/en/latest/security/policy/layer4/),
# l4-rule verbatim: app=myService may send TCP to port 80 "to any layer 3 destination".
apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "l4-rule"
  namespace: shop
spec:
  endpointSelector:
    matchLabels:
      app: myService
  egress:
    - toPorts:
      - ports:
        - port: "80"
          protocol: TCP
---
# Cilium "Deny Policies" (https://docs.cilium.io/en/latest/security/policy/language/#deny-policies),
# external-lockdown verbatim: deny ingress from world, allow from all.
apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "external-lockdown"
  namespace: lockdown
spec:
  endpointSelector: {}
  ingressDeny:
  - fromEntities:
    - "world"
  ingress:
  - fromEntities:
    - "all"
---
# The same with the deny on port 22 only (ours): the rest of the world still gets in.
apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "ssh-lockdown"
  namespace: ssh
spec:
  endpointSelector: {}
  ingressDeny:
  - fromEntities:
    - "world"
    toPorts:
    - ports:
      - port: "22"
        protocol: TCP
  ingress:
  - fromEntities:
    - "all"
---
# Cilium "Layer 3 Policies", IP/CIDR based (https://docs.cilium.io/en/latest/security/policy/layer3/), cidr-rule
# verbatim: egress to 20.1.1.1/32 (public) and 10.0.0.0/8 except 10.96.0.0/12 (private).
apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "cidr-rule"
  namespace: cidr
spec:
  endpointSelector:
    matchLabels:
      app: myService
  egress:
  - toCIDR:
    - 20.1.1.1/32
  - toCIDRSet:
    - cidr: 10.0.0.0/8
      except:
      - 10.96.0.0/12
---
# Cilium "Layer 3 Policies", Entities based: host, remote-node, kube-apiserver and health are Cilium's reserved
# identities (ours: a policy naming all four): neither the internet nor a namespace's pods.
apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "infra-only"
  namespace: infra
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [host, remote-node, kube-apiserver, health]
  egress:
  - toEntities: [cluster]
`;
  const ev = evaluate(
    docs,
    [
      pod('shop', 'svc-0', { app: 'myService' }),
      pod('lockdown', 'web-0', {}),
      pod('ssh', 'web-0', {}),
      pod('cidr', 'svc-0', { app: 'myService' }),
      pod('infra', 'agent-0', {}),
    ],
    ['shop', 'lockdown', 'ssh', 'cidr', 'infra'],
  );
  const others = (ns: string) => ['cidr', 'infra', 'lockdown', 'shop', 'ssh'].filter((n) => n !== ns);
  // l4-rule: egress protected; port 80 to anywhere allows the internet and every namespace. Ingress: no policy.
  t.same(flags(row(ev, 'shop/svc')), {
    ingressProtected: false,
    egressProtected: true,
    ingressFromInternet: true,
    egressToInternet: true,
    ingressNamespaces: others('shop'),
    egressNamespaces: others('shop'),
  });
  // external-lockdown: deny from world wins over allow from all; all other namespaces allowed.
  t.same(flags(row(ev, 'lockdown/web')), {
    ingressProtected: true,
    egressProtected: false,
    ingressFromInternet: false,
    egressToInternet: true,
    ingressNamespaces: others('lockdown'),
    egressNamespaces: others('lockdown'),
  });
  t.equal(row(ev, 'ssh/web').ingressFromInternet, true, 'a deny on port 22 leaves the world allowed elsewhere');
  // cidr-rule: 20.1.1.1/32 is public → the internet; no namespace (CIDR rules do not select cluster endpoints).
  const cidr = row(ev, 'cidr/svc');
  t.same([cidr.egressProtected, cidr.egressToInternet, cidr.egressNamespaces], [true, true, []]);
  // infra-only: protected both ways; ingress from reserved identities only; egress to the cluster, not the world.
  t.same(flags(row(ev, 'infra/agent')), {
    ingressProtected: true,
    egressProtected: true,
    ingressFromInternet: false,
    egressToInternet: false,
    ingressNamespaces: [],
    egressNamespaces: others('infra'),
  });
});
