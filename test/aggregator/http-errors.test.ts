import { connect } from 'node:net';
import t from 'tap';
import { startTestAggregator } from '../fixtures/aggregator.js';

// fastify answers some requests itself (FST_ERR_* codes, "Client Error" on the
// raw socket). Every one of them must come back like the rest of the API:
// { error: "VERDICT_...", message: what is wrong and what to do }.

/** Send raw bytes, read the whole answer until the server closes: status line, headers, JSON body. */
function raw(port: number, bytes: string): Promise<{ status: number; headers: string; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', body = ''] = text.split('\r\n\r\n');
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0),
        headers: head,
        json: JSON.parse(body) as Record<string, unknown>,
      });
    });
  });
}

t.test("fastify's own errors answer with a VERDICT_ code and a message saying what to do", async (t) => {
  const agg = await startTestAggregator(t);
  const base = `http://127.0.0.1:${agg.httpPort}`;
  const post = (path: string, contentType: string | undefined, body: string) =>
    fetch(`${base}${path}`, { method: 'POST', headers: contentType ? { 'content-type': contentType } : {}, body });
  const cases: [string, () => Promise<Response>, number, string, RegExp][] = [
    [
      'route not found',
      () => fetch(`${base}/api/v1/nope`),
      404,
      'VERDICT_NOT_FOUND',
      /no route GET \/api\/v1\/nope; see \/docs/,
    ],
    [
      'method not routed',
      () => fetch(`${base}/api/v1/nodes`, { method: 'DELETE' }),
      404,
      'VERDICT_NOT_FOUND',
      /no route DELETE \/api\/v1\/nodes/,
    ],
    [
      'schema validation',
      () => fetch(`${base}/api/v1/flows?limit=lots`),
      400,
      'VERDICT_BAD_REQUEST',
      /querystring \/limit must be integer; see \/docs/,
    ],
    [
      'bad JSON',
      () => post('/api/v1/reports/x/runs', 'application/json', '{"start": '),
      400,
      'VERDICT_INVALID_JSON',
      /not valid JSON .*; send a JSON document/,
    ],
    [
      'a JSON prototype key',
      () => post('/api/v1/reports/x/runs', 'application/json', '{"__proto__": {"admin": true}}'),
      400,
      'VERDICT_INVALID_JSON',
      /send a JSON document/,
    ],
    [
      'an empty JSON body',
      () => post('/api/v1/reports/x/runs', 'application/json', ''),
      400,
      'VERDICT_BAD_REQUEST',
      /body is empty; send a JSON document, or no Content-Type/,
    ],
    [
      'unsupported media type',
      () => post('/api/v1/reports/x/runs', 'text/xml', '<run/>'),
      415,
      'VERDICT_UNSUPPORTED_MEDIA_TYPE',
      /not "text\/xml"; send Content-Type: application\/json/,
    ],
    [
      'body too large',
      () => post('/api/v1/reports/x/runs', 'application/json', JSON.stringify({ start: 'x'.repeat(1_100_000) })),
      413,
      'VERDICT_BODY_TOO_LARGE',
      /larger than the 1048576 bytes this route accepts; send a smaller body/,
    ],
    [
      'a bad percent-escape in the path',
      () => fetch(`${base}/api/v1/nodes/%E0%A4%A/cis`),
      400,
      'VERDICT_BAD_URL',
      /invalid percent-escape; encode reserved characters as %XX/,
    ],
    [
      'a path segment longer than any name',
      () => fetch(`${base}/api/v1/nodes/${'n'.repeat(254)}/cis`),
      414,
      'VERDICT_URL_TOO_LONG',
      /longer than the 253 characters any Verdict name may have/,
    ],
  ];
  for (const [name, send, status, error, message] of cases) {
    const res = await send();
    const body = (await res.json()) as Record<string, unknown>;
    t.equal(res.status, status, name);
    t.match(body, { error, message }, name);
    t.notMatch(JSON.stringify(body), /FST_ERR|Client Error|statusCode/, `${name}: no framework wording`);
  }
  // A name as long as Kubernetes allows (253) reaches the route: a 404 for the node, not a 414.
  const longest = await fetch(`${base}/api/v1/nodes/${'n'.repeat(253)}/cis`);
  t.equal(longest.status, 404);
  t.match(await longest.json(), { error: 'VERDICT_NOT_FOUND', message: /has no scan yet/ });
});

t.test(
  'requests that are not valid HTTP get a VERDICT_ body before the connection closes, not "Client Error"',
  async (t) => {
    const agg = await startTestAggregator(t);
    const cases: [string, string, number, string, RegExp][] = [
      [
        'garbage',
        'HELLO THERE\r\n\r\n',
        400,
        'VERDICT_BAD_REQUEST',
        /not valid HTTP\/1\.1 \(HPE_INVALID_METHOD\); check the client/,
      ],
      [
        'a bad Content-Length',
        'POST /api/v1/reports/x/runs HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n',
        400,
        'VERDICT_BAD_REQUEST',
        /not valid HTTP\/1\.1 \(HPE_INVALID_CONTENT_LENGTH\)/,
      ],
      [
        'headers over 16 KiB',
        `GET /api/v1/nodes HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
        431,
        'VERDICT_HEADERS_TOO_LARGE',
        /exceed 16 KiB; send a shorter URL or fewer headers/,
      ],
    ];
    for (const [name, bytes, status, error, message] of cases) {
      const res = await raw(agg.httpPort, bytes);
      t.equal(res.status, status, name);
      t.match(res.headers, /\r\nContent-Type: application\/json\r\n/i, `${name}: JSON`);
      t.match(res.json, { error, message }, name);
    }
    t.equal((await fetch(`http://127.0.0.1:${agg.httpPort}/healthz`)).status, 200, 'the server keeps answering');
  },
);
