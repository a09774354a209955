import type { Store } from './types.js';
import { configError } from '../errors.js';

export * from './types.js';

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
  throw configError(
    `--db must be sqlite:FILE or postgres://user@host/db (got something starting "${db.slice(0, 9)}...")`,
  );
}
