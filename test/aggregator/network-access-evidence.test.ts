import t from 'tap';
import type { FlowEndpoint, FlowRecord, PolicyRef } from '../../common/flow.js';
import { networkAccess } from '../../aggregator/compute/network-access.js';
import {
  configuredEvidence,
  networkAccessEvidence,
  type ClusterConfiguration,
  type NetworkAccessEndpoint,
} from '../../aggregator/network-access/index.js';
import type { PolicyVersion } from '../../aggregator/network-access/configured.js';

/**
 * Configured and observed network-access evidence and their cross-check, on small Calico and Cilium samples whose
 * expected answers are worked out by hand in the comments next to each case. Semantics followed:
 * - Calico Cloud compliance-reports overview (docs.tigera.io/calico-cloud/reference/resources/compliance-reports/
 *   overview): "An endpoint is ingress protected if it has at least one Ingress policy that is applied to it", and
 *   "only if it was ingress protected throughout the entire report interval".
 * - Calico tiers (docs.tigera.io, "Get started with policy tiers"): tiers in order, a Pass rule goes to the next tier,
 *   a tier whose policies select the endpoint but do not match ends in deny; the default tier's namespace profile
 *   allows when no policy applies; Kubernetes NetworkPolicy sits in the default tier at order 1000.
 * - Cilium "Policy Enforcement Modes" (docs.cilium.io/en/latest/security/policy/intro/): default mode, an endpoint
 *   selected by a policy in a direction becomes default-deny there; entity `world` is outside the cluster.
 * - Cilium --allow-localhost=auto (cilium/cilium#754): the local host reaches local endpoints without policy, so
 *   kubelet probes (reserved:host) are allowed without a policy verdict.
 */

const T0 = Date.UTC(2026, 10, 20, 10, 0, 0);
const HOUR = 3_600_000;

const pod = (namespace: string, name: string, labels: string[] = [], extra: Partial<FlowEndpoint> = {}) =>
  ({
    kind: 'pod',
    namespace,
    name,
    labels,
    serviceAccount: 'default',
    internet: false,
    ...extra,
  }) satisfies FlowEndpoint;
const net = (name: string, internet: boolean, extra: Partial<FlowEndpoint> = {}) =>
  ({ kind: 'network', namespace: '', name, labels: [], serviceAccount: '', internet, ...extra }) satisfies FlowEndpoint;
const host = (name: string) =>
  ({
    kind: 'host',
    namespace: '',
    name,
    labels: [],
    serviceAccount: '',
    internet: false,
    reserved: 'host',
  }) satisfies FlowEndpoint;

function flow(
  source: FlowEndpoint,
  destination: FlowEndpoint,
  o: Partial<FlowRecord> & { connections: number },
): FlowRecord {
  return {
    source,
    destination,
    protocol: 'tcp',
    destinationPort: 8080,
    action: 'allow',
    reporter: 'dst',
    policies: [],
    stagedPolicies: [],
    unnamedPolicy: false,
    policyDecided: false,
    packets: o.connections,
    bytes: o.connections * 100,
    startMs: T0,
    endMs: T0 + 60_000,
    ...o,
  };
}
const ref = (namespace: string, name: string, kind: string): PolicyRef => ({
  tier: '',
  namespace,
  name,
  action: 'allow',
  kind,
});

const always = (object: Record<string, unknown>): PolicyVersion => ({ fromMs: -Infinity, toMs: Infinity, object });

function rowOf(rows: NetworkAccessEndpoint[], endpoint: string): NetworkAccessEndpoint {
  const r = rows.find((e) => e.endpoint === endpoint);
  if (!r) throw new Error(`no row ${endpoint} in ${rows.map((e) => e.endpoint).join(', ')}`);
  return r;
}

