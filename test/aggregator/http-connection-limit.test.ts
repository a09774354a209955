import { connect, type Socket } from 'node:net';
import t from 'tap';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { until } from '../fixtures/wait.js';

// --http-max-connections: a client holding connections open (here, requests whose headers never end) cannot take the
// process's sockets without limit. Past the limit a new connection is closed as soon as it is accepted, without an
// answer, and counted in verdict_http_connections_dropped_total; once a held connection goes, requests are answered.

/** A connection that has sent the start of a request and nothing more: the server holds it open. */
function hold(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** What happens to a new connection: the bytes it received before the server ended it, or 'open' after `ms`. */
function fate(port: number, ms: number): Promise<{ closed: boolean; received: string }> {
  return new Promise((resolve) => {
    let received = '';
    const s = connect(port, '127.0.0.1');
    s.on('data', (d: Buffer) => (received += d.toString()));
    s.on('error', () => undefined);
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ closed: false, received });
    }, ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, received });
    });
  });
}

const dropped = (text: string) => Number(/^verdict_http_connections_dropped_total (\d+)$/m.exec(text)?.[1]);

t.test(
  'past --http-max-connections a new connection is closed and counted; the API answers again when one goes',
  async (t) => {
    const agg = await startTestAggregator(t, { httpMaxConnections: 3 });
    const base = `http://127.0.0.1:${agg.httpPort}`;
    const first = await fetch(`${base}/metrics`, { headers: { connection: 'close' } });
    t.equal(dropped(await first.text()), 0, 'a fresh aggregator shows 0');
    // The held connections are opened on a quiet server: fetch's own connection must be gone first.
    await until(async () => (await countConnections(agg.app.server)) === 0, "fetch's connection closed");
    const held = [await hold(agg.httpPort), await hold(agg.httpPort), await hold(agg.httpPort)];
    t.teardown(() => held.forEach((s) => s.destroy()));
    await until(async () => (await countConnections(agg.app.server)) === 3, 'the server holds three connections');

    const fourth = await fate(agg.httpPort, 5000);
    t.ok(fourth.closed, 'the fourth connection is closed by the server');
    t.equal(fourth.received, '', 'without an answer (none can be sent)');

    (held.shift() as Socket).destroy();
    await until(async () => (await countConnections(agg.app.server)) === 2, 'the server saw one go');
    const res = await fetch(`${base}/metrics`, { headers: { connection: 'close' } });
    t.equal(res.status, 200, 'a request is answered again');
    t.equal(dropped(await res.text()), 1, 'the closed connection was counted');
  },
);

function countConnections(server: { getConnections(cb: (err: Error | null, n: number) => void): void }) {
  return new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}
