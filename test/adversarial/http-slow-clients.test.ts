import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';

// Slow clients. fastify turns Node's request timeout off (requestTimeout 0), so a client that sends its headers and
// then trickles a body a byte at a time held its connection for as long as it liked: seen holding one for over 400 s.
// Worse, a caller refused at the access hook (401 before the body is read) kept its connection open too, as Node drains
// the rest of a declared 16 MiB webhook body to keep the connection alive: anyone who can reach the port could hold
// sockets (file descriptors the process shares with its gRPC server and store) without any credential.

const TOKEN = 'reader-token-0123456789abcdef';

/** Open a raw connection, send `head`, then one byte every 200 ms; resolve with what came back and when it closed. */
function trickle(port: number, head: string, giveUpMs: number): Promise<{ answer: string; closedAfterMs?: number }> {
  return new Promise((resolve) => {
    const start = Date.now();
    let answer = '';
    const socket = connect(port, '127.0.0.1', () => socket.write(head));
    const drip = setInterval(() => socket.writable && socket.write(' '), 200);
    const done = (closedAfterMs?: number) => {
      clearInterval(drip);
      clearTimeout(timer);
      socket.destroy();
      resolve({ answer, ...(closedAfterMs === undefined ? {} : { closedAfterMs }) });
    };
    const timer = setTimeout(() => done(), giveUpMs);
    socket.on('data', (c: Buffer) => (answer += c.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => done(Date.now() - start));
  });
}

t.test('a caller refused before its body is read loses the connection, however slowly it sends', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'tokens.yaml'), `tokens:\n- {user: r, token: ${TOKEN}, verbs: [get], resources: [nodes]}\n`);
  const agg = await startTestAggregator(t, { httpTokensFile: join(dir, 'tokens.yaml') });
  for (const [who, auth, status] of [
    ['no credentials', '', 401],
    ['a token without the grant', `Authorization: Bearer ${TOKEN}\r\n`, 403],
  ] as const) {
    const { answer, closedAfterMs } = await trickle(
      agg.httpPort,
      `POST /api/v1/audit/webhook HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 16000000\r\n\r\n{`,
      5000,
    );
    t.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `), `${who}: ${status} at once`);
    t.match(answer, /connection: close/i, `${who}: the answer says the connection closes`);
    t.ok(
      closedAfterMs !== undefined && closedAfterMs < 3000,
      `${who}: the server closed it (after ${closedAfterMs} ms)`,
    );
  }
  // A caller with no body keeps its keep-alive connection (a dashboard that pasted a wrong token retries on it).
  const res = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/nodes`);
  t.equal(res.status, 401);
  t.not(res.headers.get('connection'), 'close', 'a refused GET keeps its connection');
});

t.test('the HTTP server bounds how long a request may take to arrive', async (t) => {
  const agg = await startTestAggregator(t);
  // Node closes a request that is not received within requestTimeout (checked every 30 s) with a 408.
  t.ok(agg.app.server.requestTimeout > 0, `requestTimeout is set (${agg.app.server.requestTimeout} ms)`);
  t.ok(agg.app.server.requestTimeout <= 120_000, 'and at most two minutes');
  t.ok(agg.app.server.headersTimeout <= agg.app.server.requestTimeout, 'headers arrive within it too');
});
