import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Counter } from 'prom-client';
import { BENCHMARKS_FLAGS, SCAN_COMMAND_FLAGS, SCAN_FLAGS } from '../../agent/cli.js';
import { RUN_FLAGS } from '../../agent/run.js';
import { AGGREGATOR_FLAGS } from '../../aggregator/defaults.js';
import { INGEST_REJECT_REASONS } from '../../aggregator/ingest/reasons.js';
import { AggregatorMetrics } from '../../aggregator/metrics.js';
import { packageRoot } from '../../common/package-root.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { servedRoutes } from '../fixtures/routes.js';

// README and code in agreement, so nothing undocumented is exported and nothing
// documented is missing: every metric the aggregator registers is in the
// README's table and nothing else is, and every fixed label value its counters
// export is named there; every HTTP route it serves is in the README's route
// tables with its method and path, and every route listed there is served; the
// ingest refusal reasons the README lists are exactly those the aggregator
// counts, and every Reject code it uses is in the .proto's service comment;
// every flag the agent and aggregator parse is in the README, and every flag
// the README shows is one they parse.
const root = packageRoot();
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const source = (p: string) => readFileSync(join(root, p), 'utf8');

/** The README's Aggregator section (its HTTP API, Reports, Who may read and Metrics parts). */
const aggregatorSection = /\n## Aggregator\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? '';

