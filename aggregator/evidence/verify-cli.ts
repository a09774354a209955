import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { AGGREGATOR_ERRORS, aggregatorError, configError } from '../errors.js';
import { openStore } from '../store/index.js';
import { sha256Hex } from './canonical.js';
import type { ChainBreak, ChainCheck } from './chain.js';
import { checkStoredChains } from './run-evidence.js';
import { verifySignature } from './signing.js';

/** `verdict-aggregator verify`'s flags (README, "Verifying evidence"). */
export const VERIFY_FLAGS = {
  db: { type: 'string' },
  report: { type: 'string' },
  run: { type: 'string' },
  file: { type: 'string' },
  signature: { type: 'string' },
  'public-key': { type: 'string' },
  manifest: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const VERIFY_USAGE = `verdict-aggregator verify: check archived evidence; exit 0 intact, 1 broken, 2 bad arguments

  verify --db sqlite:FILE|postgres://... [--report NAME] [--run ID] [--json]
      every report's chain (or NAME's, or run ID's link) and the scan chain, read from the database
  verify --file FILE [--manifest manifest.json] [--public-key KEY.pem [--signature FILE.sig]] [--json]
      a downloaded file, offline: its SHA-256 listed in the run's manifest, its Ed25519 signature
      (--signature defaults to FILE.sig)
`;

const usage = (detail: string) =>
  aggregatorError(AGGREGATOR_ERRORS.usage, `verify: ${detail}; run "verdict-aggregator verify --help"`);

/** Run `verify` with `argv` (after the subcommand), writing to `out`; answers the exit code. */
export async function runVerify(argv: string[], out: (text: string) => void): Promise<number> {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(argv).values;
  } catch (err) {
    throw usage((err as Error).message);
  }
  if (values.help) {
    out(VERIFY_USAGE);
    return 0;
  }
  const checks = values.file !== undefined ? checkFile(values) : await checkDatabase(values);
  out(values.json ? `${JSON.stringify({ ok: intact(checks), chains: checks }, null, 2)}\n` : table(checks));
  return intact(checks) ? 0 : 1;
}

const parse = (argv: string[]) =>
  parseArgs({ args: argv, options: VERIFY_FLAGS, strict: true, allowPositionals: false });
type Values = ReturnType<typeof parse>['values'];
const intact = (checks: ChainCheck[]) => checks.every((c) => c.breaks.length === 0);

async function checkDatabase(v: Values): Promise<ChainCheck[]> {
  for (const f of ['signature', 'public-key', 'manifest'] as const)
    if (v[f] !== undefined) throw usage(`--${f} goes with --file (an offline check), not --db`);
  if (v.db === undefined) throw usage("give --db (the aggregator's store) or --file (a downloaded file)");
  // Never create an empty database by checking one that is not there.
  if (v.db.startsWith('sqlite:') && !existsSync(v.db.slice('sqlite:'.length)))
    throw configError(`--db ${v.db}: no such file`);
  const store = await openStore(v.db);
  try {
    return await checkStoredChains(store, {
      ...(v.report !== undefined ? { report: v.report } : {}),
      ...(v.run !== undefined ? { run: v.run } : {}),
    });
  } finally {
    await store.close();
  }
}

function readArg(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw configError(`--${flag} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** A downloaded file against its manifest (by SHA-256) and its detached signature, with no database. */
function checkFile(v: Values): ChainCheck[] {
  for (const f of ['db', 'report', 'run'] as const)
    if (v[f] !== undefined) throw usage(`--${f} reads the database; --file checks a downloaded file offline`);
  if (v.manifest === undefined && v['public-key'] === undefined)
    throw usage('--file needs --manifest (to check its digest) and/or --public-key (to check its signature)');
  const file = v.file as string;
  const bytes = readArg('file', file);
  const found = sha256Hex(bytes);
  const breaks: ChainBreak[] = [];
  const at = { chain: `file ${basename(file)}`, seq: null, id: file };
  if (v.manifest !== undefined) {
    const listed = manifestFiles(readArg('manifest', v.manifest), v.manifest);
    // The manifest's name for the file: the downloaded name itself, or the longest one it ends with after a "-"
    // (download names are prefixed "<report>-<run>-"): "...-most-failed-tests.csv" is most-failed-tests.csv, never
    // failed-tests.csv, which it also ends with.
    const base = basename(file);
    const name = Object.keys(listed)
      .filter((n) => base === n || base.endsWith(`-${n}`))
      .sort((a, b) => b.length - a.length)[0];
    if (name === undefined ? !Object.values(listed).includes(found) : listed[name] !== found)
      breaks.push({
        ...at,
        kind: 'digest',
        expected: name === undefined ? null : (listed[name] as string),
        found,
        message:
          name === undefined
            ? `no file of ${v.manifest} has SHA-256 ${found} (it lists ${Object.keys(listed).join(', ')})`
            : `${file} is not ${name} of ${v.manifest}: its SHA-256 differs`,
      });
  }
  const key = v['public-key'];
  if (key !== undefined) {
    const sigPath = v.signature ?? `${file}.sig`;
    const sig = readArg('signature', sigPath);
    let ok: boolean;
    try {
      ok = verifySignature(readArg('public-key', key).toString('utf8'), bytes, sig);
    } catch (err) {
      throw configError(`--public-key ${key}: ${(err as Error).message}; give a PEM (SPKI) Ed25519 public key`);
    }
    if (!ok)
      breaks.push({
        ...at,
        kind: 'signature',
        expected: `an Ed25519 signature by ${key}`,
        found: sig.toString('base64'),
        message: `${sigPath} is not ${key}'s signature of ${file}: the file or the signature was altered, or another key signed it`,
      });
  }
  return [{ chain: at.chain, links: 1, tip: null, breaks }];
}

function manifestFiles(text: Buffer, path: string): Record<string, string> {
  try {
    const files = (JSON.parse(text.toString('utf8')) as { files?: unknown }).files;
    if (files && typeof files === 'object') return files as Record<string, string>;
  } catch {
    // reported below
  }
  throw configError(`--manifest ${path} is not a run manifest (JSON with "files")`);
}

/** Chains as a table, then each break with its full digests. */
function table(checks: ChainCheck[]): string {
  const rows = [['CHAIN', 'LINKS', 'TIP', 'RESULT']];
  for (const c of checks)
    rows.push([
      c.chain,
      String(c.links),
      c.tip ? `#${c.tip.seq} ${c.tip.digest}` : '-',
      c.breaks.length === 0 ? 'intact' : `BROKEN (${c.breaks.length})`,
    ]);
  let text = columns(rows);
  const breaks = checks.flatMap((c) => c.breaks);
  if (breaks.length === 0) return text;
  text += `\n${columns([['CHAIN', 'SEQ', 'WHERE', 'BREAK'], ...breaks.map((b) => [b.chain, b.seq === null ? '-' : String(b.seq), b.id ?? '-', b.kind])])}`;
  for (const b of breaks) {
    text += `\n${b.chain}${b.seq === null ? '' : ` seq ${b.seq}`}: ${b.message}\n`;
    if (b.expected !== null || b.found !== null)
      text += `  expected ${b.expected ?? '(nothing)'}\n  found    ${b.found ?? '(nothing)'}\n`;
  }
  return text;
}

function columns(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return (
    rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') +
    '\n'
  );
}
