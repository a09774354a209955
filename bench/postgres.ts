import type { Test } from 'tap';
import { testPostgres, type TestPostgres } from '../test/fixtures/postgres.js';

/**
 * The PostgreSQL the store-bound benches run on: the test suite's throwaway
 * cluster (the server npm installed, or $VERDICT_TEST_POSTGRES_BIN), or the
 * server at $VERDICT_TEST_POSTGRES_URL; started once per run, on loopback,
 * and stopped by `stopPostgres`. Each use takes a fresh schema.
 */
let started: Promise<TestPostgres> | undefined;
const teardowns: (() => unknown)[] = [];

export function benchPostgres(): Promise<TestPostgres> {
  // The fixture only asks its Test for teardown().
  const t = { teardown: (fn: () => unknown) => void teardowns.push(fn) } as unknown as Test;
  started ??= testPostgres(t);
  return started;
}

/** A URL to a new, empty schema. */
export async function freshPostgresUrl(): Promise<string> {
  return (await benchPostgres()).freshSchema();
}

export async function stopPostgres(): Promise<void> {
  for (const fn of teardowns.splice(0).reverse()) await fn();
  started = undefined;
}
