import t from 'tap';
import { checkStoredChains } from '../../../aggregator/evidence/run-evidence.js';
import { openStore } from '../../../aggregator/store/index.js';
import { testPostgres } from '../../fixtures/postgres.js';
import { reportOf } from '../../fixtures/reports.js';
import { archiveRun, REPORT } from './seeded-store.js';
import { helloFields } from '../../fixtures/node-hello.js';

t.test('PostgreSQL replicas archiving and storing at once keep each chain one line', async (t) => {
  const server = await testPostgres(t);
  const db = await server.freshSchema();
  const replicas = [await openStore(db), await openStore(db), await openStore(db)];
  t.teardown(() => Promise.all(replicas.map((r) => r.close())));
  const hello = (name: string) => ({ name, ...helloFields({ bootId: 'b1' }) });
  for (const [i, r] of replicas.entries()) await r.recordHello(hello(`n${i}`), 1);
  // Every replica archives runs of the same report at once, and stores scans of its own node (in seq order, as one
  // agent's stream arrives) while the others do.
  const scans = async (i: number) => {
    for (let k = 1; k <= 6; k++)
      await replicas[i]!.recordBenchmarkRun(`n${i}`, 'b1', k, reportOf(`n${i}`, { '4.1.1': 'PASS' }), 10 + k);
  };
  await Promise.all(
    replicas.flatMap((r, i) => [...Array.from({ length: 6 }, (_, k) => archiveRun(r, i * 6 + k + 1)), scans(i)]),
  );
  const checks = await checkStoredChains(replicas[0]!, {});
  t.same(
    checks.map((c) => [c.chain, c.links, c.tip?.seq, c.breaks]),
    [
      [`report ${REPORT}`, 18, 18, []],
      ['scans', 18, 18, []],
    ],
  );
});
