import { summarize, type CheckResult, type ScanReport } from '../../common/scan-report.js';
import { toCsv } from '../../common/csv.js';
import { VERDICT_VERSION } from '../../common/version.js';

export type ReportFormat = 'table' | 'json' | 'csv' | 'junit' | 'sarif';

/** How the table is drawn: ANSI colour or not, and the width it wraps to. */
export interface TableStyle {
  color: boolean;
  width: number;
}

const PLAIN: TableStyle = { color: false, width: 100 };

/**
 * The table's style for a stream: colour on a terminal unless NO_COLOR is set (FORCE_COLOR=1 forces it when piped);
 * the terminal's width, 100 columns when piped.
 */
export function tableStyle(
  stream: { isTTY?: boolean; columns?: number },
  env: Record<string, string | undefined>,
): TableStyle {
  const tty = stream.isTTY === true;
  const color = env.NO_COLOR
    ? false
    : env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== ''
      ? env.FORCE_COLOR !== '0'
      : tty;
  const width = tty && stream.columns && stream.columns > 0 ? Math.max(stream.columns, 40) : 100;
  return { color, width };
}

/**
 * The report in a format. `sectionTitles` are the benchmark's (scanNode's result): the table's headings; without
 * them sections are headed by their ids.
 */
export function formatReport(
  report: ScanReport,
  format: ReportFormat,
  style: TableStyle = PLAIN,
  sectionTitles: Readonly<Record<string, string>> = {},
): string {
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
      return toTable(report, style, sectionTitles);
  }
}

/** A section's heading: its id and, when the benchmark names it (its `sections`), its title ("4.2 Kubelet"). */
export const sectionTitle = (id: string, titles: Readonly<Record<string, string>>): string => {
  const t = Object.hasOwn(titles, id) ? titles[id] : undefined;
  return t ? `${id} ${t}` : id;
};

const ANSI = { red: 31, green: 32, yellow: 33, blue: 34, bold: 1, dim: 2 } as const;

/** The tag a check is shown with: an unscored failure is a warning, as kube-bench shows it. */
function tagOf(c: CheckResult): { tag: string; color: keyof typeof ANSI } {
  if (c.status === 'PASS') return { tag: '[PASS]', color: 'green' };
  if (c.status === 'FAIL') return c.scored ? { tag: '[FAIL]', color: 'red' } : { tag: '[WARN]', color: 'yellow' };
  return { tag: '[SKIP]', color: 'blue' };
}

/** Words of `text` in lines of at most `width` columns, the first after `first`, the rest after `indent` spaces. */
export function wrap(text: string, width: number, first: string, indent: number): string[] {
  if (first.length + text.length <= width && !text.includes('\n')) return [first + text];
  const room = Math.max(width - indent, 20);
  const lines: string[] = [];
  let line = '';
  for (let word of text.trim().split(/\s+/)) {
    while (word.length > room) {
      if (line) lines.push(line);
      lines.push(word.slice(0, room));
      word = word.slice(room);
      line = '';
    }
    if (!line) line = word;
    else if (line.length + 1 + word.length <= room) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line || lines.length === 0) lines.push(line);
  return lines.map((l, i) => (i === 0 ? first : ' '.repeat(indent)) + l);
}

/** Every check's tag counted (WARN: failing, not scored), and the score of the scored ones ("-" when none is). */
function counts(checks: readonly CheckResult[]): string {
  const n = (tag: string) => checks.filter((c) => tagOf(c).tag === tag).length;
  const s = summarize(checks);
  const score = s.pass + s.fail === 0 ? '-' : `${s.scorePercent}%`;
  return `pass ${n('[PASS]')}  fail ${n('[FAIL]')}  warn ${n('[WARN]')}  skip ${n('[SKIP]')}  score ${score}`;
}

/**
 * A readable report, as kube-bench lays it out: checks by section under the section's title, each with its full
 * title wrapped to the width; then each failing check's actual, expected and fix; then a summary per section and in
 * total. PASS and scored FAIL count in the score; WARN is a failing check that is not scored.
 */
