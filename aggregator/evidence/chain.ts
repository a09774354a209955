import { runDigest, scanDigest, UnreadableEvidence } from './manifest.js';
import type { ArchivedRunRow, ChainLink, ScanAnchor, StoredScanRow } from './records.js';

/** What is wrong at one place of a chain. */
export interface ChainBreak {
  /** `report <name>` or `scans`. */
  chain: string;
  /** The link's number, when the row has one (or the first missing number). */
  seq: number | null;
  /** The run's id or the scan's id. */
  id: string | null;
  kind: 'digest' | 'link' | 'missing' | 'truncated' | 'unchained' | 'unreadable' | 'scan-anchor' | 'signature';
  expected: string | null;
  found: string | null;
  message: string;
}

/** One chain checked: how many links, the last one (what an auditor writes down), and every break found. */
export interface ChainCheck {
  chain: string;
  links: number;
  tip: { seq: number; digest: string } | null;
  breaks: ChainBreak[];
}

interface Linked<T> {
  row: T;
  id: string;
  chain: ChainLink | null;
  /** Whether the row should be in the chain at all (a queued run need not be). */
  archived: boolean;
}

/**
 * Walks links in seq order: numbers from 1 without gaps, each prev the digest stored on the link before, each
 * stored digest the one its contents hash to (`recompute`). Any edit, deletion or reordering of rows shows as one
 * of these; a row that should be in the chain and is not is "unchained".
 */
function walk<T>(
  chain: string,
  items: Linked<T>[],
  head: ScanAnchor | undefined,
  recompute: (row: T, link: ChainLink) => string,
  extra?: (row: T, link: ChainLink) => ChainBreak | undefined,
): ChainCheck {
  const breaks: ChainBreak[] = [];
  const at = (seq: number | null, id: string | null) => ({ chain, seq, id });
  const linked = items.filter((i) => i.chain !== null).sort((a, b) => a.chain!.seq - b.chain!.seq);
  let expectedSeq = 1;
  let before: Linked<T> | undefined;
  for (const item of linked) {
    const link = item.chain!;
    if (link.seq > expectedSeq) {
      const gap = link.seq - 1 === expectedSeq ? `${expectedSeq}` : `${expectedSeq}-${link.seq - 1}`;
      breaks.push({
        ...at(expectedSeq, item.id),
        kind: 'missing',
        expected: String(expectedSeq),
        found: String(link.seq),
        message: `link ${gap} is missing before ${item.id} (seq ${link.seq}): deleted or renumbered`,
      });
    } else {
      const prevDigest = before ? before.chain!.digest : null;
      if (link.prev !== prevDigest)
        breaks.push({
          ...at(link.seq, item.id),
          kind: 'link',
          expected: prevDigest,
          found: link.prev,
          message: `${item.id} (seq ${link.seq}) does not follow ${before ? `${before.id} (seq ${before.chain!.seq})` : 'the start of the chain'}: its prev is not that link's digest`,
        });
    }
    try {
      const found = recompute(item.row, link);
      if (found !== link.digest)
        breaks.push({
          ...at(link.seq, item.id),
          kind: 'digest',
          expected: link.digest,
          found,
          message: `${item.id} (seq ${link.seq}) was changed after it was sealed: its contents no longer hash to its digest`,
        });
      const more = extra?.(item.row, link);
      if (more) breaks.push(more);
    } catch (err) {
      if (!(err instanceof UnreadableEvidence)) throw err;
      breaks.push({
        ...at(link.seq, item.id),
        kind: 'unreadable',
        expected: link.digest,
        found: null,
        message: `${item.id} (seq ${link.seq}) cannot be read: ${err.message}`,
      });
    }
    expectedSeq = link.seq + 1;
    before = item;
  }
  for (const item of items)
    if (item.chain === null && item.archived)
      breaks.push({
        ...at(null, item.id),
        kind: 'unchained',
        expected: null,
        found: null,
        message: `${item.id} is archived but in no chain: added to the table directly, or sealed and its link erased`,
      });
  const last = linked[linked.length - 1];
  const headBreak = head && headMismatch(chain, head, last);
  if (headBreak) breaks.push(headBreak);
  return {
    chain,
    links: linked.length,
    tip: last ? { seq: last.chain!.seq, digest: last.chain!.digest } : null,
    breaks,
  };
}

/**
 * The newest links leave no gap when deleted; the head recorded at each seal says where the chain ended. A chain
 * that ends before its head lost its newest links; one that ends elsewhere was rewritten at its end.
 */
function headMismatch(chain: string, head: ScanAnchor, last: Linked<unknown> | undefined): ChainBreak | undefined {
  const tip = last?.chain;
  if (tip && tip.seq === head.seq && tip.digest === head.digest) return undefined;
  const lost = !tip || tip.seq < head.seq;
  return {
    chain,
    seq: head.seq,
    id: last?.id ?? null,
    kind: 'truncated',
    expected: `#${head.seq} ${head.digest}`,
    found: tip ? `#${tip.seq} ${tip.digest}` : null,
    message: lost
      ? `the chain ends at ${tip ? `#${tip.seq}` : 'nothing'} but was sealed up to #${head.seq}: its newest links were deleted`
      : `the chain's last link is not the one last sealed (#${head.seq}): its end was rewritten`,
  };
}

/**
 * A report's chain: its archived runs (succeeded, with a result) in seq order. With `scans` (the scan chain's
 * digests by seq), each run's scan anchor must still be in the scan chain as it was when the run was sealed.
 */
export function checkRunChain(
  report: string,
  rows: ArchivedRunRow[],
  scans?: Map<number, string>,
  head?: ScanAnchor,
): ChainCheck {
  const chain = `report ${report}`;
  return walk(
    chain,
    rows.map((row) => ({
      row,
      id: `run ${row.id}`,
      chain: row.chain,
      archived: row.status === 'succeeded' || row.resultJson !== null,
    })),
    head,
    (row, link) => runDigest(row, link, row.scanAnchor),
    (row, link) => anchorBreak(chain, row, link, scans),
  );
}

function anchorBreak(
  chain: string,
  row: ArchivedRunRow,
  link: ChainLink,
  scans: Map<number, string> | undefined,
): ChainBreak | undefined {
  const anchor: ScanAnchor | null = row.scanAnchor;
  if (!scans || !anchor) return undefined;
  const found = scans.get(anchor.seq) ?? null;
  if (found === anchor.digest) return undefined;
  return {
    chain,
    seq: link.seq,
    id: `run ${row.id}`,
    kind: 'scan-anchor',
    expected: anchor.digest,
    found,
    message: `run ${row.id} (seq ${link.seq}) was sealed after scan ${anchor.seq}, which ${found === null ? 'is gone from' : 'differs in'} the scan chain`,
  };
}

/**
 * The scan chain: every stored scan, in seq order. With `rehash` false (rows read without their reports) only the
 * links are followed: numbers, prevs, the head; a scan edited in place is found by a check that rehashes.
 */
export function checkScanChain(rows: StoredScanRow[], head?: ScanAnchor, rehash = true): ChainCheck {
  return walk(
    'scans',
    rows.map((row) => ({ row, id: `scan ${row.id} (node ${row.node})`, chain: row.chain, archived: true })),
    head,
    (row, link) => (rehash ? scanDigest(row, link) : link.digest),
  );
}
