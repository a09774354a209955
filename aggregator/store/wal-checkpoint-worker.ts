import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

/**
 * The worker side of WalCheckpointer (wal-checkpoints.ts): its own connection
 * to the store's file, which checkpoints the WAL when the store has written,
 * at most once per interval. A PASSIVE checkpoint copies what no reader still
 * needs and never waits for the writer or for readers; a failure (disk full,
 * say) leaves the frames in the WAL for the next one.
 */
const { file, intervalMs } = workerData as { file: string; intervalMs: number };
const db = new Database(file, { fileMustExist: true });
let lastMs = 0;
let pending: NodeJS.Timeout | undefined;

function checkpoint(): void {
  pending = undefined;
  lastMs = Date.now();
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Retried after the next write.
  }
}

parentPort?.on('message', (msg: 'wrote' | 'close') => {
  if (msg === 'close') {
    clearTimeout(pending);
    db.close();
    parentPort?.close();
    return;
  }
  pending ??= setTimeout(checkpoint, Math.max(0, lastMs + intervalMs - Date.now()));
});