t.test(
  'Cilium: a pod with kubelet probes and an ingress policy is protected, and the probes are no finding',
  async (t) => {
    // shop/frontend is selected by a CNP whose ingress allows world on 8080: ingress protected (a policy with ingress
    // rules applies, all hour), internet allowed by configuration. Egress: no policy → unprotected, everything allowed.
    const cfg: ClusterConfiguration = {
      source: 'test',
      namespaces: [
        { name: 'shop', labels: {} },
        { name: 'payments', labels: {} },
      ],
      pods: [
        {
          namespace: 'shop',
          name: 'frontend-7d9f8b6c5d-x2k8p',
          labels: { app: 'frontend' },
          serviceAccount: 'default',
          envoy: false,
        },
      ],
      policies: [
        always({
          apiVersion: 'cilium.io/v2',
          kind: 'CiliumNetworkPolicy',
          metadata: { name: 'frontend-ingress', namespace: 'shop' },
          spec: {
            endpointSelector: { matchLabels: { 'k8s:app': 'frontend' } },
            ingress: [{ fromEntities: ['world'], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }],
          },
        }),
      ],
    };
    const frontend = pod('shop', 'frontend', ['app=frontend']);
    const flows = [
      // 40 liveness/readiness probes from the node (reserved:host), allowed without a policy verdict (allow-localhost).
      flow(host('worker-1'), frontend, { connections: 40, policyDecided: false }),
      // 12 connections from the internet, allowed by the CNP (Hubble names it in ingress_allowed_by).
      flow(net('world', true, { reserved: 'world' }), frontend, {
        connections: 12,
        policyDecided: true,
        policies: [ref('shop', 'frontend-ingress', 'CiliumNetworkPolicy')],
      }),
    ];
    const ev = networkAccessEvidence(networkAccess(flows), configuredEvidence(cfg, T0, T0 + HOUR));
    t.same(
      ev.endpoints.map((e) => e.endpoint),
      ['shop/frontend'],
      'the node is a peer, never an endpoint row',
    );
    const r = rowOf(ev.endpoints, 'shop/frontend');
    t.equal(r.evidence, 'configured');
    t.equal(r.ingressProtected, true, 'a CNP with ingress rules applies all interval');
    t.equal(r.egressProtected, false, 'no policy with egress rules selects it');
    t.equal(r.ingressFromInternet, true, 'fromEntities: world');
    t.equal(r.ingressFromOtherNamespaces, false, 'no rule admits another namespace');
    t.equal(r.egressToInternet, true, 'egress unrestricted');
    t.equal(r.egressToOtherNamespaces, true, 'egress unrestricted: payments');
    t.same(r.appliedPolicies, ['shop/frontend-ingress']);
    t.equal(r.allowedIn, 52);
    t.equal(r.observed?.unprotectedAllowedIn, 0, 'probes from the local host are not unprotected traffic');
    t.same(r.endpointsGeneratingTrafficToThisEndpoint, ['worker-1', 'world']);
    t.equal(r.trafficAggregationPrefix, 'frontend-*');
    t.same(ev.findings, [], 'configuration and dataplane agree');
  },
);

t.test('a policy added mid-interval leaves the endpoint unprotected for that interval', async (t) => {
  // A Kubernetes NetworkPolicy selecting app=api appears at T0 + 30 min. Over [T0, T0+1h) the first half had no
  // ingress policy: not protected. Over [T0+30m, T0+1h) it was there throughout: protected.
  const mid = T0 + HOUR / 2;
  const cfg: ClusterConfiguration = {
    source: 'test',
    namespaces: [{ name: 'payments', labels: {} }],
    pods: [
      {
        namespace: 'payments',
        name: 'api-84f6d9c7b-x7k2p',
        labels: { app: 'api' },
        serviceAccount: 'api',
        envoy: false,
      },
    ],
    policies: [
      {
        fromMs: mid,
        toMs: Infinity,
        object: {
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { name: 'api-ingress', namespace: 'payments' },
          spec: { podSelector: { matchLabels: { app: 'api' } }, ingress: [{ from: [{ podSelector: {} }] }] },
        },
      },
    ],
  };
  const whole = configuredEvidence(cfg, T0, T0 + HOUR).endpoints.get('payments/api');
  t.equal(whole?.ingressProtected, false, 'not protected over the whole hour');
  t.same(whole?.appliedPolicies, ['payments/api-ingress'], 'but it applied at some point');
  t.equal(whole?.ingressFromInternet, true, 'before it, the profile let the internet in');
  const after = configuredEvidence(cfg, mid, T0 + HOUR).endpoints.get('payments/api');
  t.equal(after?.ingressProtected, true, 'protected over the half-hour it was in force');
  t.equal(after?.ingressFromInternet, false, 'a podSelector peer admits only its own namespace');
  // A policy deleted mid-interval is the same: not protected for the interval.
  const removed = { ...cfg, policies: cfg.policies.map((v) => ({ ...v, fromMs: -Infinity, toMs: mid })) };
  t.equal(configuredEvidence(removed, T0, T0 + HOUR).endpoints.get('payments/api')?.ingressProtected, false);
});

