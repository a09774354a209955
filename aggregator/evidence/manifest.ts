import { toCsv } from '../../common/csv.js';
import { canonicalJson, sha256Hex } from './canonical.js';
import type { ArchivedRunRow, ScanAnchor, StoredScanRow } from './records.js';

/** The `format` of a run manifest; a later layout gets a new one, and verifiers read each by its own rules. */
export const RUN_MANIFEST_FORMAT = 'verdict.dev/run-manifest/v1';
/** The `format` of the document a scan's digest is taken over. */
export const SCAN_DIGEST_FORMAT = 'verdict.dev/scan/v1';

/** The files of a run that are not CSV: the inputs and the result as canonical JSON. */
export const INPUTS_FILE = 'inputs.json';
export const RESULT_FILE = 'result.json';
export const MANIFEST_FILE = 'manifest.json';

/** A stored value that is not what the evidence reads (JSON that does not parse, a result without its files). */
export class UnreadableEvidence extends Error {}

/**
 * Every downloadable file of an archived run, by name, as the exact text served (UTF-8): inputs.json and
 * result.json (canonical JSON of the stored inputs and result), each CSV file of the result as
 * GET .../download/<name> sends it (common/csv.ts: RFC 4180, CRLF), and each document as <base>.json.
 */
export function runFiles(row: ArchivedRunRow): Map<string, string> {
  const inputs = parse(row.inputsJson, 'inputs_json');
  const files = new Map<string, string>([[INPUTS_FILE, canonicalJson(inputs)]]);
  if (row.resultJson === null) return files;
  const result = parse(row.resultJson, 'result_json');
  files.set(RESULT_FILE, canonicalJson(result));
  // A result without CSV files (an older shape) has none to download; result.json covers what it holds either way.
  const csv = (result as { files?: unknown } | null)?.files;
  if (csv !== null && typeof csv === 'object')
    for (const [name, f] of Object.entries(csv as Record<string, unknown>)) {
      const { header, rows } = (f ?? {}) as { header?: unknown; rows?: unknown };
      if (Array.isArray(header) && Array.isArray(rows) && rows.every(Array.isArray))
        files.set(name, toCsv(header as string[], rows as unknown[][]));
    }
  // Documents (policy-audit's events): each as <base>.json in canonical JSON. Their YAML twin is the same document
  // printed otherwise, so result.json covers it.
  const documents = (result as { documents?: unknown } | null)?.documents;
  if (documents !== null && typeof documents === 'object')
    for (const [base, doc] of Object.entries(documents)) files.set(`${base}.json`, canonicalJson(doc));
  return files;
}

/**
 * A run's manifest: the canonical JSON (canonical.ts) of its identity, its place in the report's chain, the scan
 * chain's last link when it was sealed, and the SHA-256 of each downloadable file. The run's digest is the SHA-256
 * of these bytes, so `sha256sum manifest.json` gives it.
 */
export function runManifest(
  row: ArchivedRunRow,
  link: { seq: number; prev: string | null },
  scanAnchor: ScanAnchor | null,
): string {
  const files: Record<string, string> = {};
  for (const [name, text] of runFiles(row)) files[name] = sha256Hex(text);
  return canonicalJson({
    format: RUN_MANIFEST_FORMAT,
    report: row.report,
    seq: link.seq,
    prev: link.prev,
    run: {
      id: row.id,
      reportType: row.reportType,
      trigger: row.trigger,
      status: row.status,
      attempts: row.attempts,
      intervalStartMs: row.intervalStartMs,
      intervalEndMs: row.intervalEndMs,
      createdMs: row.createdMs,
      startedMs: row.startedMs,
      finishedMs: row.finishedMs,
    },
    scanChain: scanAnchor,
    files,
  });
}

/** The digest of a run at `link`: SHA-256 of its manifest. */
export const runDigest = (row: ArchivedRunRow, link: { seq: number; prev: string | null }, anchor: ScanAnchor | null) =>
  sha256Hex(runManifest(row, link, anchor));

/**
 * The digest of a stored scan at `link`: SHA-256 of the canonical JSON of every column of its benchmark_runs row
 * (the report parsed) with its seq and the previous scan's digest.
 */
export function scanDigest(row: StoredScanRow, link: { seq: number; prev: string | null }): string {
  return sha256Hex(
    canonicalJson({
      format: SCAN_DIGEST_FORMAT,
      seq: link.seq,
      prev: link.prev,
      scan: {
        id: row.id,
        node: row.node,
        bootId: row.bootId,
        agentSeq: row.agentSeq,
        benchmarkId: row.benchmarkId,
        benchmarkVersion: row.benchmarkVersion,
        role: row.role,
        startedAtMs: row.startedAtMs,
        durationMs: row.durationMs,
        pass: row.pass,
        fail: row.fail,
        skip: row.skip,
        scorePercent: row.scorePercent,
        receivedAtMs: row.receivedAtMs,
        report: parse(row.reportJson, 'report_json'),
      },
    }),
  );
}

function parse(text: string, column: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UnreadableEvidence(`${column} is not JSON (${(err as Error).message})`);
  }
}
