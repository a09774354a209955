import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { workloadFromPodName } from '../../agent/flows/normalize.js';
import { packageRoot } from '../../common/package-root.js';
import { buildExampleNodes } from '../../examples/nodes.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

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

async function storedConnections(agg: Agg, from = FROM, to = TO): Promise<number> {
  const body = (await (
    await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/flows?from=${from}&to=${to}&limit=10000`)
  ).json()) as { items: { connections: number }[] };
  return body.items.reduce((s, i) => s + i.connections, 0);
}

// "Nothing arrives twice" is checked with a positive marker instead of a pause: a
// record timed outside the samples' window (14:00, not 09:00-12:00) is appended
// after the sample, so the agent reads, windows and sends it after everything
// before it (the log is read in order, windows and the spool are sent in order).
// Once the marker is stored, a duplicate of any earlier line would have been
// stored before it; the sample's window must then hold its exact total.
const MARKER_FROM = '2026-11-20T13:00:00Z';
const MARKER_TO = '2026-11-20T15:00:00Z';
const MARKER_CONNECTIONS = 7;
const CALICO_MARKER = JSON.stringify({
  ...(JSON.parse(SAMPLE[0] as string) as Record<string, unknown>),
  start_time: Date.parse('2026-11-20T14:00:00Z') / 1000,
  end_time: Date.parse('2026-11-20T14:05:00Z') / 1000,
  dest_port: 9999,
  num_flows: MARKER_CONNECTIONS,
  num_flows_started: MARKER_CONNECTIONS,
  num_flows_completed: MARKER_CONNECTIONS,
});

/** Append the marker and wait until it, and so everything the agent read before it, is stored. */
async function markerStored(agg: Agg, file: string): Promise<void> {
  appendFileSync(file, CALICO_MARKER + '\n');
  await until(
    async () => (await storedConnections(agg, MARKER_FROM, MARKER_TO)) === MARKER_CONNECTIONS,
    'the marker line, appended last, stored',
    20_000,
  );
}

function startAgent(t: Test, agg: Agg, nodeRoot: string, flowsFile: string, spool: string): ChildProcess {
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

/**
 * A field of EXPECTED.md's summary from an API endpoint: EXPECTED.md derives protection from the flows alone, with
 * null where a direction was not observed; the API's own flags are Calico's (never null) and the flows' evidence is
 * its `observed` part.
 */
function summaryField(e: Record<string, unknown> | undefined, f: string): unknown {
  if (f === 'ingressProtected' || f === 'egressProtected') return (e?.observed as Record<string, unknown> | null)?.[f];
  return e?.[f];
}

async function assertSummary(t: Test, agg: Agg): Promise<void> {
  const body = (await (
    await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/network-access?from=${FROM}&to=${TO}`)
  ).json()) as { endpoints: Record<string, unknown>[] };
  const keyOf = (k: string) =>
    k.startsWith('-/') ? k.slice(2) : `${k.split('/')[0]}/${workloadFromPodName(k.split('/')[1] as string)}`;
  t.same(body.endpoints.map((e) => e.endpoint).sort(), Object.keys(EXPECTED).map(keyOf).sort());
  for (const [k, want] of Object.entries(EXPECTED)) {
    const got = body.endpoints.find((e) => e.endpoint === keyOf(k));
    t.same(Object.fromEntries(Object.keys(want).map((f) => [f, summaryField(got, f)])), want, k);
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
    20_000,
  );

  // logrotate "create": lines land in the old file, it is renamed, a new one starts.
  appendFileSync(file, SAMPLE.slice(15, 25).join('\n') + '\n');
  renameSync(file, `${file}.1`);
  writeFileSync(file, SAMPLE.slice(25, 30).join('\n') + '\n');
  await until(
    async () => (await storedConnections(agg)) === connectionsOf(SAMPLE.slice(0, 30)),
    '30 lines stored across the rotation',
    20_000,
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
    20_000,
  );
  await markerStored(agg, file);
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
    20_000,
  );
  appendFileSync(file, SAMPLE.slice(20, 30).join('\n') + '\n');
  // A fixed pause on purpose: the kill should land at an arbitrary point (some of these lines read,
  // batched or even sent, but not all acked); the assertions below do not depend on where it lands.
  await new Promise((r) => setTimeout(r, 350));
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
  appendFileSync(file, SAMPLE.slice(30).join('\n') + '\n');
  startAgent(t, agg, roots['worker-hardened'], file, spool);
  await until(
    async () => (await storedConnections(agg)) === connectionsOf(SAMPLE),
    'all lines stored after the restart',
    20_000,
  );
  await markerStored(agg, file);
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
    20_000,
  );
  // The marker: the sample's first event again, but at 14:00 (outside the summary's window), appended last.
  const first = readFileSync(file, 'utf8').split('\n')[0] as string;
  const time = (JSON.parse(first) as { time: string }).time;
  appendFileSync(file, first.replaceAll(time, '2026-11-20T14:00:04Z') + '\n');
  await until(
    async () => (await storedConnections(agg, MARKER_FROM, MARKER_TO)) > 0,
    'the marker event, appended last, stored',
    20_000,
  );
  const got = (await summary()).endpoints;
  for (const [k, want] of Object.entries(expected)) {
    const e = got.find((g) => g.endpoint === k);
    t.same(Object.fromEntries(Object.keys(want).map((f) => [f, summaryField(e, f)])), want, k);
  }
});
