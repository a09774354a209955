import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { acceptsGzip, gzipParts } from '../../aggregator/http/gzip-parts.js';
import { fuzzParams } from '../fixtures/fuzz.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { helloFields } from '../fixtures/node-hello.js';
import { findTool, skipUnlessFound } from '../fixtures/tools.js';

// /metrics in gzip when the scraper asks (Prometheus sends `Accept-Encoding: gzip`): the parts of the text are
// compressed as raw deflate segments ending in a sync flush and sent as one gzip member (header, segments, a final
// empty block, CRC-32 and length), the per-node families' segments kept while their bytes stay the same. Checked
// against zlib's own gunzip, against curl (which reads only a stream's first member) where it is installed, and in
// test/monitoring/prometheus.test.ts by a real Prometheus scraping it.

const HELLO = helloFields({ kubeletVersion: 'v1.32.1', agentVersion: '0.1.0' });

t.test('gzipParts: any parts, empty and large among them, gunzip to the parts joined', async (t) => {
  const part = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    // A kept body's size, from a few kinds of text: one that compresses well and random bytes.
    fc.integer({ min: 64 * 1024, max: 80 * 1024 }).map((n) => Buffer.alloc(n, 'verdict_x{node="n"} 1\n')),
    fc.uint8Array({ minLength: 64 * 1024, maxLength: 70 * 1024 }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(part, { maxLength: 6 }), async (parts) => {
      const buffers = parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)));
      const body = Buffer.concat(await gzipParts(buffers));
      t.same(gunzipSync(body), Buffer.concat(buffers));
    }),
    fuzzParams(40),
  );
});

t.test(
  'a large part is compressed once while it stays the same buffer; a new one of the same size is not mixed up',
  async (t) => {
    const a = Buffer.alloc(100_000, 'verdict_cis_node_score_ratio{node="a"} 1\n');
    const first = await gzipParts([a]);
    const again = await gzipParts([a.subarray(0)]);
    t.equal(again[1], first[1], 'the same segment object: not compressed again');
    const b = Buffer.alloc(100_000, 'verdict_cis_node_score_ratio{node="b"} 0\n');
    const other = await gzipParts([b]);
    t.not(other[1], first[1]);
    t.same(gunzipSync(Buffer.concat(other)), b, 'the new buffer gunzips to itself');
    const small = Buffer.from('verdict_up 1\n');
    const s1 = await gzipParts([small]);
    const s2 = await gzipParts([small]);
    t.not(s1[1], s2[1], "a small part is compressed at each call (it may live in Buffer's shared pool)");
  },
);

t.test('Accept-Encoding: gzip when named with a q above 0', async (t) => {
  const cases: [string | string[] | undefined, boolean][] = [
    ['gzip', true],
    ['GZIP', true],
    ['deflate, gzip;q=0.5', true],
    ['gzip;q=0', false],
    ['gzip; q=0.0', false],
    ['br, deflate', false],
    ['*', false],
    ['x-gzip', true],
    [['identity', 'gzip'], true],
    ['', false],
    [undefined, false],
  ];
  for (const [header, expected] of cases) t.equal(acceptsGzip(header), expected, JSON.stringify(header));
});

/** /metrics for 200 nodes, as raw bytes through node:http (fetch would gunzip for us), with this Accept-Encoding. */
async function scrape(port: number, encoding: string) {
  return new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
    request(`http://127.0.0.1:${port}/metrics`, { headers: { 'accept-encoding': encoding } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
    })
      .on('error', reject)
      .end();
  });
}

async function withNodes(t: Test) {
  const agg = await startTestAggregator(t);
  for (let i = 0; i < 200; i++) await agg.store.recordHello({ name: `node-${i}`, ...HELLO }, Date.now());
  return agg;
}

const perNode = (text: string) => text.split('\n').filter((l) => /node="node-/.test(l));

t.test('/metrics with and without gzip: the same text, gzip a fraction of it, the headers to match', async (t) => {
  const agg = await withNodes(t);
  const plain = await scrape(agg.httpPort, 'identity');
  const zipped = await scrape(agg.httpPort, 'gzip');
  t.equal(plain.headers['content-encoding'], undefined);
  t.equal(zipped.headers['content-encoding'], 'gzip');
  t.equal(zipped.headers.vary, 'accept-encoding');
  t.equal(zipped.headers['content-length'], String(zipped.body.length), 'the length is the compressed length');
  const text = gunzipSync(zipped.body).toString();
  t.ok(text.endsWith('\n'));
  t.equal(perNode(text).length, perNode(plain.body.toString()).length);
  t.same(perNode(text), perNode(plain.body.toString()), 'the same per-node series');
  t.ok(zipped.body.length * 4 < plain.body.length, `${zipped.body.length} bytes against ${plain.body.length}`);
});

const CURL = findTool('curl');
t.test(
  'curl --compressed (which reads only the first gzip member) reads all of /metrics',
  { skip: skipUnlessFound({ curl: CURL }, 'apt-get install curl') },
  async (t) => {
    const agg = await withNodes(t);
    const plain = await scrape(agg.httpPort, 'identity');
    // Not execFileSync: the aggregator answers from this process's event loop.
    const r = await promisify(execFile)(CURL as string, [
      '-sS',
      '--compressed',
      `http://127.0.0.1:${agg.httpPort}/metrics`,
    ]);
    t.same(perNode(r.stdout), perNode(plain.body.toString()));
    t.ok(perNode(r.stdout).length >= 200, `${perNode(r.stdout).length} per-node lines`);
  },
);

t.test(
  'property: any Accept-Encoding header is read without throwing, gzip exactly when listed with a q above 0',
  async (t) => {
    const coding = fc.constantFrom('gzip', 'GZip', 'x-gzip', 'deflate', 'br', 'identity', '*', 'zstd', '');
    const q = fc.option(fc.constantFrom('0', '0.0', '0.001', '0.5', '1', '1.000'), { nil: undefined });
    const item = fc.record({ coding, q, pad: fc.constantFrom('', ' ', '  ') });
    fc.assert(
      fc.property(fc.array(item, { maxLength: 5 }), fc.string(), (items, noise) => {
        const header = items.map((i) => `${i.pad}${i.coding}${i.q === undefined ? '' : `;${i.pad}q=${i.q}`}`).join(',');
        const want = items.some(
          (i) => ['gzip', 'x-gzip'].includes(i.coding.toLowerCase()) && (i.q === undefined || Number(i.q) > 0),
        );
        if (acceptsGzip(header) !== want) throw new Error(`${JSON.stringify(header)}: not ${want}`);
        if (typeof acceptsGzip(noise) !== 'boolean') throw new Error('not a boolean');
      }),
      fuzzParams(500),
    );
    t.pass('property held');
  },
);
