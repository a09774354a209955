import type { Store } from './types.js';
import { errorCode, errorDetail } from '../../common/errors.js';
import { configError } from '../errors.js';

export * from './types.js';

/** SQLite's primary result codes (SQLITE_IOERR_READ is SQLITE_IOERR) that say the file itself cannot be a store. */
const UNUSABLE_SQLITE_FILE = new Set([
  'SQLITE_NOTADB',
  'SQLITE_CANTOPEN',
  'SQLITE_IOERR',
  'SQLITE_CORRUPT',
  'SQLITE_READONLY',
  'SQLITE_PERM',
]);

/** Parse `--db`: `sqlite:FILE` (default) or a `postgres://` URL. */
export async function openStore(db: string): Promise<Store> {
  if (db.startsWith('sqlite:')) {
    const { SqliteStore } = await import('./sqlite.js');
    const file = db.slice('sqlite:'.length);
    try {
      return await SqliteStore.open(file);
    } catch (err) {
      // A file that is no SQLite database, or cannot be one (a device, a directory, a read-only place): the flag is
      // wrong, said in one line, not SQLite's error with a stack.
      if (!UNUSABLE_SQLITE_FILE.has(errorCode(err).split('_').slice(0, 2).join('_'))) throw err;
      throw configError(
        `--db ${db}: cannot use ${file} as a SQLite database (${errorCode(err)}: ${errorDetail(err)})`,
        {
          cause: err,
        },
      );
    }
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
