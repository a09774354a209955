import { reportChainKey, SCAN_CHAIN_KEY } from '../store/evidence.js';
import type { Store } from '../store/index.js';
import type { ScanAnchor, StoredScanRow } from './records.js';
import { checkRunChain, checkScanChain, type ChainCheck } from './chain.js';
import { MANIFEST_FILE, runFiles, runManifest, UnreadableEvidence } from './manifest.js';
import { sha256Hex } from './canonical.js';

/** evidence_chain_heads' keys of report chains start with this. */
const REPORT_CHAIN_PREFIX = reportChainKey('');

/**
 * Every chain of the store (or one report's, or one run's link) and the scan chain, checked. `scanLinksOnly` follows
 * the scan chain without rehashing every scan (what the HTTP route does on each request; the CLI rehashes all).
 */
export async function checkStoredChains(
  store: Store,
  opts: { report?: string; run?: string; scanLinksOnly?: boolean },
): Promise<ChainCheck[]> {
  const heads = await store.chainHeads();
  const links = opts.scanLinksOnly === true;
  const scans = checkScanChainOf(await store.storedScans({ links }), heads.get(SCAN_CHAIN_KEY), !links);
  const runs = await store.archivedRuns(opts.report);
  const byReport = new Map<string, typeof runs>();
  for (const r of runs) byReport.set(r.report, [...(byReport.get(r.report) ?? []), r]);
  // A report whose every run was deleted still has its head.
  for (const key of heads.keys())
    if (key.startsWith(REPORT_CHAIN_PREFIX)) {
      const report = key.slice(REPORT_CHAIN_PREFIX.length);
      if ((opts.report === undefined || opts.report === report) && !byReport.has(report)) byReport.set(report, []);
    }
  if (opts.report !== undefined && !byReport.has(opts.report)) byReport.set(opts.report, []);
  const checks: ChainCheck[] = [];
  for (const [report, rows] of [...byReport].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const check = checkRunChain(report, rows, scans.digests, heads.get(reportChainKey(report)));
    if (opts.run === undefined) checks.push(check);
    else if (rows.some((r) => r.id === opts.run)) {
      // One run: its own digest, the link into it and its scan anchor; the rest of the chain is not asked about.
      const mine = check.breaks.filter((b) => b.id === `run ${opts.run}` && b.kind !== 'truncated');
      checks.push({ ...check, breaks: mine });
    }
  }
  if (opts.run !== undefined && checks.length === 0)
    checks.push({
      chain: `run ${opts.run}`,
      links: 0,
      tip: null,
      breaks: [
        {
          chain: `run ${opts.run}`,
          seq: null,
          id: `run ${opts.run}`,
          kind: 'missing',
          expected: opts.run,
          found: null,
          message: `no run ${opts.run}${opts.report === undefined ? '' : ` of report ${opts.report}`} is in the store`,
        },
      ],
    });
  return [...checks, scans.check];
}

/** The scan chain checked, and its digests by seq (what run anchors are checked against). */
function checkScanChainOf(rows: StoredScanRow[], head: ScanAnchor | undefined, rehash: boolean) {
  const digests = new Map<number, string>();
  for (const r of rows) if (r.chain) digests.set(r.chain.seq, r.chain.digest);
  return { check: checkScanChain(rows, head, rehash), digests };
}

/** A run's downloadable files (manifest.json first) with their bytes, or why there are none. */
export type RunDownloads =
  { ok: true; files: Map<string, string>; digest: string } | { ok: false; status: 404 | 409; message: string };

/**
 * What GET .../download serves for run `id`: only a sealed run whose contents still hash to its digest (a tampered
 * run is never served, and never signed, as evidence).
 */
export async function runDownloads(store: Store, report: string, id: string): Promise<RunDownloads> {
  const [row] = await store.archivedRuns(report, id);
  if (!row) return { ok: false, status: 404, message: `report "${report}" has no run ${id}` };
  if (row.resultJson === null)
    return { ok: false, status: 409, message: `run ${id} is ${row.status}; its files exist once it has succeeded` };
  if (!row.chain)
    return {
      ok: false,
      status: 409,
      message: `run ${id} is in no evidence chain; GET /api/v1/reports/${report}/verify says why`,
    };
  try {
    const manifest = runManifest(row, row.chain, row.scanAnchor);
    const digest = sha256Hex(manifest);
    if (digest !== row.chain.digest)
      return {
        ok: false,
        status: 409,
        message: `run ${id} no longer matches its sealed digest ${row.chain.digest}; GET /api/v1/reports/${report}/verify says what broke`,
      };
    return { ok: true, files: new Map([[MANIFEST_FILE, manifest], ...runFiles(row)]), digest };
  } catch (err) {
    if (!(err instanceof UnreadableEvidence)) throw err;
    return { ok: false, status: 409, message: `run ${id} cannot be read: ${err.message}` };
  }
}
