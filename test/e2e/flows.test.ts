import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { workloadFromPodName } from '../../agent/flows/normalize.js';
import { packageRoot } from '../../common/package-root.js';
import { buildExampleNodes } from '../../examples/nodes.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';

// The recorded Calico sample through a real agent process (CLI, --flows, --spool)
// and a real aggregator on loopback with SQLite, with the log rotated and
// truncated mid-stream and the agent killed and restarted: the stored totals and
// the network-access summary must come out exactly as examples/flows/EXPECTED.md
// derives them by hand. No loss, no double count.
const root = packageRoot();
const AGENT = join(root, 'dist', 'agent', 'cli.js');
const SAMPLE = readFileSync(join(root, 'examples', 'flows', 'calico', 'flows.log'), 'utf8')
  .split('\n')
  .filter(Boolean);
const EXPECTED = JSON.parse(
  /```json\n([\s\S]*?)```/.exec(readFileSync(join(root, 'examples', 'flows', 'EXPECTED.md'), 'utf8'))?.[1] as string,
) as Record<string, Record<string, unknown>>;
const FROM = '2026-11-20T09:00:00Z';
const TO = '2026-11-20T12:00:00Z';
const connectionsOf = (lines: string[]) =>
  lines.reduce((s, l) => s + (JSON.parse(l) as { num_flows: number }).num_flows, 0);

type Agg = Awaited<ReturnType<typeof startTestAggregator>>;

async function storedConnections(agg: Agg): Promise<number> {
  const body = (await (
    await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/flows?from=${FROM}&to=${TO}&limit=10000`)
  ).json()) as { items: { connections: number }[] };
  return body.items.reduce((s, i) => s + i.connections, 0);
}

async function until(probe: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function startAgent(
  t: Parameters<Parameters<typeof t.test>[1]>[0],
  agg: Agg,
  nodeRoot: string,
  flowsFile: string,
  spool: string,
): ChildProcess {
  const child = spawn(
    process.execPath,
    [
      AGENT,
      'run',
      '--aggregator',
      `127.0.0.1:${agg.grpcPort}`,
      '--host-root',
      nodeRoot,
      '--node-name',
      'flow-node',
      '--flows',
      `calico:${flowsFile}`,
      '--spool',
      spool,
      '--flow-window-ms',
      '300',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return child;
}

async function assertSummary(t: Parameters<Parameters<typeof t.test>[1]>[0], agg: Agg): Promise<void> {
  const body = (await (
    await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/network-access?from=${FROM}&to=${TO}`)
  ).json()) as { endpoints: Record<string, unknown>[] };
  const keyOf = (k: string) =>
    k.startsWith('-/') ? k.slice(2) : `${k.split('/')[0]}/${workloadFromPodName(k.split('/')[1] as string)}`;
  t.same(body.endpoints.map((e) => e.endpoint).sort(), Object.keys(EXPECTED).map(keyOf).sort());
  for (const [k, want] of Object.entries(EXPECTED)) {
    const got = body.endpoints.find((e) => e.endpoint === keyOf(k));
    t.same(Object.fromEntries(Object.keys(want).map((f) => [f, got?.[f]])), want, k);
  }
}

