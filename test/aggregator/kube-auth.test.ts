import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { HELLO, rawAgentStream, startTestAggregator } from '../fixtures/aggregator.js';
import { startFakeApiServer } from '../fixtures/fake-apiserver.js';
import { tempDir } from '../fixtures/tmp.js';

// Agent identity and reader RBAC against a stand-in for the Kubernetes API
// (test/fixtures/fake-apiserver.ts: TokenReview, SubjectAccessReview and pods
// with the documented shapes; there is no API server to install here).
const AGENT_SA = 'system:serviceaccount:verdict:verdict-agent';

function md(token: string): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set('authorization', `Bearer ${token}`);
  return m;
}

t.test("an agent token is bound to its pod's node: it may report as that node and no other", async (t) => {
  const dir = tempDir(t);
  const api = await startFakeApiServer(t, dir);
  api.tokens.set('tok-node-a', {
    username: AGENT_SA,
    audiences: ['verdict'],
    extra: {
      'authentication.kubernetes.io/node-name': ['node-a'],
      'authentication.kubernetes.io/pod-name': ['verdict-agent-x1'],
    },
  });
  api.tokens.set('tok-old-cluster', {
    username: AGENT_SA,
    audiences: ['verdict'],
    extra: { 'authentication.kubernetes.io/pod-name': ['verdict-agent-y2'] },
  });
  api.pods.set('verdict/verdict-agent-y2', { nodeName: 'node-b' });
  api.tokens.set('tok-wrong-audience', {
    username: AGENT_SA,
    audiences: ['https://kubernetes.default.svc'],
    extra: { 'authentication.kubernetes.io/node-name': ['node-a'] },
  });
  api.tokens.set('tok-other-sa', {
    username: 'system:serviceaccount:default:intruder',
    audiences: ['verdict'],
    extra: { 'authentication.kubernetes.io/node-name': ['node-a'] },
  });
  const agg = await startTestAggregator(t, { kubeconfig: api.kubeconfig });

  const ok = rawAgentStream(agg.grpcPort, md('tok-node-a'));
  t.teardown(() => ok.close());
  ok.send(HELLO('node-a'));
  await ok.waitFor(1);
  t.equal(ok.received[0]?.kind, 'welcome');
  const review = api.calls.find((c) => c.path.endsWith('/tokenreviews'));
  t.same(
    (review?.body as { spec: unknown }).spec,
    { token: 'tok-node-a', audiences: ['verdict'] },
    "the review asks for Verdict's audience",
  );

  const spoof = rawAgentStream(agg.grpcPort, md('tok-node-a'));
  t.teardown(() => spoof.close());
  spoof.send(HELLO('node-z'));
  await spoof.waitFor(1);
  t.equal(spoof.error?.code, grpc.status.PERMISSION_DENIED);
  t.match(spoof.error?.details, /credentials for node node-a cannot report as node-z/);

  const viaPod = rawAgentStream(agg.grpcPort, md('tok-old-cluster'));
  t.teardown(() => viaPod.close());
  viaPod.send(HELLO('node-b'));
  await viaPod.waitFor(1);
  t.equal(viaPod.received[0]?.kind, 'welcome', 'without a node claim, the pod is looked up');

  for (const [token, why] of [
    ['tok-wrong-audience', /audience/],
    ['tok-other-sa', /not the agent service account/],
    ['nonsense', /invalid bearer token/],
  ] as const) {
    const s = rawAgentStream(agg.grpcPort, md(token));
    t.teardown(() => s.close());
    s.send(HELLO('node-a'));
    await s.waitFor(1);
    t.equal(s.error?.code, grpc.status.UNAUTHENTICATED, token);
    t.match(s.error?.details, why, token);
  }
  const metrics = await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
  t.match(metrics, /verdict_ingest_rejected_total\{reason="node_mismatch"\} 1/);
  t.match(metrics, /verdict_ingest_rejected_total\{reason="unauthenticated"\} 3/);
});

t.test('readers are authorized by SubjectAccessReview on globalreports and their names', async (t) => {
  const dir = tempDir(t);
  const api = await startFakeApiServer(t, dir);
  api.tokens.set('alice-token', {
    username: 'alice',
    audiences: ['https://kubernetes.default.svc.cluster.local'],
    groups: ['auditors'],
  });
  api.allow.add('alice get globalreports weekly');
  api.allow.add('alice list globalreports ');
  const { mkdirSync, writeFileSync } = await import('node:fs');
  mkdirSync(`${dir}/reports`);
  writeFileSync(
    `${dir}/reports/r.yaml`,
    ['weekly', 'monthly']
      .map(
        (n) =>
          `apiVersion: compliance.verdict.dev/v1\nkind: GlobalReport\nmetadata: {name: ${n}}\nspec: {reportType: cis-benchmark}\n`,
      )
      .join('---\n'),
  );
  const agg = await startTestAggregator(t, { kubeconfig: api.kubeconfig, reportsDir: `${dir}/reports` });
  const get = async (path: string, token?: string) =>
    (
      await fetch(`http://127.0.0.1:${agg.httpPort}${path}`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
      })
    ).status;
  t.equal(await get('/api/v1/reports/weekly/runs', 'alice-token'), 200);
  t.equal(await get('/api/v1/reports/monthly/runs', 'alice-token'), 403);
  t.equal(await get('/api/v1/reports', 'alice-token'), 200);
  t.equal(await get('/api/v1/nodes', 'alice-token'), 403);
  t.equal(await get('/api/v1/reports/weekly/runs', 'bad-token'), 401);
  t.equal(await get('/api/v1/reports/weekly/runs'), 401);
  const sar = api.calls.find((c) => c.path.endsWith('/subjectaccessreviews'))?.body as {
    spec: { user: string; groups: string[]; resourceAttributes: unknown };
  };
  t.same(sar.spec.resourceAttributes, {
    group: 'compliance.verdict.dev',
    resource: 'globalreports',
    verb: 'get',
    name: 'weekly',
  });
  t.equal(sar.spec.user, 'alice');
  t.same(sar.spec.groups, ['auditors']);
});
