import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { KubeApiError, KubeClient } from '../../common/kube-client.js';
import { makeTestCa } from '../fixtures/pki.js';

/*
 * Answers a real API server gives that are not a plain JSON 200. There is no API server here: an in-process HTTP
 * server answers with the shapes the Kubernetes API documentation gives (Status objects, watch events one JSON object
 * a line, chunked) and with what a proxy or a broken connection in front of one produces.
 */

async function serve(t: Test, handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function client(t: Test, server: string): KubeClient {
  const kube = new KubeClient({ server, describe: 'test' });
  t.teardown(() => kube.close());
  return kube;
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

t.test('a redirect is a KubeApiError naming where it led, not an empty object', async (t) => {
  const server = await serve(t, (_req, res) => {
    res.writeHead(302, { location: 'https://login.example/' });
    res.end();
  });
  const kube = client(t, server);
  const err = await failure(kube.get('/apis/coordination.k8s.io/v1/namespaces/verdict/leases/x'));
  t.ok(err instanceof KubeApiError, 'a KubeApiError');
  t.match(err, { status: 302, message: /302.*https:\/\/login\.example\// });
  const watch = await failure(
    (async () => {
      for await (const line of kube.watchLines('/api/v1/pods?watch=1', new AbortController().signal)) void line;
    })(),
  );
  t.match(watch, { status: 302 }, 'a watch that is redirected fails too');
});

t.test('a body cut short, or a 200 that is not JSON, is a KubeApiError', async (t) => {
  const server = await serve(t, (req, res) => {
    if (req.url === '/cut') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"kind":"NodeList","items":[');
      setTimeout(() => res.socket?.destroy(), 20);
    } else if (req.url === '/html') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<html>proxy login</html>');
    } else {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('upstream connect error');
    }
  });
  const kube = client(t, server);
  const cut = await failure(kube.get('/cut'));
  t.ok(cut instanceof KubeApiError, 'a cut body is a KubeApiError');
  t.match(cut, { status: 0, message: /GET \/cut on http:.*\(test\)/ });
  const html = await failure(kube.get('/html'));
  t.ok(html instanceof KubeApiError, 'a body that is not JSON is a KubeApiError');
  t.match(html, { status: 200, message: /GET \/html: 200.*not JSON.*<html>proxy login/ });
  t.match(await failure(kube.get('/503')), { status: 503, reason: '503', message: /upstream connect error/ });
});

t.test('a watch the server cuts mid-line fails and yields no part of that line', async (t) => {
  const server = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n{"type":"MODIFIED","obj');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  const kube = client(t, server);
  const lines: string[] = [];
  const err = await failure(
    (async () => {
      for await (const line of kube.watchLines('/api/v1/pods?watch=1', new AbortController().signal)) lines.push(line);
    })(),
  );
  t.same(lines, ['{"type":"ADDED","object":{"metadata":{"name":"a"}}}']);
  t.ok(err instanceof Error, 'the cut is an error, not the end of the watch');
});

t.test(
  'an ERROR event (410 Gone) is yielded as a line; the next request after an aborted watch is answered',
  async (t) => {
    const gone = JSON.stringify({
      type: 'ERROR',
      object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 },
    });
    const sockets = new Set<unknown>();
    const server = await serve(t, (req, res) => {
      sockets.add(req.socket);
      if (req.url?.includes('watch=1')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`${gone}\n`);
      } else res.end('{"kind":"PodList","items":[]}');
    });
    const kube = client(t, server);
    t.same(await kube.get('/api/v1/pods'), { kind: 'PodList', items: [] });
    const abort = new AbortController();
    const lines: string[] = [];
    const err = await failure(
      (async () => {
        for await (const line of kube.watchLines('/api/v1/pods?watch=1', abort.signal)) {
          lines.push(line);
          abort.abort();
        }
      })(),
    );
    t.same(lines, [gone]);
    t.match(err, { name: 'AbortError' });
    t.same(await kube.get('/api/v1/pods'), { kind: 'PodList', items: [] }, 'answered after the aborted watch');
    t.same(await kube.get('/api/v1/pods'), { kind: 'PodList', items: [] });
  },
);

t.test('a watch against a server its CA did not sign is a KubeApiError', async (t) => {
  const ca = makeTestCa('kube test CA');
  const id = ca.issue({ commonName: 'apiserver', usage: 'server', ips: ['127.0.0.1'] });
  const { createServer: createHttpsServer } = await import('node:https');
  const server = createHttpsServer({ cert: id.cert, key: id.key }, (_req, res) => res.end('{}'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const other = makeTestCa('another CA');
  const kube = new KubeClient({
    server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ca: Buffer.from(other.cert),
    describe: 'a kubeconfig',
  });
  t.teardown(() => kube.close());
  const err = await failure(
    (async () => {
      for await (const line of kube.watchLines('/api/v1/pods?watch=1', new AbortController().signal)) void line;
    })(),
  );
  t.ok(err instanceof KubeApiError, 'a KubeApiError');
  t.match(err, {
    status: 0,
    reason: 'Unreachable',
    message: /GET \/api\/v1\/pods\?watch=1 on https:.*\(a kubeconfig\)/,
  });
});

t.test('a large LIST in many chunks, characters split between them, is read whole', async (t) => {
  const items = Array.from({ length: 20_000 }, (_, i) => ({ metadata: { name: `pod-${i}`, labels: { z: 'é€😀' } } }));
  const body = Buffer.from(JSON.stringify({ kind: 'PodList', metadata: { resourceVersion: '7' }, items }), 'utf8');
  const server = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    for (let i = 0; i < body.length; i += 1001) res.write(body.subarray(i, i + 1001));
    res.end();
  });
  const kube = client(t, server);
  const list = await kube.get<{ items: unknown[] }>('/api/v1/pods');
  t.same(list.items.length, items.length);
  t.same(list.items[19_999], items[19_999]);
});

t.test('an abort while the server has not answered ends the request', async (t) => {
  const server = await serve(t, () => {
    // never answers
  });
  const kube = client(t, server);
  const abort = new AbortController();
  const pending = failure(
    (async () => {
      for await (const line of kube.watchLines('/api/v1/pods?watch=1', abort.signal)) void line;
    })(),
  );
  setTimeout(() => abort.abort(), 20);
  t.match(await pending, { name: 'AbortError' });
});

t.test(
  'a watch that goes silent past its idle limit fails (a dead connection), keeping the events before',
  async (t) => {
    // The peer never ends the body and never closes: what a partitioned API server looks like (no FIN, no RST).
    const server = await serve(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"5"}}}\n');
    });
    const kube = client(t, server);
    const lines: string[] = [];
    const bound = new AbortController();
    const hung = setTimeout(() => bound.abort(new Error('still waiting after 10 s')), 10_000);
    const err = await failure(
      (async () => {
        for await (const line of kube.watchLines('/api/v1/pods?watch=1', bound.signal, 300)) lines.push(line);
      })(),
    );
    clearTimeout(hung);
    t.equal(lines.length, 1, 'the event sent before the silence');
    t.match(String(err), /no watch data within 300 ms/, 'then the idle limit, not a wait for good');
  },
);
