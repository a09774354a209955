import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

/** The least time between two checkpoints in the worker, ms: the WAL holds about this long's writes. */
const WAL_CHECKPOINT_INTERVAL_MS = 1000;

/**
 * Moves an SQLite file's WAL checkpoints to a worker thread once they get big.
 *
 * SQLite's automatic checkpoint runs inside the commit that takes the WAL past
 * 1000 pages, on the committing thread. That is a few ms after ordinary
 * writes, but after a 4 MiB flow batch (90,000 bucket rows, some 100 MB of
 * WAL) it copies all of that into the database file: about 300 ms during
 * which the event loop waits. So before committing a large write the store
 * calls `takeOver()`: the write connection stops checkpointing, and a worker
 * with a connection of its own (wal-checkpoint-worker.ts) checkpoints after
 * writes from then on. The worker starts on first need: a store that never
 * sees a large write never starts a thread. Should the worker fail, the write
 * connection checkpoints itself again: slower, never unbounded.
 */
export class WalCheckpointer {
  private worker: Worker | undefined;
  private failed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly file: string,
    private readonly db: Database.Database,
    private readonly intervalMs = WAL_CHECKPOINT_INTERVAL_MS,
  ) {}

  /** From now on, checkpoints happen in the worker. */
  takeOver(): void {
    if (this.worker || this.failed || this.closing) return;
    this.db.pragma('wal_autocheckpoint = 0');
    const worker = new Worker(new URL('./wal-checkpoint-worker.js', import.meta.url), {
      workerData: { file: this.file, intervalMs: this.intervalMs },
    });
    worker.unref(); // never what keeps the process up
    worker.on('error', () => {
      this.failed = true;
      this.worker = undefined;
      if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000'); // SQLite's default
    });
    this.worker = worker;
  }

  /** The store committed a write: checkpoint soon. */
  wrote(): void {
    this.worker?.postMessage('wrote');
  }

  /** End the worker and its connection; before the store closes its own. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const worker = this.worker;
      if (!worker) return resolve();
      worker.once('exit', () => resolve());
      worker.ref(); // its exit may be all that is left on the event loop
      worker.postMessage('close');
    });
    return this.closing;
  }
}
