import type { ParseArgsConfig } from 'node:util';
import { usageError } from './errors.js';

/**
 * One command-line flag, written once: what node:util parseArgs needs (type, multiple, default), what the usage text
 * says (arg, help), and how its value is checked and converted (parse). The parser options, the usage text and the
 * startup log line are all generated from tables of these.
 */
export interface FlagSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  /** The default; a function is read when the arguments are parsed (an environment variable's value). */
  default?: string | boolean | (() => string);
  /** What the value is called in the usage text: MS, HOST:PORT, FILE. */
  arg?: string;
  help: string;
  /**
   * Checks and converts the value (undefined when the flag is absent and has no default); throws a VERDICT_USAGE
   * VerdictError that names the flag.
   */
  parse?: (value: never, flag: string) => unknown;
}

export type FlagTable = Record<string, FlagSpec>;

type RawValue<S> = S extends { type: 'boolean' }
  ? boolean
  : S extends { multiple: true }
    ? string[] | undefined
    : S extends { default: unknown }
      ? string
      : string | undefined;

/** The values of a table's flags after each flag's parse. */
export type FlagValues<T extends FlagTable> = {
  -readonly [K in keyof T]: T[K] extends { parse: (value: never, flag: string) => infer R } ? R : RawValue<T[K]>;
};

const defaultOf = (s: FlagSpec) => (typeof s.default === 'function' ? s.default() : s.default);

/** The table as node:util parseArgs options. */
export function parseArgsOptions(table: FlagTable): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, s] of Object.entries(table)) {
    const d = defaultOf(s);
    options[name] = {
      type: s.type,
      ...(s.multiple ? { multiple: true } : {}),
      ...(d !== undefined ? { default: d } : {}),
    } as NonNullable<ParseArgsConfig['options']>[string];
  }
  return options;
}

/** Each flag's value from parseArgs' values, through its parse, in table order. */
export function parseFlagValues<T extends FlagTable>(table: T, values: Record<string, unknown>): FlagValues<T> {
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(table)) {
    const v = values[name];
    out[name] = s.parse ? s.parse(v as never, name) : v;
  }
  return out as FlagValues<T>;
}

/** The usage lines of a table: "  --flow-window-ms MS        flow aggregation window (default 15000)". */
export function usageLines(table: FlagTable): string[] {
  const rows = Object.entries(table).map(([name, s]) => {
    const d = defaultOf(s);
    const left = `--${name}${s.arg ? ` ${s.arg}` : ''}`;
    const notes = [s.multiple ? 'repeatable' : '', d !== undefined && d !== false ? `default ${String(d)}` : '']
      .filter(Boolean)
      .join('; ');
    return [left, notes ? `${s.help} (${notes})` : s.help] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return rows.map(([l, r]) => `  ${l.padEnd(width)}${r}`);
}

/** The flags' effective values for the startup log line: given or defaulted, by flag name. */
export function flagLogFields(table: FlagTable, values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(table)) if (values[name] !== undefined) out[name] = values[name];
  return out;
}

/** The longest delay setTimeout takes, ms (2^31 - 1). */
export const MAX_TIMER_MS = 2_147_483_647;

/** parse helpers for flag tables. */
export const flag = {
  /**
   * An integer of at least `min` (the defaults' unit: ms, bytes), and at most `max`: a safe integer, and for a time
   * one that setTimeout takes (Node runs a longer timer after 1 ms, so --rescan-interval-ms 1e300 was a busy loop).
   */
  intAtLeast:
    (min: number, max: number = Number.MAX_SAFE_INTEGER) =>
    (v: string, name: string): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw usageError(`--${name} must be an integer of at least ${min}`);
      if (n > max) throw usageError(`--${name} must be an integer of at most ${max}, not "${v}"`);
      return n;
    },
  /** A time in ms of at least `min` that a timer can wait (setTimeout's limit, about 24.8 days). */
  msAtLeast: (min: number) => flag.intAtLeast(min, MAX_TIMER_MS),
  /** One of a fixed set of words. */
  oneOf:
    <W extends string>(words: readonly W[]) =>
    (v: string, name: string): W => {
      if (!words.includes(v as W)) throw usageError(`--${name} must be one of ${words.join(', ')}, not "${v}"`);
      return v as W;
    },
  /** A repeatable flag whose values may each be a comma-separated list: one flat list, blanks dropped. */
  commaList: (v: string[] | undefined): string[] =>
    (v ?? [])
      .flatMap((x) => x.split(','))
      .map((x) => x.trim())
      .filter(Boolean),
};
