/**
 * The bench suite's one table: every figure with its baseline (measured in the
 * same run), their ratio, its goal and whether the goal was met. A figure that
 * ran past its time bound is printed as "> bound" and counts as failed; a
 * figure whose measurement threw is "error" with the reason in its note.
 */

export type Status = 'met' | 'missed' | 'timeout' | 'error' | 'info';

/** What a goal is checked on: the figure's value, or its ratio to the baseline. */
export interface Goal {
  on: 'value' | 'ratio';
  op: '<=' | '>=' | '==';
  target: number;
}

export interface Figure {
  /** The benchmark it belongs to: cis, rescan, ingest, agent, scale, network-access, scan, ... */
  bench: string;
  /** What was measured, with its setting: "flows per aggregator CPU-second (sqlite)". */
  name: string;
  value?: number;
  unit: string;
  /** The same-run baseline the value is compared with. */
  baseline?: { name: string; value: number; unit: string };
  /** value / baseline.value, or as the bench defines it (named in the goal). */
  ratio?: number;
  goal?: Goal;
  status: Status;
  /** For a timeout: the bound it ran past, in ms. */
  boundMs?: number;
  note?: string;
}

/**
 * A figure as measured: its status follows from its goal (met/missed) or is "info" without one;
 * a timeout or error given stays.
 */
export function figure(f: Omit<Figure, 'status'> & { status?: Status }): Figure {
  return { ...f, status: f.status === 'timeout' || f.status === 'error' ? f.status : judge(f) };
}

/** A figure that ran past its bound. */
export function timedOut(bench: string, name: string, boundMs: number, unit = 'ms', note?: string): Figure {
  return { bench, name, unit, status: 'timeout', boundMs, ...(note ? { note } : {}) };
}

/** A figure whose measurement failed (the process died, the query threw). */
export function failed(bench: string, name: string, reason: string, unit = ''): Figure {
  return { bench, name, unit, status: 'error', note: reason.replace(/\s+/g, ' ').slice(0, 300) };
}

export function judge(f: Pick<Figure, 'value' | 'ratio' | 'goal'>): Status {
  if (!f.goal) return 'info';
  const v = f.goal.on === 'ratio' ? f.ratio : f.value;
  if (v === undefined || Number.isNaN(v)) return 'error';
  const t = f.goal.target;
  const ok = f.goal.op === '<=' ? v <= t : f.goal.op === '>=' ? v >= t : v === t;
  return ok ? 'met' : 'missed';
}

/** A number as people read it: 3 significant digits, thousands grouped, no exponent. */
export function num(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a === 0) return '0';
  return v.toPrecision(2);
}

function boundText(ms: number, unit: string): string {
  if (unit === 's') return `> ${num(ms / 1000)} s`;
  if (unit === 'ms') return `> ${num(ms)} ms`;
  return `> ${num(ms / 1000)} s (bound)`;
}

export function valueText(f: Figure): string {
  if (f.status === 'timeout') return boundText(f.boundMs ?? 0, f.unit);
  if (f.value === undefined) return f.status === 'error' ? 'error' : '-';
  return `${num(f.value)} ${f.unit}`.trim();
}

export function goalText(f: Figure): string {
  if (!f.goal) return '';
  const op = f.goal.op === '==' ? '=' : f.goal.op === '<=' ? '≤' : '≥';
  return f.goal.on === 'ratio' ? `ratio ${op} ${num(f.goal.target)}` : `${op} ${num(f.goal.target)} ${f.unit}`.trim();
}

const STATUS_TEXT: Record<Status, string> = {
  met: 'met',
  missed: 'MISSED',
  timeout: 'TIMEOUT',
  error: 'ERROR',
  info: '',
};

export const COLUMNS = ['bench', 'figure', 'value', 'baseline', 'ratio', 'goal', 'status', 'note'] as const;

export function rowOf(f: Figure): string[] {
  return [
    f.bench,
    f.name,
    valueText(f),
    f.baseline ? `${num(f.baseline.value)} ${f.baseline.unit} (${f.baseline.name})` : '',
    f.ratio === undefined ? '' : `${num(f.ratio)}x`,
    goalText(f),
    STATUS_TEXT[f.status],
    f.note ?? '',
  ];
}

/** The figures as a plain-text table with aligned columns (what `npm run bench` prints). */
export function formatTable(figures: Figure[]): string {
  const rows = [COLUMNS.map((c) => c.toUpperCase()), ...figures.map(rowOf)];
  const widths = COLUMNS.map((_, i) =>
    i === COLUMNS.length - 1 ? 0 : Math.max(...rows.map((r) => (r[i] as string).length)),
  );
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i] as number))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The same table in Markdown (for reports and issues). */
export function markdownTable(figures: Figure[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${COLUMNS.join(' | ')} |`,
    `|${COLUMNS.map(() => '---').join('|')}|`,
    ...figures.map((f) => `| ${rowOf(f).map(esc).join(' | ')} |`),
  ].join('\n');
}

/** How many figures met, missed, timed out and failed. */
export function tally(figures: Figure[]): Record<Status, number> {
  const t: Record<Status, number> = { met: 0, missed: 0, timeout: 0, error: 0, info: 0 };
  for (const f of figures) t[f.status]++;
  return t;
}
