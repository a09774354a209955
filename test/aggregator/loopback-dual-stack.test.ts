import * as grpc from '@grpc/grpc-js';
import { request } from 'node:http';
import t from 'tap';
import { isLoopbackAddress, isLoopbackPeer } from '../../aggregator/ingest/auth.js';
import { HELLO, rawAgentStream, startTestAggregator } from '../fixtures/aggregator.js';

// `--http [::]:P` and `--grpc [::]:P` listen dual-stack: an IPv4 loopback client
// arrives as ::ffff:127.0.0.1 and an IPv6 one as ::1, without brackets (Node's
// socket.remoteAddress; grpc-js 1.14 appends ":port" to it). With no
// credentials configured, both must count as loopback.

/** GET over a chosen source family: `host` is what the client dials. */
function get(host: string, port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, family: host.includes(':') ? 6 : 4 }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test(
  'peers and addresses in every form Node and grpc-js report are recognised as loopback, and only those',
  async (t) => {
    const loopbackPeers = [
      '127.0.0.1:5000',
      'ipv4:127.0.0.1:5000',
      '[::1]:5000',
      'ipv6:[::1]:5000',
      '[::ffff:127.0.0.1]:5000',
      '::ffff:127.0.0.1:5000',
      '::1:5000',
      '::1',
      '::ffff:127.0.0.1',
      '127.8.9.10',
      '0:0:0:0:0:0:0:1:5000',
    ];
    for (const p of loopbackPeers) t.ok(isLoopbackPeer(p), JSON.stringify(p));
    const otherPeers = [
      '10.0.0.4:5000',
      'ipv4:192.168.1.2:5000',
      '[2001:db8::1]:5000',
      '128.0.0.1:1',
      '::ffff:10.0.0.1:5000',
      '::ffff:128.0.0.1',
      '2001:db8::1:5000',
      'fe80::1',
      'unknown',
      '',
      '::2:5000',
    ];
    for (const p of otherPeers) t.notOk(isLoopbackPeer(p), JSON.stringify(p));
    // HTTP sees a bare address: no port to strip, so "::1:5000" is the IPv6 address 0::1:5000, not loopback.
    for (const a of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '::ffff:7f00:1'])
      t.ok(isLoopbackAddress(a), JSON.stringify(a));
    for (const a of ['::1:5000', '10.0.0.1', '::ffff:10.0.0.1', '[::1]', '', 'localhost'])
      t.notOk(isLoopbackAddress(a), JSON.stringify(a));
  },
);

t.test('an aggregator on [::] answers HTTP readers on 127.0.0.1 and ::1 without credentials', async (t) => {
  const agg = await startTestAggregator(t, { httpAddress: '[::]:0', grpcAddress: '[::]:0' });
  for (const host of ['127.0.0.1', '::1']) {
    const res = await get(host, agg.httpPort, '/api/v1/nodes');
    t.equal(res.status, 200, `a reader from ${host} is on loopback`);
    t.same(res.body, { items: [], total: 0 });
  }
});

t.test('an aggregator on [::] admits agents from 127.0.0.1 and ::1 without credentials', async (t) => {
  const agg = await startTestAggregator(t, { httpAddress: '[::]:0', grpcAddress: '[::]:0' });
  for (const [host, node] of [
    ['127.0.0.1', 'v4-node'],
    ['[::1]', 'v6-node'],
  ] as const) {
    const s = rawAgentStream(agg.grpcPort, new grpc.Metadata(), host);
    t.teardown(() => s.close());
    s.send(HELLO(node));
    await s.waitFor(1);
    t.equal(s.error?.code, undefined, `an agent from ${host} is not refused (${s.error?.details ?? 'no error'})`);
    t.equal(s.received[0]?.kind, 'welcome', `an agent from ${host} is welcomed`);
  }
  t.same(
    (await agg.store.listNodes()).map((n) => n.name),
    ['v4-node', 'v6-node'],
  );
});