t.test('a world peer with a namespace counts as in-cluster, not the internet', async (t) => {
  // GKE Dataplane V2 labels some in-cluster pods reserved:world and still names their namespace and pod.
  const api = pod('payments', 'api', ['app=api']);
  const worldPod = pod('shop', 'checkout', ['app=checkout'], { internet: true, reserved: 'world' });
  const r = rowOf(
    networkAccessEvidence(networkAccess([flow(worldPod, api, { connections: 3, policyDecided: true })]), undefined)
      .endpoints,
    'payments/api',
  );
  t.equal(r.ingressFromInternet, false);
  t.equal(r.ingressFromOtherNamespaces, true);
  t.equal(r.evidence, 'observed', 'no configuration known');
  t.equal(r.ingressProtected, true, 'its one ingress observation was policy-decided');
  t.equal(r.egressProtected, false, 'egress never observed: false, as Calico has no unknown');
  t.equal(r.observed?.egressProtected, null, 'the observed evidence keeps "not observed" apart');
  t.same(r.observed?.ingressNamespaces, ['shop']);
  t.same(r.endpointsGeneratingTrafficToThisEndpoint, ['shop/checkout']);
});

t.test('Calico: tiers, Pass, order, staged policies and the three findings', async (t) => {
  // Tier "security" (order 100) GNP block-internet, selector all(): ingress Deny from 0.0.0.0/0, then Pass.
  // Default tier: Calico NP shop/allow-same-ns selects app == 'checkout', ingress Allow from selector all() (same
  // namespace only); a Kubernetes NP shop/cart-from-payments selects app=cart, ingress from namespaces team=payments,
  // egress only to 10.0.0.0/8; a staged NP shop/staged-lockdown selects checkout.
  const cfg: ClusterConfiguration = {
    source: 'test',
    namespaces: [
      { name: 'shop', labels: {} },
      { name: 'payments', labels: { team: 'payments' } },
      { name: 'kube-system', labels: {} },
    ],
    pods: [
      {
        namespace: 'shop',
        name: 'checkout-6c8d7f9b5-q7w2x',
        labels: { app: 'checkout' },
        serviceAccount: 'checkout',
        envoy: true,
      },
      {
        namespace: 'shop',
        name: 'cart-5b7c9d8f4-zz9x8',
        labels: { app: 'cart' },
        serviceAccount: 'default',
        envoy: false,
      },
    ],
    policies: [
      always({
        apiVersion: 'projectcalico.org/v3',
        kind: 'Tier',
        metadata: { name: 'security' },
        spec: { order: 100 },
      }),
      always({
        apiVersion: 'projectcalico.org/v3',
        kind: 'GlobalNetworkPolicy',
        metadata: { name: 'security.block-internet' },
        spec: {
          tier: 'security',
          order: 10,
          selector: 'all()',
          ingress: [{ action: 'Deny', source: { nets: ['0.0.0.0/0'] } }, { action: 'Pass' }],
        },
      }),
      always({
        apiVersion: 'projectcalico.org/v3',
        kind: 'NetworkPolicy',
        metadata: { name: 'allow-same-ns', namespace: 'shop' },
        spec: { selector: "app == 'checkout'", ingress: [{ action: 'Allow', source: { selector: 'all()' } }] },
      }),
      always({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'cart-from-payments', namespace: 'shop' },
        spec: {
          podSelector: { matchLabels: { app: 'cart' } },
          policyTypes: ['Ingress', 'Egress'],
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'payments' } } }] }],
          egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }],
        },
      }),
      always({
        apiVersion: 'projectcalico.org/v3',
        kind: 'StagedNetworkPolicy',
        metadata: { name: 'staged-lockdown', namespace: 'shop' },
        spec: { selector: "app == 'checkout'", types: ['Ingress', 'Egress'] },
      }),
    ],
  };
  const configured = configuredEvidence(cfg, T0, T0 + HOUR);
  const checkout = configured.endpoints.get('shop/checkout');
  // checkout: security tier denies the internet outright; namespace peers Pass to the default tier, where
  // allow-same-ns admits shop only and the tier ends in deny: no other namespace. Egress: no policy → profile.
  t.same(
    checkout && {
      ingressProtected: checkout.ingressProtected,
      egressProtected: checkout.egressProtected,
      ingressFromInternet: checkout.ingressFromInternet,
      ingressNamespaces: checkout.ingressNamespaces,
      egressToInternet: checkout.egressToInternet,
      egressNamespaces: checkout.egressNamespaces,
      appliedPolicies: checkout.appliedPolicies,
      stagedPolicies: checkout.stagedPolicies,
      envoyEnabled: checkout.envoyEnabled,
    },
    {
      ingressProtected: true,
      egressProtected: false,
      ingressFromInternet: false,
      ingressNamespaces: [],
      egressToInternet: true,
      egressNamespaces: ['kube-system', 'payments'],
      appliedPolicies: ['security.block-internet', 'shop/allow-same-ns'],
      stagedPolicies: ['shop/staged-lockdown'],
      envoyEnabled: true,
    },
  );
  const cart = configured.endpoints.get('shop/cart');
  // cart: internet denied in security; payments passes to the default tier where the Kubernetes NP admits it.
  // Egress: the Kubernetes NP admits 10.0.0.0/8 only: not the internet, no namespace (an ipBlock is no namespace).
  t.same(
    cart && {
      ingressProtected: cart.ingressProtected,
      egressProtected: cart.egressProtected,
      ingressFromInternet: cart.ingressFromInternet,
      ingressNamespaces: cart.ingressNamespaces,
      egressToInternet: cart.egressToInternet,
      egressNamespaces: cart.egressNamespaces,
    },
    {
      ingressProtected: true,
      egressProtected: true,
      ingressFromInternet: false,
      ingressNamespaces: ['payments'],
      egressToInternet: false,
      egressNamespaces: [],
    },
  );

  const checkoutEp = pod('shop', 'checkout', ['app=checkout']);
  const flows = [
    // 5 internet connections allowed by the namespace profile (no policy decided them): two findings.
    flow(net('pub', true), checkoutEp, { connections: 5, policyDecided: false }),
    // 7 from payments allowed by a policy, though no rule in force admits payments: a finding.
    flow(pod('payments', 'api', ['app=api']), checkoutEp, {
      connections: 7,
      policyDecided: true,
      policies: [ref('shop', 'allow-same-ns', 'CalicoNetworkPolicy')],
    }),
    // 2 from shop/cart allowed by allow-same-ns: as configured.
    flow(pod('shop', 'cart', ['app=cart']), checkoutEp, { connections: 2, policyDecided: true }),
  ];
  const ev = networkAccessEvidence(networkAccess(flows), configured);
  t.same(
    ev.findings.map((f) => [f.endpoint, f.direction, f.kind, f.connections]),
    [
      ['shop/checkout', 'ingress', 'protected-but-unprotected-traffic', 5],
      ['shop/checkout', 'ingress', 'internet-traffic-not-configured', 5],
      ['shop/checkout', 'ingress', 'namespace-traffic-not-configured', 0],
    ],
  );
  t.match(ev.findings[2]?.detail, /namespace\(s\) payments/);
  // Rows: checkout and cart, both configured (cart never observed: true/false from configuration, not null).
  // payments/api is no row: only its peer's node saw its traffic, and an endpoint's egress is what its own node saw.
  t.same(
    ev.endpoints.map((e) => [e.endpoint, e.evidence, e.ingressProtected, e.egressProtected]),
    [
      ['shop/cart', 'configured', true, true],
      ['shop/checkout', 'configured', true, false],
    ],
  );
  t.same(rowOf(ev.endpoints, 'shop/checkout').endpointsGeneratingTrafficToThisEndpoint, [
    'payments/api',
    'pub',
    'shop/cart',
  ]);
});