/** "METHOD path" of every row of the README's route tables: "| `GET /healthz`, `/readyz` | ..." is two GET routes. */
function documentedRoutes(section: string): string[] {
  const routes: string[] = [];
  for (const row of section.matchAll(/^\| (`[A-Z]+ \/[^|]*?) \|/gm)) {
    let method = '';
    for (const m of (row[1] as string).matchAll(/`(?:([A-Z]+) )?(\/[^`\s]*)`/g)) {
      method = m[1] ?? method;
      routes.push(`${method} ${m[2] as string}`);
    }
  }
  return routes;
}

t.test('every metric in /metrics is in the README table, and every metric in the table exists', async (t) => {
  // The gauges read the store only when scraped; none is scraped here.
  const metrics = new AggregatorMetrics(undefined as unknown as ConstructorParameters<typeof AggregatorMetrics>[0]);
  metrics.trackReports(() => [], 0);
  const registered = metrics.registry
    .getMetricsAsArray()
    .map((m) => (m as unknown as { name: string }).name)
    .filter((n) => n.startsWith('verdict_') && !n.startsWith('verdict_aggregator_'));
  const documented = [...readme.matchAll(/^\| `(verdict_[a-z_]+)` \|/gm)].map((m) => m[1] as string);
  t.same([...new Set(documented)].sort(), [...new Set(registered)].sort());
});

t.test('every label value a counter exports by itself is named in the README table', async (t) => {
  // Node and report values come from the cluster; every other label has a fixed set, exported at 0 from the first
  // scrape.
  const metrics = new AggregatorMetrics(undefined as unknown as ConstructorParameters<typeof AggregatorMetrics>[0]);
  metrics.trackReports(() => [{ name: 'some-report', suspend: false }], 0);
  metrics.nodeSeen('some-node');
  const table = /\n### Metrics\n([\s\S]*?)(?:\n#|$)/.exec(readme)?.[1] ?? '';
  let checked = 0;
  for (const metric of metrics.registry.getMetricsAsArray()) {
    const name = (metric as unknown as { name: string }).name;
    if (!name.startsWith('verdict_') || name.startsWith('verdict_aggregator_') || !name.endsWith('_total')) continue;
    // No store behind it: the per-node counters' collect finds no nodes beyond the one seen above.
    for (const { labels } of (await (metric as unknown as Counter).get()).values) {
      for (const [label, value] of Object.entries(labels)) {
        if (label === 'node' || label === 'report') continue;
        checked++;
        t.match(
          table,
          `\`${String(value)}\``,
          `${name}{${label}="${String(value)}"} is named in the README's Metrics section`,
        );
      }
    }
  }
  t.ok(checked > 20, `${checked} label values checked`);
});

t.test(
  'every HTTP route the aggregator serves is in the README with its method and path, and every route the README lists is served',
  async (t) => {
    const agg = await startTestAggregator(t);
    const served = servedRoutes(agg.app.printRoutes({ commonPrefix: false }));
    const documented = documentedRoutes(aggregatorSection);
    t.ok(served.length > 10, `${served.length} routes served`);
    t.ok(
      served.includes('POST /api/v1/audit/webhook') && served.includes('GET /api/v1/reports/:name/runs/:id'),
      'the route tree was read, nested routes included',
    );
    t.ok(documented.includes('GET /readyz'), 'a second path in a row takes the method before it');
    for (const r of served) t.ok(documented.includes(r), `${r} is in the README's route tables`);
    for (const r of documented) t.ok(served.includes(r), `${r} (in the README) is served`);
    t.equal(new Set(documented).size, documented.length, 'each route is listed once');
  },
);

t.test(
  'the README lists exactly the ingest refusal reasons the aggregator counts; every Reject code is in the .proto',
  async (t) => {
    const server = source('aggregator/ingest/server.ts');
    const reasons = new Set(
      [...server.matchAll(/(?:reason: |reject\(\w+, |refuse\()'([a-z_]+)'/g)].map((m) => m[1] as string),
    );
    reasons.add('malformed').add('oversized'); // from the undecodable path, by variable
    const known: readonly string[] = INGEST_REJECT_REASONS;
    for (const r of reasons)
      t.ok(known.includes(r), `reason ${r} is one of INGEST_REJECT_REASONS (exported at 0 from the first scrape)`);
    const row = /`verdict_ingest_rejected_total` \| reason \| ([^\n]+)/.exec(readme)?.[1] ?? '';
    const documented = [...row.matchAll(/`([a-z_]+)`/g)].map((m) => m[1] as string);
    t.same([...documented].sort(), [...known].sort(), 'the README row names every reason, and only those');
    const codes = new Set([...server.matchAll(/'(VERDICT_INGEST_[A-Z_]+)'/g)].map((m) => m[1] as string));
    const proto = source('proto/verdict/v1/agent.proto');
    for (const c of codes) t.match(proto, c, `${c} in the .proto's contract`);
    t.ok(codes.size >= 5);
  },
);

t.test('every agent flag is in the README and every flag the README gives the agent is parsed', async (t) => {
  // agent/cli.ts parses exactly the flags of its tables: what to scan, scan's, run's and benchmarks'.
  const parsed = new Set([
    ...Object.keys(SCAN_FLAGS),
    ...Object.keys(SCAN_COMMAND_FLAGS),
    ...Object.keys(RUN_FLAGS),
    ...Object.keys(BENCHMARKS_FLAGS),
  ]);
  const section = /## Agent\n\n```\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  t.ok(parsed.size > 10);
  const shown = new Set([...section.matchAll(/--([a-z][a-z-]+)/g)].map((m) => m[1] as string));
  for (const f of parsed) if (f !== 'help') t.ok(shown.has(f), `--${f} is documented`);
  for (const f of shown) t.ok(parsed.has(f), `--${f} (in the README) is a flag the agent parses`);
});

t.test('every aggregator flag is in the README and every flag the README gives the aggregator is parsed', async (t) => {
  // aggregator/config.ts parses exactly the flags of the table in aggregator/defaults.ts.
  const parsed = new Set(Object.keys(AGGREGATOR_FLAGS));
  t.ok(parsed.size > 10);
  const usage = /## Aggregator\n\n```\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  const shown = new Set([...usage.matchAll(/--([a-z][a-z-]+)/g)].map((m) => m[1] as string));
  for (const f of parsed) if (f !== 'help') t.ok(shown.has(f), `--${f} is in the README's usage`);
  for (const f of shown) t.ok(parsed.has(f), `--${f} (in the README) is a flag the aggregator parses`);
});
