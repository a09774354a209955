import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { AGGREGATOR_DEFAULTS } from '../../aggregator/config.js';
import { Lifecycle, startAggregator } from '../../aggregator/main.js';
import { errorCode } from '../../common/errors.js';
import { tempDir } from '../fixtures/tmp.js';

// startAggregator is a composition root: components start in order and stop in reverse, a failed stop does not
// keep the others running, and a component that fails to start stops those already started.
const silent = pino({ level: 'silent' });

t.test('components stop in the reverse of their start order, each even after a failure', async (t) => {
  const seen: string[] = [];
  const life = new Lifecycle(silent);
  for (const name of ['store', 'ingest', 'http', 'watchers', 'timers'])
    await life.add(name, {
      start: () => void seen.push(`start ${name}`),
      stop: async () => {
        seen.push(`stop ${name}`);
        if (name === 'http') throw new Error('http would not close');
      },
    });
  await t.rejects(life.stop(), /http would not close/, 'the first failure is reported');
  t.same(seen, [
    'start store',
    'start ingest',
    'start http',
    'start watchers',
    'start timers',
    'stop timers',
    'stop watchers',
    'stop http',
    'stop ingest',
    'stop store',
  ]);
  await life.stop();
  t.equal(seen.length, 10, 'a second stop stops nothing again');
});

async function freePort(): Promise<number> {
  const s: Server = await new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => resolve(srv));
  });
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

t.test('an HTTP port in use: VERDICT_ADDRESS_IN_USE, and what had started is stopped again', async (t) => {
  const taken: Server = await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => resolve(s));
  });
  t.teardown(() => taken.close());
  const httpPort = (taken.address() as { port: number }).port;
  const grpcPort = await freePort();
  const config = {
    ...AGGREGATOR_DEFAULTS,
    httpAddress: `127.0.0.1:${httpPort}`,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    db: `sqlite:${join(tempDir(t), 'verdict.db')}`,
    logLevel: 'silent',
  };
  let caught: unknown;
  await startAggregator(config, silent).catch((err: unknown) => (caught = err));
  t.equal(errorCode(caught), 'VERDICT_ADDRESS_IN_USE');
  t.match((caught as Error).message, `127.0.0.1:${httpPort} is already in use`);
  // The agents' gRPC server had started: it was closed, so its port is free again.
  const again: Server = await new Promise((resolve, reject) => {
    const s = createServer()
      .once('error', reject)
      .listen(grpcPort, '127.0.0.1', () => resolve(s));
  });
  await new Promise((r) => again.close(r));
  t.pass(`gRPC port ${grpcPort} was released`);
});
