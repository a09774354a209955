import type { CheckResult, ScanReport } from '../../common/scan-report.js';
import { toCsv } from '../../common/csv.js';
import { VERDICT_VERSION } from '../../common/version.js';

export type ReportFormat = 'table' | 'json' | 'csv' | 'junit' | 'sarif';

export function formatReport(report: ScanReport, format: ReportFormat): string {
  switch (format) {
    case 'json':
      return JSON.stringify(report, null, 2) + '\n';
    case 'csv':
      return scanCsv(report);
    case 'junit':
      return toJunit(report);
    case 'sarif':
      return toSarif(report);
    case 'table':
      return toTable(report);
  }
}

const STATUS_ORDER: Record<string, number> = { FAIL: 0, PASS: 1, SKIP: 2 };

/** A readable summary: failing checks first, with actual vs expected and the fix. */
function toTable(r: ScanReport): string {
  const s = r.summary;
  const lines = [
    `Node ${r.node} (${r.nodeRole}), ${r.benchmark.id} ${r.benchmark.version}, scanned ${r.startedAt} in ${r.durationMs} ms`,
    `Score ${s.scorePercent}%  pass ${s.pass}  fail ${s.fail}  skip ${s.skip}  (scored checks; ${r.checks.length} checks in all)`,
    '',
  ];
  const sorted = [...r.checks].sort(
    (a, b) => (STATUS_ORDER[a.status] ?? 3) - (STATUS_ORDER[b.status] ?? 3) || compareIds(a.id, b.id),
  );
  const rows = sorted.map((c) => [
    c.status,
    c.scored ? '' : 'info',
    c.id,
    truncate(c.title, 70),
    c.status === 'SKIP' ? (c.skipReason ?? '') : truncate(c.actual, 40),
  ]);
  lines.push(...table(['STATUS', '', 'ID', 'TITLE', 'ACTUAL / REASON'], rows));
  const failing = sorted.filter((c) => c.status === 'FAIL');
  if (failing.length > 0) {
    lines.push('', 'Failing checks:');
    for (const c of failing) {
      lines.push(`  ${c.id} ${c.title}${c.scored ? '' : ' (not scored)'}`);
      lines.push(`    actual:   ${c.actual}`, `    expected: ${c.expected}`);
      if (c.evidence) lines.push(`    evidence: ${c.evidence}`);
      if (c.remediation) lines.push(`    fix:      ${c.remediation.trim().replace(/\s+/g, ' ')}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** Left-aligned columns, two spaces apart. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  return [fmt(header), ...rows.map(fmt)];
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, n - 1) + '…';
}

function compareIds(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? -1) - (pb[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

const CSV_COLUMNS: (keyof CheckResult)[] = [
  'id',
  'title',
  'section',
  'level',
  'scored',
  'status',
  'skipReason',
  'expected',
  'actual',
  'evidence',
  'remediation',
];

function scanCsv(r: ScanReport): string {
  return toCsv(
    ['node', 'benchmark', ...CSV_COLUMNS],
    r.checks.map((c) => [r.node, r.benchmark.id, ...CSV_COLUMNS.map((k) => c[k] ?? '')]),
  );
}

function toJunit(r: ScanReport): string {
  const esc = (s: string) =>
    s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const failures = r.checks.filter((c) => c.status === 'FAIL').length;
  const skipped = r.checks.filter((c) => c.status === 'SKIP').length;
  const cases = r.checks.map((c) => {
    const open = `    <testcase classname="${esc(`${r.benchmark.id}.${c.section}`)}" name="${esc(`${c.id} ${c.title}`)}" time="0">`;
    if (c.status === 'FAIL') {
      return `${open}\n      <failure message="${esc(`expected ${c.expected}, got ${c.actual}`)}">${esc(`${c.evidence}\n${c.remediation}`)}</failure>\n    </testcase>`;
    }
    if (c.status === 'SKIP') return `${open}\n      <skipped message="${esc(c.skipReason ?? '')}"/>\n    </testcase>`;
    return `${open}</testcase>`;
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="verdict" tests="${r.checks.length}" failures="${failures}" skipped="${skipped}" time="${(r.durationMs / 1000).toFixed(3)}">`,
    `  <testsuite name="${esc(`${r.node} ${r.benchmark.id}`)}" tests="${r.checks.length}" failures="${failures}" skipped="${skipped}" timestamp="${esc(r.startedAt)}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

/** The node path an evidence line starts with ("/var/lib/kubelet/config.yaml: 644"), if it names one. */
export function evidencePath(evidence: string): string | undefined {
  return /^(\/[^\s:,;()]+)/.exec(evidence)?.[1];
}

/**
 * SARIF 2.1.0 (OASIS): one rule per check of the report, with its title and remediation; one result per FAIL, level
 * "error" when the check is scored and "warning" when not; a location naming the evidence's file when it has one.
 */
function toSarif(r: ScanReport): string {
  const rules = r.checks.map((c) => ({
    id: c.id,
    name: `CIS ${c.id}`,
    shortDescription: { text: c.title },
    fullDescription: { text: c.title },
    ...(c.remediation ? { help: { text: oneLine(c.remediation) } } : {}),
    properties: { section: c.section, level: c.level, scored: c.scored },
  }));
  const index = new Map(r.checks.map((c, i) => [c.id, i]));
  const results = r.checks
    .filter((c) => c.status === 'FAIL')
    .map((c) => {
      const path = evidencePath(c.evidence) ?? evidencePath(c.actual);
      return {
        ruleId: c.id,
        ruleIndex: index.get(c.id),
        level: c.scored ? 'error' : 'warning',
        message: { text: `${c.title}: expected ${c.expected}, got ${c.actual}${c.evidence ? ` (${c.evidence})` : ''}` },
        ...(path ? { locations: [{ physicalLocation: { artifactLocation: { uri: `file://${path}` } } }] } : {}),
        properties: { node: r.node, scored: c.scored },
      };
    });
  const sarif = {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'verdict-agent',
            version: VERDICT_VERSION,
            informationUri: 'https://www.cisecurity.org/benchmark/kubernetes',
            rules,
          },
        },
        results,
        invocations: [{ executionSuccessful: true, startTimeUtc: r.startedAt }],
        properties: { node: r.node, nodeRole: r.nodeRole, benchmark: r.benchmark, summary: r.summary },
      },
    ],
  };
  return JSON.stringify(sarif, null, 2) + '\n';
}

const oneLine = (s: string) => s.trim().replace(/\s+/g, ' ');
