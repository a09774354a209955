import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { startAggregator } from '../aggregator/main.js';
import { AGGREGATOR_DEFAULTS } from '../aggregator/config.js';
import type { Sink } from './harness.js';
import { figure } from './table.js';

/**
 * bench/audit-webhook: how the audit webhook scales with the size of one
 * EventList. Posts lists of 22,500 and 90,000 policy changes (the largest is
 * 16 MiB, the body limit) to fresh aggregators and prints the time per event
 * of the large list over the small one (goal: at most 2, i.e. linear time; a
 * quadratic webhook gives 4 or more) and the longest event-loop stall while
 * the large list is processed (goal: under 1000 ms, so /healthz answers).
 */
export async function runAuditWebhookBench(out?: Sink, large_ = 90_000): Promise<void> {
  const small = await postList(large_ / 4);
  const large = await postList(large_);
  const ratio = large.ms / large_ / (small.ms / (large_ / 4));
  out?.add(
    figure({
      bench: 'audit-webhook',
      name: `${large_} events, time per event vs ${large_ / 4}`,
      value: large.ms,
      unit: 'ms',
      baseline: { name: `${large_ / 4} events`, value: small.ms, unit: 'ms' },
      ratio,
      goal: { on: 'ratio', op: '<=', target: 2 },
    }),
  );
  out?.add(
    figure({
      bench: 'audit-webhook',
      name: `longest event-loop stall, ${large_} events`,
      value: large.worstStallMs,
      unit: 'ms',
      goal: { on: 'value', op: '<=', target: 1000 },
    }),
  );
}

async function postList(n: number): Promise<{ ms: number; worstStallMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-audit-'));
  const agg = await startAggregator(
    {
      ...AGGREGATOR_DEFAULTS,
      httpAddress: '127.0.0.1:0',
      grpcAddress: '127.0.0.1:0',
      db: `sqlite:${join(dir, 'v.db')}`,
      logLevel: 'silent',
      protectedTiers: ['t1'],
    },
    pino({ level: 'silent' }),
  );
  try {
    const start = Date.parse('2026-11-20T10:00:00Z');
    const items = Array.from({ length: n }, (_, i) => ({
      auditID: `a${i}`,
      stage: 'ResponseComplete',
      verb: i % 3 === 0 ? 'create' : 'update',
      stageTimestamp: new Date(start + i * 1000).toISOString().replace('.000Z', 'Z'),
      objectRef: { resource: 'tiers', apiGroup: 'projectcalico.org', name: `t${i % 20_000}` },
    }));
    const body = JSON.stringify({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items });
    const stalls = monitorEventLoopDelay({ resolution: 10 });
    stalls.enable();
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/audit/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    const answer = (await res.json()) as { stored?: number };
    const ms = performance.now() - t0;
    stalls.disable();
    if (res.status !== 200 || answer.stored !== n)
      throw new Error(`bench/audit-webhook: ${n} events answered ${res.status} ${JSON.stringify(answer)}`);
    return { ms, worstStallMs: stalls.max / 1e6 };
  } finally {
    await agg.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
