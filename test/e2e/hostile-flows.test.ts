import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { InternalNetworks } from '../../agent/flows/normalize.js';
import { HubbleParser } from '../../agent/flows/sources/hubble.js';
import { packageRoot } from '../../common/package-root.js';
import { buildExampleNodes } from '../../examples/nodes.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { fill, smallDisk } from '../fixtures/full-disk.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

// Issue 10's agent-side defects, reproduced with real agent processes, real
// files and a real aggregator on loopback: one bad flow line crash-looped the
// agent (defect 1); a big window was dropped or stalled the stream (defect 2);
// a full spool disk crash-looped the agent and double-counted (defect 4).
const root = packageRoot();
const AGENT = join(root, 'dist', 'agent', 'cli.js');
const CALICO = readFileSync(join(root, 'examples', 'flows', 'calico', 'flows.log'), 'utf8')
  .split('\n')
  .filter(Boolean);
const HUBBLE = readFileSync(join(root, 'examples', 'flows', 'hubble', 'flows.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean);
type Agg = Awaited<ReturnType<typeof startTestAggregator>>;

// Every sample line here is timed before noon on 2026-11-20. "Nothing more arrives" is checked with
// positive markers instead of pauses: a line timed later (MARKER_FROM_MS and after) is appended last,
// so the agent reads, windows and sends it after everything before it (logs are read in order,
// windows and the spool sent in order). Once a marker is stored, a line counted twice, or a crash on
// an earlier line, would already show; `stored` counts only the sample lines, `markers` the markers.
const MARKER_FROM_MS = Date.parse('2026-11-20T12:00:00Z');
const CALICO_MARKER_CONNECTIONS = 7;

async function connectionsBetween(agg: Agg, fromMs: number, toMs: number): Promise<number> {
  const rows = await agg.store.flowRows({ fromMs, toMs });
  return rows.reduce((n, r) => n + r.flow.connections, 0);
}
const stored = (agg: Agg) => connectionsBetween(agg, 0, MARKER_FROM_MS);
const markers = (agg: Agg) => connectionsBetween(agg, MARKER_FROM_MS, 8.64e15);

/** Marker line `k` (1, 2, ...) for a source, and the connections it adds: a distinct flow at 13:00 + k minutes. */
function markerLine(source: string, k: number): { line: string; connections: number } {
  const at = Date.parse('2026-11-20T13:00:00Z') + k * 60_000;
  if (source === 'hubble') {
    const first = HUBBLE[0] as string;
    const time = (JSON.parse(first) as { time: string }).time;
    return { line: first.replaceAll(time, new Date(at).toISOString()), connections: 1 };
  }
  const c = CALICO_MARKER_CONNECTIONS;
  const line = JSON.stringify({
    ...(JSON.parse(CALICO[0] as string) as Record<string, unknown>),
    start_time: at / 1000,
    end_time: at / 1000 + 60,
    dest_port: 61_000 + k,
    num_flows: c,
    num_flows_started: c,
    num_flows_completed: c,
  });
  return { line, connections: c };
}

/** Append markers 1..k's successor to `file` and wait until every marker so far is stored. */
async function markerStored(agg: Agg, file: string, source: string, k: number): Promise<void> {
  appendFileSync(file, markerLine(source, k).line + '\n');
  let want = 0;
  for (let i = 1; i <= k; i++) want += markerLine(source, i).connections;
  await until(async () => (await markers(agg)) === want, `marker ${k}, appended last, stored`, 30_000);
}

async function metrics(agg: Agg): Promise<string> {
  return (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
}

interface AgentProcess {
  child: ChildProcess;
  exited: () => boolean;
  stderr: () => string;
}

function startAgent(t: Test, agg: Agg, nodeRoot: string, args: string[]): AgentProcess {
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
      'hostile-node',
      '--flow-window-ms',
      '300',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let exited = false;
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (err += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  child.once('exit', () => (exited = true));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return { child, exited: () => exited, stderr: () => err };
}

async function kill(p: AgentProcess): Promise<void> {
  if (p.exited()) return;
  p.child.kill('SIGKILL');
  await new Promise((r) => p.child.once('exit', r));
}

const connections = (lines: string[]) =>
  lines.reduce((n, l) => n + (JSON.parse(l) as { num_flows: number }).num_flows, 0);

const calicoArgs = (file: string, spool: string) => [
  '--flows',
  `calico:${file}`,
  '--spool',
  spool,
  '--internal-cidr',
  '10.0.0.0/8',
];
const hubbleArgs = (file: string, spool: string) => ['--flows', `hubble:${file}`, '--spool', spool];

const CASES = [
  {
    name: 'a Calico line whose dest_ip is a list, under --internal-cidr',
    source: 'calico',
    lines: [
      ...CALICO.slice(0, 5),
      JSON.stringify({ ...JSON.parse(CALICO[0] as string), dest_ip: ['10.1.2.3'] }),
      ...CALICO.slice(5, 10),
    ],
    bad: 1,
    want: connections(CALICO.slice(0, 10)),
    args: calicoArgs,
  },
  {
    name: 'a Hubble line with "l4":{"TCP":null}, and one whose time has no string form',
    source: 'hubble',
    lines: (() => {
      const first = JSON.parse(HUBBLE[0] as string) as { flow: Record<string, unknown> };
      return [
        JSON.stringify({
          ...first,
          flow: { ...first.flow, l4: { TCP: null }, IP: { source: '198.51.100.7', destination: '10.244.1.20' } },
        }),
        JSON.stringify({ ...first, flow: { ...first.flow, time: { toString: 1 } } }),
        ...HUBBLE,
      ];
    })(),
    bad: 1, // the TCP:null line reads as "no ports": a flow, not malformed; the time line is malformed
    want: (() => {
      // What a reference parser makes of the good lines: their flows, and the trace-first connections it holds for a
      // verdict and hands over later (released or flushed), each stored once; plus the TCP:null line's flow.
      const p = new HubbleParser(new InternalNetworks());
      let n = 0;
      for (const l of HUBBLE) {
        const r = p.line(l);
        if (r.kind === 'flow') n += r.flow.connections;
      }
      for (const f of [...p.release(), ...p.flush()]) n += f.connections;
      return n + 1;
    })(),
    args: hubbleArgs,
  },
];

for (const c of CASES) {
  t.test(
    `${c.name}: counted as malformed or read; the agent stays up and keeps every good line (it used to crash-loop)`,
    async (t) => {
      const dir = tempDir(t);
      const agg = await startTestAggregator(t);
      const { roots } = buildExampleNodes(join(dir, 'nodes'));
      const file = join(dir, 'flows.log');
      writeFileSync(file, c.lines.join('\n') + '\n');
      const agent = startAgent(t, agg, roots['worker-hardened'], c.args(file, join(dir, 'spool')));
      await until(async () => (await stored(agg)) >= c.want, 'every good line stored', 30_000);
      await until(
        async () =>
          new RegExp(`verdict_flows_malformed_total\\{source="${c.source}"\\} ${c.bad}\\b`).test(await metrics(agg)),
        'the bad line counted',
        30_000,
      );
      await markerStored(agg, file, c.source, 1);
      t.notOk(agent.exited(), `the agent is still running ${agent.stderr().slice(-300)}`);
      t.equal(await stored(agg), c.want, 'every good line once');

      // After a restart on the same spool, nothing is read twice and the agent still runs: it reads
      // and sends a second marker, appended after the restart, behind anything it might repeat.
      await kill(agent);
      const again = startAgent(t, agg, roots['worker-hardened'], c.args(file, join(dir, 'spool')));
      await markerStored(agg, file, c.source, 2);
      t.notOk(again.exited(), 'the restarted agent is still running');
      t.equal(await stored(agg), c.want, 'nothing stored twice after the restart');
    },
  );
}

/** `n` Calico lines, each its own flow key (distinct destination port and workload). */
function distinctFlows(n: number): string[] {
  const base = JSON.parse(CALICO[0] as string) as Record<string, unknown>;
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      ...base,
      dest_port: 1 + (i % 60000),
      dest_name_aggr: `svc${Math.floor(i / 60000)}-${i}-*`,
      num_flows: 1,
      num_flows_started: 1,
    }),
  );
}

t.test(
  '20,000 distinct flows in one window reach the aggregator exactly once, cut under its message limit',
  async (t) => {
    for (const maxMessageBytes of [4 * 1024 * 1024, 256 * 1024]) {
      await t.test(`limit ${maxMessageBytes} bytes`, async (t) => {
        const dir = tempDir(t);
        const agg = await startTestAggregator(t, { maxMessageBytes });
        const { roots } = buildExampleNodes(join(dir, 'nodes'));
        const file = join(dir, 'flows.log');
        const lines = distinctFlows(20_000);
        writeFileSync(file, '');
        const agent = startAgent(t, agg, roots['worker-hardened'], [
          '--flows',
          `calico:${file}`,
          '--spool',
          join(dir, 'spool'),
          '--flow-window-ms',
          '2000',
        ]);
        await until(async () => (await agg.store.listNodes()).length === 1, 'the agent connected', 30_000);
        appendFileSync(file, lines.join('\n') + '\n');
        await until(async () => (await stored(agg)) >= 20_000, 'all 20,000 stored', 60_000);
        await markerStored(agg, file, 'calico', 1);
        t.equal(await stored(agg), 20_000, 'exactly once');
        const m = await metrics(agg);
        t.notMatch(m, /verdict_ingest_rejected_total\{reason="oversized"\} [1-9]/, 'no batch was too large');
        t.notMatch(m, /verdict_agent_flows_dropped_total\{node="hostile-node"\} [1-9]/, 'nothing dropped');
        t.notOk(agent.exited());
      });
    }
  },
);

t.test(
  'batches cut before the aggregator said its limit are cut smaller when refused, and all arrive once',
  async (t) => {
    const dir = tempDir(t);
    const { roots } = buildExampleNodes(join(dir, 'nodes'));
    const file = join(dir, 'flows.log');
    writeFileSync(file, distinctFlows(5000).join('\n') + '\n');
    // The agent starts first: it cuts its first window at the 4 MiB it assumes, then meets a 64 KiB aggregator.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const fakeAgg = { grpcPort: port } as Agg;
    const agent = startAgent(t, fakeAgg, roots['worker-hardened'], [
      '--flows',
      `calico:${file}`,
      '--spool',
      join(dir, 'spool'),
      '--flow-window-ms',
      '300',
    ]);
    // Windows close while nobody listens: wait until one is cut and spooled whose batch is over the 64 KiB the
    // aggregator will take (its file holds the batch in base64, so well over 64 KiB), not a fixed time. A small first
    // window alone would fit, and the refusal this test is about would not happen.
    const batches = join(dir, 'spool', 'batches');
    await until(
      () =>
        existsSync(batches) &&
        readdirSync(batches).some((n) => /^\d+\.json$/.test(n) && statSync(join(batches, n)).size > 128 * 1024),
      'a window over 64 KiB cut and spooled while the aggregator is down',
      30_000,
    );
    const agg = await startTestAggregator(t, { grpcAddress: `127.0.0.1:${port}`, maxMessageBytes: 64 * 1024 });
    await until(async () => (await stored(agg)) >= 5000, 'all 5,000 stored', 60_000);
    await markerStored(agg, file, 'calico', 1);
    t.equal(await stored(agg), 5000, 'exactly once');
    t.match(
      await metrics(agg),
      /verdict_ingest_rejected_total\{reason="oversized"\} [1-9]/,
      'the first batch was refused as too large',
    );
    t.notMatch(
      await metrics(agg),
      /verdict_agent_flows_dropped_total\{node="hostile-node"\} [1-9]/,
      'and nothing was dropped',
    );
    t.notOk(agent.exited());
  },
);

t.test('a full spool disk: the agent keeps running, restarts on it, and 150 lines fed are 150 stored', async (t) => {
  const dir = tempDir(t);
  const small = smallDisk(t, dir, '2m');
  if ('skip' in small) {
    t.skip(small.skip, () => {});
    return;
  }
  const { disk } = small;
  const agg = await startTestAggregator(t);
  const { roots } = buildExampleNodes(join(dir, 'nodes'));
  const file = join(dir, 'flows.log');
  const spool = join(disk, 'spool');
  const lines = distinctFlows(150);
  writeFileSync(file, lines.slice(0, 50).join('\n') + '\n');
  const args = ['--flows', `calico:${file}`, '--spool', spool];
  const first = startAgent(t, agg, roots['worker-hardened'], args);
  await until(async () => (await stored(agg)) === 50, '50 stored with room on the disk', 30_000);

  // Fill the disk only once the agent has settled (and deleted) every spooled group: a group file deleted after the
  // filling would free room for the next window, which would then be spooled after all.
  const batchFiles = () => readdirSync(join(spool, 'batches')).filter((n) => /^\d+\.json$/.test(n));
  await until(() => batchFiles().length === 0, 'every spooled group settled and deleted', 30_000);
  const filler = fill(disk);
  appendFileSync(file, lines.slice(50, 100).join('\n') + '\n');
  await until(async () => (await stored(agg)) === 100, '100 stored with the spool disk full', 30_000);
  t.notOk(first.exited(), 'the agent runs on with its spool disk full');
  // The agent's log arrives through a pipe, independently of what the aggregator stores: wait for the line.
  await until(
    () => /cannot write to the spool; sending from memory only/.test(first.stderr()),
    'the agent logs that it cannot write to the spool',
    10_000,
  );

  await kill(first);
  const second = startAgent(t, agg, roots['worker-hardened'], args);
  await markerStored(agg, file, 'calico', 1);
  t.notOk(second.exited(), `restarting on a full spool disk does not crash (${second.stderr().slice(-300)})`);
  t.equal(await stored(agg), 100, 'the lines sent while the disk was full are not sent again after the restart');

  rmSync(filler);
  appendFileSync(file, lines.slice(100).join('\n') + '\n');
  await until(async () => (await stored(agg)) >= 150, '150 stored after space returns', 30_000);
  await markerStored(agg, file, 'calico', 2);
  t.equal(await stored(agg), 150, '150 lines fed, 150 stored');
  const leftovers = readdirSync(spool, { recursive: true })
    .map(String)
    .filter((n) => n.includes('.tmp-'));
  t.same(leftovers, [], 'no temporary files left behind');
});
