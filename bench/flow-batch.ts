import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import type { FlowRecord } from '../common/flow.js';
import { packageRoot } from '../common/package-root.js';
import { bucketParams } from '../aggregator/store/flow-buckets.js';
import { MINUTE_BUCKET_MS } from '../aggregator/store/index.js';
import { FLOW_BUCKET_UPSERT_SQL, SqliteStore } from '../aggregator/store/sqlite.js';
import type { Sink } from './harness.js';
import { figure } from './table.js';

/**
 * bench/flow-batch: what storing one 4 MiB flow batch (90,000 small records,
 * each its own key) costs in SQLite, and how long it holds the event loop.
 *
 * Times SqliteStore.recordFlowBatch (merged in memory, one transaction in
 * time slices, checkpoints in a worker) against a baseline measured in the
 * same run: the same upserts in one synchronous transaction on a fresh file,
 * with SQLite's automatic checkpoint, as the store did before. Prints both
 * times and their ratio (goal: at most 1.5x), and the longest the event loop
 * was held during each (goal: at most 100 ms for the store; the baseline
 * holds it throughout).
 */
export async function runFlowBatchBench(
  records = Number(process.env.BENCH_FLOW_RECORDS ?? 90_000),
  out?: Sink,
): Promise<{ ratio: number; worstStallMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-flows-'));
  try {
    const flows = tinyFlows(records);
    const baselineFile = join(dir, 'baseline.db');
    // The old store's table, as its migration made it (the store's own schema moves on).
    const legacy = new Database(baselineFile);
    legacy.exec(readFileSync(join(packageRoot(), 'aggregator/store/migrations/sqlite/002_flow_buckets.sql'), 'utf8'));
    legacy.close();
    const baseline = await measure(() => baselineStore(baselineFile, flows));
    const store = SqliteStore.open(join(dir, 'store.db'));
    const sliced = await measure(() => store.recordFlowBatch('bench', 'b1', 1, flows, Date.now()));
    await store.close();
    const ratio = sliced.ms / baseline.ms;
    out?.add(
      figure({
        bench: 'flow-batch',
        name: `SqliteStore.recordFlowBatch, ${records} records`,
        value: sliced.ms,
        unit: 'ms',
        baseline: { name: 'one sync transaction', value: baseline.ms, unit: 'ms' },
        ratio,
        goal: { on: 'ratio', op: '<=', target: 1.5 },
      }),
    );
    out?.add(
      figure({
        bench: 'flow-batch',
        name: `longest event-loop stall during it (baseline held ${baseline.worstStallMs.toFixed(0)} ms)`,
        value: sliced.worstStallMs,
        unit: 'ms',
        goal: { on: 'value', op: '<=', target: 100 },
      }),
    );
    return { ratio, worstStallMs: sliced.worstStallMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Wall time of `fn` and the longest event-loop delay while it ran. */
async function measure(fn: () => unknown): Promise<{ ms: number; worstStallMs: number }> {
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  // A timer turn first, so a synchronous `fn` is measured as the stall it is.
  await new Promise((resolve) => setTimeout(resolve, 10));
  const start = performance.now();
  await fn();
  const ms = performance.now() - start;
  await new Promise((resolve) => setTimeout(resolve, 10));
  delay.disable();
  return { ms, worstStallMs: delay.max / 1e6 };
}

/** The store's upserts in one synchronous transaction, with SQLite's own checkpoint: the old recordFlowBatch. */
function baselineStore(file: string, flows: FlowRecord[]): void {
  const db = new Database(file);
  db.pragma('synchronous = NORMAL');
  const upsert = db.prepare(FLOW_BUCKET_UPSERT_SQL);

  db.transaction(() => {
    for (const f of flows) upsert.run(bucketParams('bench', f, MINUTE_BUCKET_MS));
  })();
  db.close();
}

/** Flows as a 4 MiB batch of the smallest records carries them: one-letter names, no labels, each its own key. */
function tinyFlows(n: number): FlowRecord[] {
  const startMs = Math.floor(Date.now() / MINUTE_BUCKET_MS) * MINUTE_BUCKET_MS;
  const endpoint = (name: string) => ({
    kind: 'pod' as const,
    namespace: '',
    name,
    labels: [],
    serviceAccount: '',
    internet: false,
  });
  return Array.from({ length: n }, (_, i) => ({
    source: endpoint('abcdef'[i % 6] as string),
    destination: endpoint('b'),
    protocol: 'tcp',
    destinationPort: 1 + Math.floor(i / 6),
    action: 'allow',
    reporter: 'src',
    policies: [],
    stagedPolicies: [],
    unnamedPolicy: false,
    policyDecided: false,
    connections: 1,
    packets: 0,
    bytes: 0,
    startMs: startMs + 1000,
    endMs: startMs + 2000,
  }));
}
