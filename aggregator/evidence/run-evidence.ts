import type { Store } from '../store/index.js';
import { checkRunChain, checkScanChain, type ChainCheck } from './chain.js';
import { MANIFEST_FILE, runFiles, runManifest, UnreadableEvidence } from './manifest.js';
import { sha256Hex } from './canonical.js';

/** The chains to check and the scan chain's digests by seq (what run anchors are checked against). */
export async function checkStoredChains(store: Store, opts: { report?: string; run?: string }): Promise<ChainCheck[]> {
  const scans = checkScanChainOf(await store.storedScans());
  const runs = await store.archivedRuns(opts.report);
  const byReport = new Map<string, typeof runs>();
  for (const r of runs) byReport.set(r.report, [...(byReport.get(r.report) ?? []), r]);
  if (opts.report !== undefined && !byReport.has(opts.report)) byReport.set(opts.report, []);
  const checks: ChainCheck[] = [];
  for (const [report, rows] of byReport) {
    const check = checkRunChain(report, rows, scans.digests);
    if (opts.run === undefined) checks.push(check);
    else if (rows.some((r) => r.id === opts.run)) {
      // One run: its own digest, the link into it and its scan anchor; the rest of the chain is not asked about.
      const mine = check.breaks.filter((b) => b.id === `run ${opts.run}`);
      checks.push({ ...check, breaks: mine });
    }
  }
  return [...checks, scans.check];
}

function checkScanChainOf(rows: Awaited<ReturnType<Store['storedScans']>>) {
  const digests = new Map<number, string>();
  for (const r of rows) if (r.chain) digests.set(r.chain.seq, r.chain.digest);
  return { check: checkScanChain(rows), digests };
}

/** A run's downloadable files (manifest.json first) with their bytes, or why there are none. */
export type RunDownloads =
  { ok: true; files: Map<string, string>; digest: string } | { ok: false; status: 404 | 409; message: string };

/**
 * What GET .../download serves for run `id`: only a sealed run whose contents still hash to its digest (a tampered
 * run is never served, and never signed, as evidence).
 */
export async function runDownloads(store: Store, report: string, id: string): Promise<RunDownloads> {
  const row = (await store.archivedRuns(report)).find((r) => r.id === id);
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