function toTable(report: ScanReport, style: TableStyle, titles: Readonly<Record<string, string>>): string {
  const r = shownOnTerminal(report);
  const heading = (id: string) => sectionTitle(id, titles);
  const paint = (color: keyof typeof ANSI, text: string) =>
    style.color ? `\u001b[${ANSI[color]}m${text}\u001b[0m` : text;
  const s = r.summary;
  const lines = [
    ...wrap(
      `Node ${r.node} (${r.nodeRole}), ${r.benchmark.id} ${r.benchmark.version}, scanned ${r.startedAt} in ${r.durationMs} ms`,
      style.width,
      '',
      4,
    ),
    '',
  ];
  const sorted = [...r.checks].sort((a, b) => compareIds(a.section, b.section) || compareIds(a.id, b.id));
  const idWidth = Math.max(0, ...sorted.map((c) => c.id.length));
  const indent = 7 + idWidth + 1;
  const sections = new Map<string, CheckResult[]>();
  for (const c of sorted) sections.set(c.section, [...(sections.get(c.section) ?? []), c]);
  let top = '';
  for (const [section, checks] of sections) {
    const chapter = section.split('.')[0] as string;
    if (chapter !== top && chapter !== section) lines.push(paint('bold', heading(chapter)));
    top = chapter;
    lines.push(paint('bold', heading(section)));
    for (const c of checks) {
      const { tag, color } = tagOf(c);
      const head = wrap(c.title, style.width, `${tag} ${c.id.padEnd(idWidth)} `, indent);
      head[0] = paint(color, tag) + (head[0] as string).slice(tag.length);
      lines.push(...head);
      if (c.status === 'SKIP' && c.skipReason)
        lines.push(...wrap(c.skipReason, style.width, ' '.repeat(indent), indent).map((l) => paint('dim', l)));
    }
    lines.push('');
  }
  const failing = sorted.filter((c) => c.status === 'FAIL');
  if (failing.length > 0) {
    lines.push(paint('bold', 'Failing checks:'));
    for (const c of failing) {
      lines.push(...wrap(`${c.id} ${c.title}${c.scored ? '' : ' (not scored)'}`, style.width, '  ', 4));
      lines.push(...wrap(c.actual, style.width, '    actual:   ', 14));
      lines.push(...wrap(c.expected, style.width, '    expected: ', 14));
      if (c.evidence) lines.push(...wrap(c.evidence, style.width, '    evidence: ', 14));
      if (c.remediation) lines.push(...wrap(c.remediation, style.width, '    fix:      ', 14));
    }
    lines.push('');
  }
  lines.push(
    ...wrap('Summary (warn: failing but not scored; the score counts scored checks only):', style.width, '', 4).map(
      (l) => paint('bold', l),
    ),
  );
  const width = Math.max(5, ...[...sections.keys()].map((k) => heading(k).length));
  const row = (name: string, text: string) =>
    2 + width + 2 + text.length <= style.width ? [`  ${name.padEnd(width)}  ${text}`] : [`  ${name}`, `      ${text}`];
  for (const [section, checks] of sections) lines.push(...row(heading(section), counts(checks)));
  lines.push(...row('Total', counts(r.checks)), '');
  lines.push(
    ...wrap(
      `Score ${s.scorePercent}%  (scored checks: pass ${s.pass}  fail ${s.fail}  skip ${s.skip}; ${r.checks.length} checks in all)`,
      style.width,
      '',
      4,
    ).map((l) => paint('bold', l)),
  );
  return lines.join('\n') + '\n';
}

/**
 * C0 and C1 control characters but tab and newline: text from the node (a flag's value, a file's) holding them would
 * drive the reader's terminal (colours, the cursor moved back over a tag, a window title).
 */
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const TERMINAL_CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/gu;

/** The report's node-derived text with control characters shown as U+FFFD. */
function shownOnTerminal(r: ScanReport): ScanReport {
  const shown = (text: string) => text.replace(TERMINAL_CONTROLS, '\ufffd');
  return {
    ...r,
    node: shown(r.node),
    checks: r.checks.map((c) => ({
      ...c,
      title: shown(c.title),
      expected: shown(c.expected),
      actual: shown(c.actual),
      evidence: shown(c.evidence),
      remediation: shown(c.remediation),
      ...(c.skipReason === undefined ? {} : { skipReason: shown(c.skipReason) }),
    })),
  };
}

/** Characters XML 1.0 allows nowhere (C0 controls but tab, newline and CR; U+FFFE, U+FFFF; lone surrogates). */
const NOT_XML =
  // eslint-disable-next-line no-control-regex -- control characters are what it finds
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

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

/**
 * JUnit XML: a testcase per check; a scored FAIL is a failure, an unscored FAIL is skipped with its message (it does
 * not fail a CI job), a SKIP is skipped with its reason.
 */
function toJunit(r: ScanReport): string {
  // Text from the node may hold characters XML forbids: one would make a CI system refuse the whole report.
  const esc = (s: string) =>
    s
      .replace(NOT_XML, '\ufffd')
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;');
  const failures = r.checks.filter((c) => c.status === 'FAIL' && c.scored).length;
  const skipped = r.checks.filter((c) => c.status === 'SKIP' || (c.status === 'FAIL' && !c.scored)).length;
  const cases = r.checks.map((c) => {
    const open = `    <testcase classname="${esc(`${r.benchmark.id}.${c.section}`)}" name="${esc(`${c.id} ${c.title}`)}" time="0">`;
    if (c.status === 'FAIL' && c.scored) {
      return `${open}\n      <failure message="${esc(`expected ${c.expected}, got ${c.actual}`)}">${esc(`${c.evidence}\n${c.remediation}`)}</failure>\n    </testcase>`;
    }
    if (c.status === 'FAIL')
      return `${open}\n      <skipped message="${esc(`not scored, failing: expected ${c.expected}, got ${c.actual}`)}"/>\n    </testcase>`;
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
