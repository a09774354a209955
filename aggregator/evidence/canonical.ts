import { createHash } from 'node:crypto';

/**
 * Canonical JSON as RFC 8785 (JSON Canonicalization Scheme) defines it for the values Verdict stores: object keys
 * sorted by their UTF-16 code units, no whitespace, strings and numbers as ECMAScript's JSON.stringify writes them
 * (which is what RFC 8785 prescribes). The same value gives the same bytes whatever key order or spacing it was
 * stored with, so a digest never depends on how SQLite or PostgreSQL gave the text back.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    // undefined, functions, symbols: never in parsed JSON; a bug if they get here.
    if (text === undefined) throw new TypeError(`not a JSON value: ${String(value)}`);
    return text;
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const entries = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}

/** Lower-case hex SHA-256 of `data` (a string is hashed as its UTF-8 bytes), as sha256sum prints it. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
