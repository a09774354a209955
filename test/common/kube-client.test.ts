import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { KubeApiError, KubeClient } from '../../common/kube-client.js';
import { fuzzParams } from '../fixtures/fuzz.js';
import { makeTestCa } from '../fixtures/pki.js';

/** A stand-in API server over HTTPS that asks for a client certificate, or plain HTTP; `handle` answers. */
async function serve(
  t: Test,
  handle: (req: IncomingMessage, res: ServerResponse) => void,
  tls?: { cert: string; key: string; ca: string },
): Promise<string> {
  const server = tls
    ? createHttpsServer({ ...tls, requestCert: true, rejectUnauthorized: true }, handle)
    : createHttpServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('over HTTPS the client checks the server against the CA and presents its certificate', async (t) => {
  const ca = makeTestCa('kube test CA');
  const serverId = ca.issue({ commonName: 'apiserver', usage: 'server', ips: ['127.0.0.1'] });
  const clientId = ca.issue({ commonName: 'verdict-agent', usage: 'client' });
  const seen: { cn?: string | string[]; auth?: string; body?: string; method?: string }[] = [];
  const server = await serve(
    t,
    (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        seen.push({ cn: peer.subject?.CN, auth: req.headers.authorization, body, method: req.method });
        res.setHeader('content-type', 'application/json');
        res.end(req.url === '/api/v1/nodes/n1' ? '{"metadata":{"name":"n1","labels":{"zone":"é"}}}' : '{}');
      });
    },
    { ...serverId, ca: ca.cert },
  );
  const kube = new KubeClient({
    server,
    ca: Buffer.from(ca.cert),
    cert: Buffer.from(clientId.cert),
    key: Buffer.from(clientId.key),
    token: () => 'tok',
    describe: 'test',
  });
  t.teardown(() => kube.close());
  t.same(await kube.get('/api/v1/nodes/n1'), { metadata: { name: 'n1', labels: { zone: 'é' } } });
  t.same(await kube.create('/apis/x', { a: 'ü' }), {});
  t.same(seen, [
    { cn: 'verdict-agent', auth: 'Bearer tok', body: '', method: 'GET' },
    { cn: 'verdict-agent', auth: 'Bearer tok', body: '{"a":"ü"}', method: 'POST' },
  ]);

  const otherCa = makeTestCa('another CA');
  const stranger = new KubeClient({ server, ca: Buffer.from(otherCa.cert), describe: 'a kubeconfig' });
  t.teardown(() => stranger.close());
  const err = await stranger.get('/api/v1/nodes/n1').catch((e: unknown) => e);
  t.ok(err instanceof KubeApiError, 'a server the CA did not sign is a KubeApiError');
  t.match(err, {
    status: 0,
    reason: 'Unreachable',
    message: /GET \/api\/v1\/nodes\/n1 on https:.* \(a kubeconfig\) failed/,
  });
});

t.test('a Status answer is a KubeApiError with its code and reason', async (t) => {
  const server = await serve(t, (_req, res) => {
    res.statusCode = 403;
    res.end('{"kind":"Status","reason":"Forbidden","message":"nodes is forbidden"}');
  });
  const kube = new KubeClient({ server, describe: 'test' });
  t.teardown(() => kube.close());
  const err = await kube.get('/api/v1/nodes').catch((e: unknown) => e);
  t.match(err, { status: 403, reason: 'Forbidden', message: 'GET /api/v1/nodes: 403 Forbidden: nodes is forbidden' });
  const nothing = new KubeClient({ server: 'http://127.0.0.1:1', describe: 'nowhere' });
  t.teardown(() => nothing.close());
  t.match(await nothing.get('/api').catch((e: unknown) => e), { status: 0, reason: 'Unreachable' });
});

t.test('a watch yields whole lines, a character split between two chunks included', async (t) => {
  const events = ['{"type":"ADDED","object":{"name":"café"}}', '{"type":"MODIFIED","object":{"name":"naïve"}}'];
  const bytes = Buffer.from(`${events[0]}\n${events[1]}\n`, 'utf8');
  // Cut inside the two bytes of "é" and again inside the second line.
  const cut = bytes.indexOf(Buffer.from('é', 'utf8')) + 1;
  const server = await serve(t, (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.flushHeaders();
    res.write(bytes.subarray(0, cut));
    setTimeout(() => {
      res.write(bytes.subarray(cut, cut + 30));
      setTimeout(() => res.end(bytes.subarray(cut + 30)), 20);
    }, 20);
  });
  const kube = new KubeClient({ server, describe: 'test' });
  t.teardown(() => kube.close());
  const lines: string[] = [];
  for await (const line of kube.watchLines('/api/v1/pods?watch=1', new AbortController().signal)) lines.push(line);
  t.same(lines, events);
});

t.test(
  'property: a watch yields each event once, whole, however its bytes are cut (large events included)',
  async (t) => {
    // Events as the API server writes them, one JSON object a line; some large (an object of many chunks), some with
    // characters of 2-4 bytes, cut at random byte offsets (inside characters too) and written piece by piece.
    const event = fc
      .tuple(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.nat({ max: 3 }))
      .map(([name, size]) =>
        JSON.stringify({ type: 'ADDED', object: { name, pad: 'x'.repeat([0, 10, 3000, 200_000][size] as number) } }),
      );
    let pieces: Buffer[] = [];
    const server = await serve(t, (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.flushHeaders();
      const queue = [...pieces];
      const next = () => {
        const p = queue.shift();
        if (p === undefined) return void res.end();
        res.write(p);
        setImmediate(next);
      };
      next();
    });
    const kube = new KubeClient({ server, describe: 'test' });
    t.teardown(() => kube.close());
    await fc.assert(
      fc.asyncProperty(
        fc.array(event, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (events, cuts) => {
          const bytes = Buffer.from(events.map((e) => `${e}\n`).join(''), 'utf8');
          const at = [...new Set(cuts.map((c) => c % bytes.length))].sort((a, b) => a - b);
          pieces = [];
          let from = 0;
          for (const c of [...at, bytes.length]) {
            if (c > from) pieces.push(bytes.subarray(from, c));
            from = c;
          }
          const lines: string[] = [];
          for await (const line of kube.watchLines('/api/v1/pods?watch=1', new AbortController().signal))
            lines.push(line);
          return t.same(lines, events);
        },
      ),
      fuzzParams(30),
    );
  },
);

t.test('a watch ends when its signal aborts', async (t) => {
  const server = await serve(t, (_req, res) => {
    res.flushHeaders();
    res.write('{"type":"ADDED","object":{}}\n');
  });
  const kube = new KubeClient({ server, describe: 'test' });
  t.teardown(() => kube.close());
  const abort = new AbortController();
  const lines: string[] = [];
  const err = await (async () => {
    for await (const line of kube.watchLines('/api/v1/pods?watch=1', abort.signal)) {
      lines.push(line);
      abort.abort();
    }
  })().catch((e: unknown) => e);
  t.same(lines, ['{"type":"ADDED","object":{}}']);
  t.match(err, { name: 'AbortError' });
});
