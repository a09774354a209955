import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';

// --internal-cidr on the aggregator: a policy net wholly inside one of these networks is not "the internet" in the
// configured evidence, as the agent's --internal-cidr is for observed peers. 203.0.113.0/24 is public (TEST-NET-3),
// so by default a Kubernetes ipBlock rule admitting it lets the internet in.
const SNAPSHOT = `apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-1, namespace: shop, labels: {app: web}}
  spec: {containers: [{name: web}]}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: from-office, namespace: shop}
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress: [{from: [{ipBlock: {cidr: 203.0.113.0/24}}]}]
`;

function snapshotDir(t: Test): string {
  const dir = join(tempDir(t), 'cluster');
  mkdirSync(dir);
  writeFileSync(join(dir, 'objects.yaml'), SNAPSHOT);
  return dir;
}

async function web(port: number) {
  const body = (await (await fetch(`http://127.0.0.1:${port}/api/v1/network-access?namespace=shop`)).json()) as {
    endpoints: { endpoint: string; ingressProtected: boolean; ingressFromInternet: boolean }[];
  };
  return body.endpoints.find((e) => e.endpoint === 'shop/web');
}

t.test('a policy net inside --internal-cidr is not the internet; outside it, it is', async (t) => {
  const dir = snapshotDir(t);
  const plain = await startTestAggregator(t, { clusterSnapshotDir: dir });
  t.match(await web(plain.httpPort), { ingressProtected: true, ingressFromInternet: true }, 'public by default');
  const office = await startTestAggregator(t, { clusterSnapshotDir: dir, internalCidrs: ['203.0.113.0/24'] });
  t.match(await web(office.httpPort), { ingressProtected: true, ingressFromInternet: false }, 'the office network');
  // A wider net than the internal one still holds internet addresses.
  const narrow = await startTestAggregator(t, { clusterSnapshotDir: dir, internalCidrs: ['203.0.113.0/25'] });
  t.match(await web(narrow.httpPort), { ingressFromInternet: true }, 'a /24 is not inside a /25');
});

t.test('a bad --internal-cidr exits 2 with one line saying what is wrong', async (t) => {
  const cli = join(packageRoot(), 'dist', 'aggregator', 'cli.js');
  const r = spawnSync(process.execPath, [cli, '--internal-cidr', '10.0.0.0/8,office'], { encoding: 'utf8' });
  t.equal(r.status, 2);
  t.equal(r.stdout, '');
  t.match(r.stderr.trim(), /^verdict-aggregator: .*--internal-cidr: "office" is not a CIDR such as 10\.0\.0\.0\/8/);
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
});
