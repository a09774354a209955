import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseReportsYaml, type ReportDefinition } from '../../../aggregator/reports/globalreport.js';
import { snapshotClusterSource } from '../../../aggregator/reports/snapshot-inventory.js';
import { inventoryReport } from '../../../aggregator/reports/types/inventory.js';
import { loadClusterSnapshot } from '../../../aggregator/snapshot/index.js';
import { tempDir } from '../../fixtures/tmp.js';

// An inventory served from an offline cluster snapshot (what `kubectl get ... -A -o yaml`
// writes, read by aggregator/snapshot) instead of the API server: the same objects give the
// same report. Expectations worked out by hand below.

const SNAPSHOT = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: shop, labels: {tier: web}}
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-1
    namespace: shop
    labels: {app: web}
    annotations: {sidecar.istio.io/status: '{}'}
  spec:
    serviceAccountName: web
    containers: [{name: web}, {name: istio-proxy}]
- apiVersion: v1
  kind: Pod
  metadata: {name: db-1, namespace: shop, labels: {app: db}}
  spec:
    containers: [{name: db}]
- apiVersion: v1
  kind: Pod
  metadata: {name: node-exporter, namespace: shop}
  spec: {hostNetwork: true, containers: [{name: e}]}
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop}
  spec: {selector: {app: web}}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-in, namespace: shop}
  spec:
    podSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: refused, namespace: shop}
  spec:
    podSelector: {matchExpressions: [{key: app, operator: Near, values: [db]}]}
    policyTypes: [Ingress, Egress]
- apiVersion: projectcalico.org/v3
  kind: GlobalNetworkPolicy
  metadata: {name: security.egress}
  spec: {selector: "app == 'db'", types: [Egress]}
- apiVersion: projectcalico.org/v3
  kind: StagedGlobalNetworkPolicy
  metadata: {name: security.staged}
  spec: {selector: all(), types: [Ingress]}
`;

const def = parseReportsYaml(
  'apiVersion: projectcalico.org/v3\nkind: GlobalReport\nmetadata: {name: inv}\nspec: {reportType: inventory}\n',
  'test',
)[0] as ReportDefinition;

t.test(
  'an inventory from an offline snapshot: pods, services, policies and Envoy as the cluster would give them',
  async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'cluster.yaml'), SNAPSHOT);
    const source = snapshotClusterSource(loadClusterSnapshot(dir));
    const snap = await source.inventory(0, 1);
    t.same(await source.inventory(5, 6), snap, 'one moment: every interval gets the same objects');
    const out = inventoryReport(def, snap, { start: '2026-11-20T00:00:00.000Z', end: '2026-11-21T00:00:00.000Z' });
    // web-1: web-in (Ingress, no policyTypes and no egress rules); Istio's proxy plus the injection annotation.
    // db-1: security.egress (Egress); the policy with a refused operator selects nothing; the staged one
    // enforces nothing.
    // node-exporter: host network, not an endpoint.
    t.same(out.files['endpoints.csv']!.rows, [
      ['shop/db-1', false, true, false, ['security.egress'], [], 'shop', 'default'],
      ['shop/web-1', true, false, true, ['shop/web-in'], ['shop/web'], 'shop', 'web'],
    ]);
    t.same(out.files['services.csv']!.rows, [['shop/web', true, true, 1]]);
    t.same(out.files['namespaces.csv']!.rows, [['shop', false, false, false, 2]]);
    t.match(out.summary, { endpointsNumInScope: 2, servicesNumInScope: 1, serviceAccountsNumInScope: 2 });
  },
);
