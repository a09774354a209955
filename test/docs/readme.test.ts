import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { SCAN_OPTIONS } from '../../agent/cli.js';
import { AggregatorMetrics } from '../../aggregator/metrics.js';
import { packageRoot } from '../../common/package-root.js';

// README and code in agreement: every metric the aggregator registers is in
// the README's table and nothing else is; every ingest refusal reason and every
// Reject code the aggregator uses is documented (README, and the .proto's
// service comment); every flag the agent and aggregator parse is in the README,
// and every flag the README shows is one they parse.
const root = packageRoot();
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const source = (p: string) => readFileSync(join(root, p), 'utf8');

/** Option names of a parseArgs `options: { ... }` literal in a source file. */
function optionNames(text: string): string[] {
  return [...text.matchAll(/'?([a-z][a-z-]*)'?: \{ type: '(?:string|boolean)'/g)].map((m) => m[1] as string);
}

t.test('every metric in /metrics is in the README table, and every metric in the table exists', async (t) => {
  // The gauges read the store only when scraped; none is scraped here.
  const metrics = new AggregatorMetrics(undefined as unknown as ConstructorParameters<typeof AggregatorMetrics>[0]);
  metrics.trackReports(() => [], 0);
  const registered = metrics.registry.getMetricsAsArray().map((m) => (m as unknown as { name: string }).name).filter((n) => n.startsWith('verdict_') && !n.startsWith('verdict_aggregator_'));
  const documented = [...readme.matchAll(/^\| `(verdict_[a-z_]+)` \|/gm)].map((m) => m[1] as string);
  t.same([...new Set(documented)].sort(), [...new Set(registered)].sort());
});

t.test('every ingest refusal reason and Reject code is documented', async (t) => {
  const server = source('aggregator/ingest/server.ts');
  const reasons = new Set([...server.matchAll(/(?:reason: |reject\(\w+, |refuse\()'([a-z_]+)'/g)].map((m) => m[1] as string));
  reasons.add('malformed').add('oversized'); // from the undecodable path, by variable
  const row = /`verdict_ingest_rejected_total` \| reason \| ([^\n]+)/.exec(readme)?.[1] ?? '';
  for (const r of reasons) t.match(row, `\`${r}\``, `reason ${r} in the README`);
  const codes = new Set([...server.matchAll(/'(VERDICT_INGEST_[A-Z_]+)'/g)].map((m) => m[1] as string));
  const proto = source('proto/verdict/v1/agent.proto');
  for (const c of codes) t.match(proto, c, `${c} in the .proto's contract`);
  t.ok(codes.size >= 5);
});

t.test('every agent flag is in the README and every flag the README gives the agent is parsed', async (t) => {
  const parsed = new Set([...Object.keys(SCAN_OPTIONS), ...optionNames(source('agent/run.ts')), ...optionNames(source('agent/cli.ts'))]);
  const section = /## Agent\n\n```\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  t.ok(parsed.size > 10);
  const shown = new Set([...section.matchAll(/--([a-z][a-z-]+)/g)].map((m) => m[1] as string));
  for (const f of parsed) if (f !== 'help') t.ok(shown.has(f), `--${f} is documented`);
  for (const f of shown) t.ok(parsed.has(f), `--${f} (in the README) is a flag the agent parses`);
});

t.test('every aggregator flag is in the README and every flag the README gives the aggregator is parsed', async (t) => {
  const parsed = new Set(optionNames(source('aggregator/config.ts')));
  t.ok(parsed.size > 10);
  const usage = /## Aggregator\n\n```\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  const shown = new Set([...usage.matchAll(/--([a-z][a-z-]+)/g)].map((m) => m[1] as string));
  for (const f of parsed) if (f !== 'help') t.ok(shown.has(f), `--${f} is in the README's usage`);
  for (const f of shown) t.ok(parsed.has(f), `--${f} (in the README) is a flag the aggregator parses`);
});
