import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../common/package-root.js';

/** One numbered SQL file of a dialect: `migrations/<dialect>/NNN_name.sql`. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The numbered SQL files of a dialect, in order. */
export function migrationFiles(dialect: 'sqlite' | 'postgres'): Migration[] {
  const dir = join(packageRoot(), 'aggregator', 'store', 'migrations', dialect);
  return readdirSync(dir)
    .filter((f) => /^\d+_.+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: parseInt(f, 10), name: f, sql: readFileSync(join(dir, f), 'utf8') }));
}
