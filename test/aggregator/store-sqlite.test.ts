import { join } from 'node:path';
import t from 'tap';
import { SqliteStore } from '../../aggregator/store/sqlite.js';
import type { NodeHello } from '../../aggregator/store/index.js';
import { reportOf } from '../fixtures/reports.js';
import { tempDir } from '../fixtures/tmp.js';

const hello = (name: string, bootId = 'b1'): NodeHello => ({ name, role: 'worker', labels: { zone: 'a' }, kubeletVersion: 'v1.32.1', kubernetesVersion: '', osImage: 'Debian', kernelVersion: '6.1', architecture: 'x64', agentVersion: '0.1.0', bootId });

t.test('migrations apply once; reopening the file keeps the data', async (t) => {
  const file = join(tempDir(t), 'v.db');
  const a = SqliteStore.open(file);
  await a.recordHello(hello('n1'), 1000);
  await a.close();
  const b = SqliteStore.open(file);
  t.same((await b.listNodes()).map((n) => n.name), ['n1']);
  await b.close();
});

t.test('a run is stored once per (node, boot id, seq); a resend is a duplicate', async (t) => {
  const s = SqliteStore.open(join(tempDir(t), 'v.db'));
  t.teardown(() => s.close());
  t.same(await s.recordHello(hello('n1'), 1000), { lastStoredSeq: 0 });
  const r = reportOf('n1', { '4.1.1': 'PASS', '4.1.2': 'FAIL' });
  t.same(await s.recordBenchmarkRun('n1', 'b1', 1, r, 2000), { duplicate: false });
  t.same(await s.recordBenchmarkRun('n1', 'b1', 1, r, 3000), { duplicate: true });
  t.same(await s.recordHello(hello('n1'), 4000), { lastStoredSeq: 1 }, 'Welcome tells the agent what is stored');
  t.same(await s.recordHello(hello('n1', 'b2'), 4000), { lastStoredSeq: 0 }, 'a new boot id starts a new sequence');
  t.same(await s.recordBenchmarkRun('n1', 'b2', 1, r, 5000), { duplicate: false });
  const [n] = await s.listNodes();
  t.same(n?.latest && { pass: n.latest.pass, fail: n.latest.fail, score: n.latest.scorePercent }, { pass: 1, fail: 1, score: 50 });
});

t.test('an older run resent later does not replace the latest; ?at finds older runs', async (t) => {
  const s = SqliteStore.open(join(tempDir(t), 'v.db'));
  t.teardown(() => s.close());
  await s.recordHello(hello('n1'), 0);
  await s.recordBenchmarkRun('n1', 'b1', 2, reportOf('n1', { '4.1.1': 'PASS' }, { startedAt: '2026-11-02T00:00:00Z' }), 1);
  await s.recordBenchmarkRun('n1', 'b1', 3, reportOf('n1', { '4.1.1': 'FAIL' }, { startedAt: '2026-11-01T00:00:00Z' }), 2);
  t.equal((await s.nodeReport('n1'))?.checks[0]?.status, 'PASS');
  t.equal((await s.nodeReport('n1', Date.parse('2026-11-01T12:00:00Z')))?.checks[0]?.status, 'FAIL');
  t.equal(await s.nodeReport('n1', Date.parse('2026-10-01T00:00:00Z')), undefined);
  t.equal(await s.nodeReport('nobody'), undefined);
});

t.test('latest check statuses come from each node\'s latest run only', async (t) => {
  const s = SqliteStore.open(join(tempDir(t), 'v.db'));
  t.teardown(() => s.close());
  await s.recordHello(hello('n1'), 0);
  await s.recordBenchmarkRun('n1', 'b1', 1, reportOf('n1', { '4.1.1': 'FAIL' }, { startedAt: '2026-11-01T00:00:00Z' }), 1);
  await s.recordBenchmarkRun('n1', 'b1', 2, reportOf('n1', { '4.1.1': 'PASS' }, { startedAt: '2026-11-02T00:00:00Z' }), 2);
  t.same((await s.latestCheckStatuses()).map((c) => `${c.node} ${c.checkId} ${c.status}`), ['n1 4.1.1 PASS']);
});

t.test('connected follows hello and disconnect', async (t) => {
  const s = SqliteStore.open(join(tempDir(t), 'v.db'));
  t.teardown(() => s.close());
  await s.recordHello(hello('n1'), 1000);
  t.equal((await s.listNodes())[0]?.connected, true);
  await s.markDisconnected('n1', 5000);
  const [n] = await s.listNodes();
  t.equal(n?.connected, false);
  t.equal(n?.lastSeenMs, 5000);
});