t.test('a policy document that cannot be compiled is counted, not trusted', async (t) => {
  const cfg: ClusterConfiguration = {
    source: 'test',
    namespaces: [{ name: 'shop', labels: {} }],
    pods: [{ namespace: 'shop', name: 'web-0', labels: { app: 'web' }, serviceAccount: 'default', envoy: false }],
    policies: [
      always({
        apiVersion: 'projectcalico.org/v3',
        kind: 'GlobalNetworkPolicy',
        metadata: { name: 'broken' },
        spec: { selector: "app == 'web" },
      }),
      always({ apiVersion: 'projectcalico.org/v3', kind: 'NetworkPolicy', metadata: { namespace: 'shop' } }),
      always({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: '__proto__', namespace: 'shop' },
        spec: { podSelector: { matchLabels: { ['__proto__']: 'x' } } },
      }),
    ],
  };
  const ev = configuredEvidence(cfg, T0, T0 + HOUR);
  t.equal(ev.problems.length, 2);
  t.match(ev.problems[0], /GlobalNetworkPolicy broken/);
  t.match(ev.problems[1], /metadata.name is missing/);
  t.equal(ev.endpoints.get('shop/web')?.ingressProtected, false, 'a selector on a __proto__ label matches nothing');
  t.equal(({} as Record<string, unknown>)['x'], undefined, 'nothing reached Object.prototype');
});
