import t from 'tap';
import { parseAllDocuments } from 'yaml';
import {
  configuredEvidence,
  networkAccessEvidence,
  type ClusterConfiguration,
  type ConfiguredEndpoint,
} from '../../aggregator/network-access/index.js';
import { networkAccess } from '../../aggregator/compute/network-access.js';
import type { FlowRecord } from '../../common/flow.js';

/**
 * Calico host endpoints in configured network access (issue 15). Calico's compliance-reports overview (tigera/docs
 * calico-enterprise/reference/resources/compliance-reports/overview.mdx): an in-scope asset is a "Pod or
 * HostEndpoint", so host endpoints are endpoints of the report, with the same protected and allows-* definitions.
 */

const T0 = Date.UTC(2026, 10, 20, 10, 0, 0);
const HOUR = 3_600_000;

function evaluate(yamlText: string, namespaces: string[]) {
  const cfg: ClusterConfiguration = {
    source: 'test',
    namespaces: namespaces.map((name) => ({ name, labels: {} })),
    pods: [{ namespace: 'default', name: 'web-0', labels: {}, serviceAccount: 'default', envoy: false }],
    policies: parseAllDocuments(yamlText).map((d) => ({
      fromMs: -Infinity,
      toMs: Infinity,
      object: d.toJS() as Record<string, unknown>,
    })),
  };
  return configuredEvidence(cfg, T0, T0 + HOUR);
}

function row(ev: { endpoints: Map<string, ConfiguredEndpoint> }, endpoint: string): ConfiguredEndpoint {
  const r = ev.endpoints.get(endpoint);
  if (!r) throw new Error(`no endpoint ${endpoint}: ${[...ev.endpoints.keys()].join(', ')}`);
  return r;
}

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

t.test('Calico host endpoints are endpoints, protected by GlobalNetworkPolicies only', async (t) => {
  // Calico's compliance-reports overview: an in-scope asset is a "Pod or HostEndpoint". The HostEndpoint is the
  // Calico "Host endpoint" reference's Sample YAML (https://docs.tigera.io/calico/latest/reference/resources/
  // hostendpoint) without its named ports; a second one without profiles. The GlobalNetworkPolicy allows SSH from
  // anywhere to type=production hosts; the NetworkPolicy in default selects all() but is namespaced: never a host.
  // Hand-derived: some.name: ingress protected (the GNP), from the internet and every namespace (no source);
  // egress: no policy, but it has profiles → unprotected, allowed. bare-host (no profiles, no policy): Calico's
  // default for a host endpoint without policy is deny → unprotected and nothing allowed.
  const text = `
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: some.name
  labels:
    type: production
spec:
  interfaceName: eth0
  node: myhost
  expectedIPs:
    - 192.168.0.1
    - 192.168.0.2
  profiles:
    - profile1
    - profile2
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: bare-host, labels: {type: staging}}
spec: {interfaceName: eth0, node: otherhost}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-ssh}
spec:
  selector: type == 'production'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [22]}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: everything-in-default, namespace: default}
spec:
  selector: all()
  types: [Ingress, Egress]
`;
  const ev = evaluate(text, ['default', 'shop']);
  const hep = row(ev, 'some.name');
  t.same(flags(hep), {
    ingressProtected: true,
    egressProtected: false,
    ingressFromInternet: true,
    egressToInternet: true,
    ingressNamespaces: ['default', 'shop'],
    egressNamespaces: ['default', 'shop'],
  });
  t.same([hep.namespace, hep.appliedPolicies, hep.labels], ['', ['allow-ssh'], ['type=production']]);
  t.same(flags(row(ev, 'bare-host')), {
    ingressProtected: false,
    egressProtected: false,
    ingressFromInternet: false,
    egressToInternet: false,
    ingressNamespaces: [],
    egressNamespaces: [],
  });
  t.same(row(ev, 'default/web').appliedPolicies, ['default/everything-in-default'], 'the pod, not the hosts');
});

t.test(
  'a host endpoint is one row beside the pods, its flows matched by its node (Calico flow type hep)',
  async (t) => {
    // A HostEndpoint worker-1-eth0 on node worker-1 with a GlobalNetworkPolicy allowing ingress from 10.0.0.0/8 only;
    // flows name it as Calico's flow logs do (type hep, namespace "-", aggregated name the node; the agent's kind
    // host). Hand-derived: one row, the HostEndpoint's, its traffic the node's flows (evidence configured, kind host),
    // ingress protected, not from the internet; the allowed internet connection seen is a finding (internet traffic
    // not configured). With a second host endpoint on the same node the flows cannot be told apart: they stay a row
    // of their own (worker-1) beside the two configured ones.
    const text = `
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: worker-1-eth0, labels: {role: worker}}
spec: {node: worker-1, interfaceName: eth0}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: workers-from-internal}
spec:
  selector: role == 'worker'
  types: [Ingress]
  ingress:
  - action: Allow
    source: {nets: [10.0.0.0/8]}
`;
    // felix's flow log names a hep by its node (name_aggr; felix collector getFlowLogEndpointMetadata), which the agent
    // keeps as the endpoint's name.
    const hostEp = {
      kind: 'host' as const,
      namespace: '',
      name: 'worker-1',
      labels: [],
      serviceAccount: '',
      internet: false,
    };
    const world = {
      kind: 'network' as const,
      namespace: '',
      name: 'pub',
      labels: [],
      serviceAccount: '',
      internet: true,
    };
    const flows: FlowRecord[] = [
      {
        source: world,
        destination: hostEp,
        protocol: 'tcp',
        destinationPort: 22,
        action: 'allow',
        reporter: 'dst',
        policies: [{ tier: 'default', namespace: '', name: 'workers-from-internal', action: 'allow', kind: '' }],
        stagedPolicies: [],
        unnamedPolicy: false,
        policyDecided: true,
        packets: 3,
        bytes: 300,
        startMs: T0,
        endMs: T0 + 60_000,
        connections: 3,
      },
    ];
    const ev = networkAccessEvidence(networkAccess(flows), evaluate(text, ['default']));
    t.same(
      ev.endpoints.map((e) => e.endpoint),
      ['default/web', 'worker-1'],
      'the flows meet the host endpoint: one row',
    );
    const r = ev.endpoints.find((e) => e.endpoint === 'worker-1');
    t.same(
      [r?.kind, r?.evidence, r?.ingressProtected, r?.ingressFromInternet, r?.allowedIn, r?.configured?.name],
      ['host', 'configured', true, false, 3, 'worker-1-eth0'],
    );
    t.same(
      ev.findings.map((f) => [f.endpoint, f.direction, f.kind]),
      [['worker-1', 'ingress', 'internet-traffic-not-configured']],
    );
    const two = networkAccessEvidence(
      networkAccess(flows),
      evaluate(
        `${text}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: worker-1-eth1, labels: {role: worker}}
spec: {node: worker-1, interfaceName: eth1}
`,
        ['default'],
      ),
    );
    t.same(
      two.endpoints.map((e) => [e.endpoint, e.evidence]),
      [
        ['default/web', 'configured'],
        ['worker-1', 'observed'],
        ['worker-1-eth0', 'configured'],
        ['worker-1-eth1', 'configured'],
      ],
      'two host endpoints on one node: the flows are not attributed to either',
    );
  },
);
