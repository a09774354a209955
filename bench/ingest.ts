import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { flowToWire } from '../proto/convert.js';
import { connectAgent, decodeAgentMessage, encodeAgentMessage, helloMessage } from './agent-stream.js';
import { syntheticFlow } from './flows.js';
import {
  cpuSeconds,
  measureFigure,
  percentile,
  startAggregatorChild,
  type BenchOptions,
  type Sink,
} from './harness.js';
import { freshPostgresUrl } from './postgres.js';
import { figure } from './table.js';

/**
 * bench/ingest: flows end to end — FlowBatch on the real gRPC stream over
 * loopback, decoded, stored, committed, acked — from 50 concurrent agent
 * streams into a real aggregator process. The figure is flows stored per CPU
 * second the aggregator process spent (utime+stime from /proc/<pid>/stat),
 * against the baseline measured in the same run: the rate at which this
 * process decodes the same batch bytes with the same protobuf decoder, per
 * CPU second. Goals: at least 100,000 flows per aggregator CPU-second, and at
 * least 0.25 of the decode rate. The baseline stays protobufjs's decode (grpc-js's
 * deserializer, the rate the goal was set against), though the aggregator now reads
 * a flow batch with its own decoder (proto/flow-batch-decode.ts), several times
 * faster than that baseline.
 */
const STREAMS = 50;

export async function runIngestBench(o: BenchOptions, out: Sink, signal: AbortSignal): Promise<void> {
  // Each stream sends its batches one after the other (the next once the last is acked) until
  // `seconds` have passed or it has sent them all; the figures count what was acked.
  const batches = o.quick ? 4 : 12;
  const records = 2000;
  const seconds = o.quick ? 15 : 45;
  const startMs = Math.floor(Date.now() / 60_000) * 60_000 - 60_000;
  const encoded: Buffer[] = [];
  for (let b = 0; b < batches; b++) {
    const wire = Array.from({ length: records }, (_, k) => flowToWire(syntheticFlow(b * records + k, startMs)));
    encoded.push(
      encodeAgentMessage({
        flowBatch: {
          seq: b + 1,
          windowStartUnixMs: startMs,
          windowEndUnixMs: startMs + 60_000,
          records: wire,
          sources: [{ source: 'calico', malformed: 0, lost: 0 }],
          droppedRecords: 0,
        },
      }),
    );
  }
  const decodeRate = measureDecodeRate(encoded, records);
  const batchKiB = encoded.reduce((a, b) => a + b.length, 0) / encoded.length / 1024;
  for (const db of o.dbs) {
    const label = `${STREAMS} streams, ${records}-flow batches (${batchKiB.toFixed(0)} KiB), ${db}`;
    const figs = await measureFigure(
      'ingest',
      `flows per aggregator CPU-second, ${db}`,
      seconds * 1000 + 60_000,
      's',
      (s) => ingestOnce(db, encoded, records, seconds, s),
    );
    for (const f of figs) {
      if (f.name.startsWith('flows per aggregator CPU-second') && f.value !== undefined) {
        out.add(
          figure({
            ...f,
            name: `flows per aggregator CPU-second vs protobuf decode, ${label}`,
            baseline: { name: 'decode of the same batches', value: decodeRate, unit: 'flows/CPU-s' },
            ratio: f.value / decodeRate,
            goal: { on: 'ratio', op: '>=', target: 0.25 },
          }),
        );
        out.add(figure({ ...f, goal: { on: 'value', op: '>=', target: 100_000 } }));
      } else out.add(f);
    }
    if (signal.aborted) return;
  }
}

/** Flows per CPU second of decoding `encoded` with the aggregator's deserializer, repeated for at least 1 s. */
function measureDecodeRate(encoded: Buffer[], records: number): number {
  for (const b of encoded) decodeAgentMessage(b); // JIT warm-up
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let flows = 0;
  while (performance.now() - t0 < 1000) {
    for (const b of encoded) decodeAgentMessage(b);
    flows += encoded.length * records;
  }
  const c = process.cpuUsage(c0);
  return flows / ((c.user + c.system) / 1e6);
}

async function ingestOnce(
  db: 'sqlite' | 'postgres',
  encoded: Buffer[],
  records: number,
  seconds: number,
  signal: AbortSignal,
) {
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-ingest-'));
  const url = db === 'sqlite' ? `sqlite:${join(dir, 'v.db')}` : await freshPostgresUrl();
  const agg = await startAggregatorChild(['--db', url], {
    signal,
    nodeArgs: profileArgs('ingest', db),
  });
  const agents = Array.from({ length: STREAMS }, () => connectAgent(agg.grpcPort));
  try {
    agents.forEach((a, i) => a.send(helloMessage(`ingest-${i}`)));
    await Promise.all(agents.map((a) => a.welcome()));
    const cpu0 = cpuSeconds(agg.pid);
    const t0 = performance.now();
    const latencies: number[] = [];
    const deadline = t0 + seconds * 1000;
    // A stream whose batch is rejected or whose stream fails stops there (a real agent would retry later);
    // the others go on, and the figures say how many failed and why.
    const failures: string[] = [];
    await Promise.all(
      agents.map(async (a) => {
        try {
          for (let b = 0; b < encoded.length && performance.now() < deadline; b++) {
            const s = performance.now();
            a.send(encoded[b] as Buffer);
            await a.ack(b + 1);
            latencies.push(performance.now() - s);
          }
        } catch (err) {
          failures.push((err as Error).message);
        }
      }),
    );
    const wallS = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(agg.pid) - cpu0;
    const flows = latencies.length * records;
    if (flows === 0) throw new Error(`no batch was acked: ${failures[0] ?? 'no answer'}`);
    return [
      figure({
        bench: 'ingest',
        name: `flows per aggregator CPU-second, ${db}`,
        value: flows / cpu,
        unit: 'flows/CPU-s',
      }),
      figure({
        bench: 'ingest',
        name: `wall-clock ingest rate, ${db} (aggregator CPU ${((cpu / wallS) * 100).toFixed(0)}% of a core)`,
        value: flows / wallS,
        unit: 'flows/s',
        note:
          `${flows} flows in ${wallS.toFixed(0)} s` +
          (failures.length ? `; ${failures.length} of ${STREAMS} streams failed: ${failures[0]}` : ''),
      }),
      figure({
        bench: 'ingest',
        name: `FlowBatch send-to-ack p99 (p50 ${percentile(latencies, 50).toFixed(0)} ms), ${db}`,
        value: percentile(latencies, 99),
        unit: 'ms',
      }),
    ];
  } finally {
    agents.forEach((a) => a.close());
    await agg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** node --cpu-prof for the aggregator when $BENCH_CPU_PROF names a directory (profiles of a missed goal). */
export function profileArgs(bench: string, db: string): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', `${bench}-${db}-${Date.now()}.cpuprofile`] : [];
}
