import { parseNumberish } from './numberish.js';
import type { ExpectSpec } from './schema.js';

/**
 * Whether a resolved value meets a benchmark expectation. An unset value with no
 * default meets only `unset` and `lacks`: nothing unknown counts as compliant.
 */
export function meets(value: string | undefined, expect: ExpectSpec): boolean {
  const want = expect.value ?? '';
  if (expect.op === 'unset') return value === undefined || value === '';
  if (expect.op === 'lacks') return value === undefined || !listOf(value).includes(want);
  if (value === undefined) return false;
  switch (expect.op) {
    case 'eq':
      return sameScalar(value, want);
    case 'neq':
      return !sameScalar(value, want);
    case 'set':
      return value !== '';
    case 'has':
      return listOf(value).includes(want);
    case 'matches':
      return new RegExp(want).test(value);
    case 'in':
      return (expect.values ?? []).some((v) => sameScalar(value, v));
    case 'subsetOf': {
      const items = listOf(value);
      return items.length > 0 && items.every((i) => (expect.values ?? []).includes(i));
    }
    default: {
      const a = parseNumberish(value);
      const b = parseNumberish(want);
      if (a === undefined || b === undefined) return false;
      if (expect.op === 'gte') return a >= b;
      if (expect.op === 'lte') return a <= b;
      if (expect.op === 'gt') return a > b;
      return a < b;
    }
  }
}

/** How an expectation reads in a report ("expected: not 0"). */
export function describeExpect(expect: ExpectSpec): string {
  const v = expect.value ?? '';
  switch (expect.op as ExpectSpec['op']) {
    case 'eq':
      return v;
    case 'neq':
      return `not ${v}`;
    case 'gte':
      return `>= ${v}`;
    case 'lte':
      return `<= ${v}`;
    case 'gt':
      return `> ${v}`;
    case 'lt':
      return `< ${v}`;
    case 'set':
      return 'set';
    case 'unset':
      return 'not set';
    case 'has':
      return `includes ${v}`;
    case 'lacks':
      return `does not include ${v}`;
    case 'in':
      return `one of ${(expect.values ?? []).join(', ')}`;
    case 'subsetOf':
      return `only: ${(expect.values ?? []).join(', ')}`;
    case 'matches':
      return `matching /${v}/`;
    default:
      return `${expect.op as string} ${v}`;
  }
}

function listOf(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Booleans compare case-insensitively (flags say True, YAML says true); durations by their length. */
function sameScalar(a: string, b: string): boolean {
  if (a === b) return true;
  if (/^(true|false)$/i.test(a) && /^(true|false)$/i.test(b)) return a.toLowerCase() === b.toLowerCase();
  const na = parseNumberish(a);
  const nb = parseNumberish(b);
  return na !== undefined && nb !== undefined && na === nb;
}