t.test('rotation and truncation mid-stream: exact totals and the exact summary; malformed lines counted', async (t) => {
  const dir = tempDir(t);
  const agg = await startTestAggregator(t);
  const { roots } = buildExampleNodes(join(dir, 'nodes'));
  const file = join(dir, 'flows.log');
  writeFileSync(file, SAMPLE.slice(0, 15).join('\n') + '\n');
  startAgent(t, agg, roots['worker-hardened'], file, join(dir, 'spool'));
  await until(
    async () => (await storedConnections(agg)) === connectionsOf(SAMPLE.slice(0, 15)),
    'first 15 lines stored',
  );

  // logrotate "create": lines land in the old file, it is renamed, a new one starts.
  appendFileSync(file, SAMPLE.slice(15, 25).join('\n') + '\n');
  renameSync(file, `${file}.1`);
  writeFileSync(file, SAMPLE.slice(25, 30).join('\n') + '\n');
  await until(
    async () => (await storedConnections(agg)) === connectionsOf(SAMPLE.slice(0, 30)),
    '30 lines stored across the rotation',
  );

  // logrotate "copytruncate": the file is emptied in place and written again.
  truncateSync(file, 0);
  appendFileSync(
    file,
    ['{"this is": "not a flow record"}', ...SAMPLE.slice(30, 36), 'garbage that is not JSON', ...SAMPLE.slice(36)].join(
      '\n',
    ) + '\n',
  );
  await until(
    async () => (await storedConnections(agg)) === connectionsOf(SAMPLE),
    'all 43 lines stored after the truncation',
  );
  await new Promise((r) => setTimeout(r, 800)); // a few more windows: nothing may arrive twice
  t.equal(await storedConnections(agg), connectionsOf(SAMPLE), 'exact total, nothing counted twice');
  await assertSummary(t, agg);
  const metrics = await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
  t.match(metrics, /verdict_flows_malformed_total\{source="calico"\} 2/);
  t.match(metrics, /verdict_flows_received_total\{node="flow-node",action="allow"\} \d+/);
});

t.test('an agent killed mid-stream and restarted on its spool loses nothing and repeats nothing', async (t) => {
  const dir = tempDir(t);
  const agg = await startTestAggregator(t);
  const { roots } = buildExampleNodes(join(dir, 'nodes'));
  const file = join(dir, 'flows.log');
  const spool = join(dir, 'spool');
  writeFileSync(file, SAMPLE.slice(0, 20).join('\n') + '\n');
  const first = startAgent(t, agg, roots['worker-hardened'], file, spool);
  await until(
    async () => (await storedConnections(agg)) === connectionsOf(SAMPLE.slice(0, 20)),
    'first 20 lines stored',
  );
  appendFileSync(file, SAMPLE.slice(20, 30).join('\n') + '\n');
  await new Promise((r) => setTimeout(r, 350)); // some of these may be read, batched or even sent, but not all acked
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
  appendFileSync(file, SAMPLE.slice(30).join('\n') + '\n');
  startAgent(t, agg, roots['worker-hardened'], file, spool);
  await until(
    async () => (await storedConnections(agg)) === connectionsOf(SAMPLE),
    'all lines stored after the restart',
  );
  await new Promise((r) => setTimeout(r, 800));
  t.equal(await storedConnections(agg), connectionsOf(SAMPLE), 'exact total after the restart');
  await assertSummary(t, agg);
});

t.test('the Hubble exporter sample through a real agent gives exactly the hand-derived summary', async (t) => {
  const dir = tempDir(t);
  const agg = await startTestAggregator(t);
  const { roots } = buildExampleNodes(join(dir, 'nodes'));
  const file = join(dir, 'hubble-events.log');
  writeFileSync(file, readFileSync(join(root, 'examples', 'flows', 'hubble', 'flows.jsonl'), 'utf8'));
  const child = spawn(
    process.execPath,
    [
      AGENT,
      'run',
      '--aggregator',
      `127.0.0.1:${agg.grpcPort}`,
      '--host-root',
      roots['worker-hardened'],
      '--node-name',
      'cilium-node',
      '--flows',
      `hubble:${file}`,
      '--spool',
      join(dir, 'spool'),
      '--flow-window-ms',
      '300',
    ],
    { stdio: 'ignore' },
  );
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const expected = JSON.parse(
    [
      ...readFileSync(join(root, 'examples', 'flows', 'EXPECTED.md'), 'utf8').matchAll(/```json\n([\s\S]*?)```/g),
    ][1]?.[1] as string,
  ) as Record<string, Record<string, unknown>>;
  const summary = async () =>
    (await (await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/network-access?from=${FROM}&to=${TO}`)).json()) as {
      endpoints: Record<string, unknown>[];
    };
  await until(
    async () => (await summary()).endpoints.length === Object.keys(expected).length,
    'every Hubble endpoint stored',
  );
  await new Promise((r) => setTimeout(r, 800));
  const got = (await summary()).endpoints;
  for (const [k, want] of Object.entries(expected)) {
    const e = got.find((g) => g.endpoint === k);
    t.same(Object.fromEntries(Object.keys(want).map((f) => [f, e?.[f]])), want, k);
  }
});
