import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { configuredEvidence, snapshotConfigurationSource } from '../../aggregator/network-access/index.js';
import { readClusterSnapshot } from '../../aggregator/snapshot/index.js';
import { tempDir } from '../fixtures/tmp.js';

/**
 * --cluster-snapshot reads Calico NetworkSets, GlobalNetworkSets and HostEndpoints (issue 15) as `kubectl get
 * networksets,globalnetworksets,hostendpoints -A -o yaml` writes them (a List), files them with the policies, and
 * configured network access uses them: the set's nets decide the internet, the host endpoint is an endpoint.
 */

const LIST = `
apiVersion: v1
kind: List
items:
- apiVersion: projectcalico.org/v3
  kind: GlobalNetworkSet
  metadata: {name: partners, labels: {role: partner}}
  spec: {nets: [198.51.100.0/28]}
- apiVersion: projectcalico.org/v3
  kind: NetworkSet
  metadata: {name: office, namespace: shop, labels: {role: office}}
  spec: {nets: [10.20.0.0/16]}
- apiVersion: projectcalico.org/v3
  kind: HostEndpoint
  metadata: {name: worker-1-eth0, labels: {role: worker}}
  spec: {node: worker-1, interfaceName: eth0, profiles: [projectcalico-default-allow]}
- apiVersion: projectcalico.org/v3
  kind: GlobalNetworkPolicy
  metadata: {name: to-partners}
  spec:
    selector: app == 'api' || role == 'worker'
    types: [Egress]
    egress: [{action: Allow, destination: {selector: role == 'partner'}}]
- apiVersion: projectcalico.org/v3
  kind: NetworkPolicy
  metadata: {name: to-office, namespace: shop}
  spec:
    selector: app == 'web'
    types: [Egress]
    egress: [{action: Allow, destination: {selector: role == 'office'}}]
- apiVersion: v1
  kind: Namespace
  metadata: {name: shop}
- apiVersion: v1
  kind: Pod
  metadata: {name: api-0, namespace: shop, labels: {app: api}}
  spec: {containers: [{name: api}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-0, namespace: shop, labels: {app: web}}
  spec: {containers: [{name: web}]}
`;

t.test('network sets and host endpoints from a snapshot take part in configured network access', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'cluster.yaml'), LIST);
  const { snapshot, problems } = readClusterSnapshot(dir);
  t.same(problems, []);
  t.same(
    snapshot.policies.map((p) => p['kind']).sort(),
    ['GlobalNetworkPolicy', 'GlobalNetworkSet', 'HostEndpoint', 'NetworkPolicy', 'NetworkSet'],
    'the three kinds are filed with the policies, not ignored',
  );
  t.equal(snapshot.ignored, 0);
  const cfg = await snapshotConfigurationSource(snapshot).configuration(0, 3_600_000);
  t.ok(cfg);
  if (!cfg) return;
  const ev = configuredEvidence(cfg, 0, 3_600_000);
  t.same(ev.problems, []);
  // shop/api: the GNP reaches partners (198.51.100.0/28, public) → egress to the internet.
  t.equal(ev.endpoints.get('shop/api')?.egressToInternet, true, 'a public GlobalNetworkSet is the internet');
  // shop/web: the NetworkPolicy reaches office (10.20.0.0/16, private) only → no internet.
  t.equal(ev.endpoints.get('shop/web')?.egressToInternet, false, 'a private NetworkSet is not the internet');
  // The host endpoint: selected by the GNP (role == 'worker') → egress protected, internet allowed.
  const hep = ev.endpoints.get('worker-1-eth0');
  t.same([hep?.egressProtected, hep?.egressToInternet, hep?.ingressProtected], [true, true, false]);
});

t.test('a NetworkSet without a namespace is a snapshot problem, as other namespaced kinds are', async (t) => {
  const dir = tempDir(t);
  writeFileSync(
    join(dir, 'sets.yaml'),
    `apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: office}
spec: {nets: [10.20.0.0/16]}
`,
  );
  const { problems } = readClusterSnapshot(dir);
  t.equal(problems.length, 1);
  t.match(problems[0]?.reason, /NetworkSet office: metadata\.namespace is missing/);
});
