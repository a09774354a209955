import type { ScanReport, NodeRole } from '../../common/scan-report.js';

/** A node as its agent introduced itself (Hello), in store terms. */
export interface NodeHello {
  name: string;
  role: NodeRole;
  labels: Record<string, string>;
  kubeletVersion: string;
  kubernetesVersion: string;
  osImage: string;
  kernelVersion: string;
  architecture: string;
  agentVersion: string;
  bootId: string;
}

/** A node with its latest benchmark run's counts (undefined before the first run). */
export interface NodeRecord extends NodeHello {
  connected: boolean;
  firstSeenMs: number;
  lastSeenMs: number;
  latest?: { benchmarkId: string; benchmarkVersion: string; role: NodeRole; startedAtMs: number; pass: number; fail: number; skip: number; scorePercent: number };
}

/** One check of one node's latest run. */
export interface LatestCheckStatus {
  node: string;
  benchmarkId: string;
  checkId: string;
  title: string;
  status: 'PASS' | 'FAIL' | 'SKIP';
  scored: boolean;
}

/**
 * Everything the aggregator keeps. SQLite and PostgreSQL implement this one
 * interface; compute/ and http/ see nothing else.
 */
export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Throws when the store cannot answer (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** Upsert the node from its Hello, mark it connected; answer the highest stored seq for its boot id. */
  recordHello(hello: NodeHello, atMs: number): Promise<{ lastStoredSeq: number }>;
  markDisconnected(node: string, atMs: number): Promise<void>;
  /** Mark every node disconnected (on start of a single-replica aggregator). */
  markAllDisconnected(): Promise<void>;
  /**
   * Store a run exactly once per (node, bootId, seq), in one transaction with
   * the dedup ledger. `duplicate` is true when it was stored before.
   */
  recordBenchmarkRun(node: string, bootId: string, seq: number, report: ScanReport, atMs: number): Promise<{ duplicate: boolean }>;
  listNodes(): Promise<NodeRecord[]>;
  /** The node's latest run, or the latest that started at or before `atMs`. */
  nodeReport(node: string, atMs?: number): Promise<ScanReport | undefined>;
  latestCheckStatuses(): Promise<LatestCheckStatus[]>;
}

/** Parse `--db`: `sqlite:FILE` (default) or a `postgres://` URL. */
export async function openStore(db: string): Promise<Store> {
  if (db.startsWith('sqlite:')) {
    const { SqliteStore } = await import('./sqlite.js');
    return SqliteStore.open(db.slice('sqlite:'.length));
  }
  if (db.startsWith('postgres://') || db.startsWith('postgresql://')) {
    const { PostgresStore } = await import('./postgres.js');
    return PostgresStore.open(db);
  }
  // Never echo the value: a mistyped URL may still hold a password.
  throw new Error(`VERDICT_CONFIG_INVALID: --db must be sqlite:FILE or postgres://user@host/db (got something starting "${db.slice(0, 9)}...")`);
}
