import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { isLoopbackPeer } from '../../aggregator/ingest/auth.js';
import { flowToWire, reportToWire } from '../../proto/convert.js';
import { flow, T0 } from '../fixtures/flows.js';
import { HELLO, rawAgentStream, startTestAggregator } from '../fixtures/aggregator.js';
import { reportOf } from '../fixtures/reports.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

const run = (
  seq: number,
  statuses: Record<string, 'PASS' | 'FAIL' | 'SKIP'> = { '4.1.1': 'PASS', '4.2.1': 'FAIL' },
) => ({ benchmarkRun: reportToWire(reportOf('n1', statuses), seq) });

async function metric(port: number, name: string): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .join('\n');
}

t.test(
  'hello is welcomed; a run is acked after it is stored; a resend is acked as a duplicate and stored once',
  async (t) => {
    const agg = await startTestAggregator(t);
    const s = rawAgentStream(agg.grpcPort);
    t.teardown(() => s.close());
    s.send(HELLO('n1'));
    s.send(run(1));
    s.send(run(1));
    await s.waitFor(3);
    t.same(s.received, [
      {
        kind: 'welcome',
        welcome: {
          lastStoredSeq: 0,
          aggregatorVersion: s.received[0]?.kind === 'welcome' ? s.received[0].welcome.aggregatorVersion : '',
          maxMessageBytes: 4 * 1024 * 1024,
        },
      },
      { kind: 'ack', ack: { seq: 1, duplicate: false } },
      { kind: 'ack', ack: { seq: 1, duplicate: true } },
    ]);
    t.equal((await agg.store.listNodes())[0]?.latest?.fail, 1);
    t.match(await metric(agg.httpPort, 'verdict_ingest_duplicates_total'), /verdict_ingest_duplicates_total 1$/);

    // A reconnect with the same boot id learns what is stored.
    const again = rawAgentStream(agg.grpcPort);
    t.teardown(() => again.close());
    again.send(HELLO('n1'));
    await again.waitFor(1);
    t.equal(again.received[0]?.kind === 'welcome' && again.received[0].welcome.lastStoredSeq, 1);
  },
);

t.test(
  'an agent that ends its side of the stream gets its answers, then the server ends the call with OK',
  async (t) => {
    // A stopping agent half-closes; if the server never ended its side, the agent's channel stayed open until keepalive
    // gave up (about 20 s), and SIGTERM took that long.
    const agg = await startTestAggregator(t);
    const s = rawAgentStream(agg.grpcPort);
    t.teardown(() => s.close());
    s.send(HELLO('n-half'));
    s.send(run(1));
    s.halfClose();
    const status = await s.waitForStatus();
    t.equal(status.code, grpc.status.OK, 'the server finished the call');
    t.same(
      s.received.map((m) => m.kind),
      ['welcome', 'ack'],
      'everything sent before the half-close was answered first',
    );
    t.equal((await agg.store.listNodes()).find((n) => n.name === 'n-half')?.latest?.fail, 1, 'and stored');
  },
);

t.test('a malformed protobuf frame is rejected and counted, and the stream keeps working', async (t) => {
  const agg = await startTestAggregator(t);
  const s = rawAgentStream(agg.grpcPort);
  t.teardown(() => s.close());
  s.send(HELLO('n1'));
  s.sendRaw(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
  s.send(run(1));
  await s.waitFor(3);
  t.equal(s.received[1]?.kind, 'reject');
  if (s.received[1]?.kind === 'reject') t.equal(s.received[1].reject.code, 'VERDICT_INGEST_MALFORMED');
  t.same(s.received[2], { kind: 'ack', ack: { seq: 1, duplicate: false } });
  t.match(await metric(agg.httpPort, 'verdict_ingest_rejected_total'), /reason="malformed"} 1/);
});

t.test('an oversized message is rejected with its size and counted; the stream keeps working', async (t) => {
  const agg = await startTestAggregator(t, { maxMessageBytes: 4096 });
  const s = rawAgentStream(agg.grpcPort);
  t.teardown(() => s.close());
  s.send(HELLO('n1'));
  const big = run(1);
  big.benchmarkRun.checks[0]!.evidence = 'x'.repeat(10_000);
  s.send(big);
  s.send(run(2));
  await s.waitFor(3);
  const rej = s.received[1];
  t.equal(rej?.kind, 'reject');
  if (rej?.kind === 'reject') {
    t.equal(rej.reject.code, 'VERDICT_INGEST_OVERSIZED');
    t.match(rej.reject.message, /over the 4096-byte limit/);
  }
  t.same(s.received[2], { kind: 'ack', ack: { seq: 2, duplicate: false } });
  t.match(await metric(agg.httpPort, 'verdict_ingest_rejected_total'), /reason="oversized"} 1/);
});

t.test('an invalid run is rejected with the reason and not stored', async (t) => {
  const agg = await startTestAggregator(t);
  const s = rawAgentStream(agg.grpcPort);
  t.teardown(() => s.close());
  s.send(HELLO('n1'));
  const bad = run(1, { '4.1.1': 'SKIP' });
  bad.benchmarkRun.checks[0]!.skipReason = '';
  s.send(bad);
  await s.waitFor(2);
  t.equal(
    s.received[1]?.kind === 'reject' && s.received[1].reject.message,
    'benchmark run: checks[0] (4.1.1) is SKIP without a reason',
  );
  t.equal((await agg.store.listNodes())[0]?.latest, undefined);
});

t.test('a stream that does not start with Hello is refused and counted', async (t) => {
  const agg = await startTestAggregator(t);
  const s = rawAgentStream(agg.grpcPort);
  t.teardown(() => s.close());
  s.send(run(1));
  await s.waitFor(1);
  t.equal(s.error?.code, grpc.status.INVALID_ARGUMENT);
  t.match(s.error?.details, /first message must be Hello/);
  t.match(await metric(agg.httpPort, 'verdict_ingest_rejected_total'), /reason="protocol"} 1/);
});

t.test('a hello with a name that is not a node name is refused', async (t) => {
  const agg = await startTestAggregator(t);
  const s = rawAgentStream(agg.grpcPort);
  t.teardown(() => s.close());
  s.send(HELLO('../../etc'));
  await s.waitFor(1);
  t.equal(s.error?.code, grpc.status.INVALID_ARGUMENT);
});

t.test('with a shared token file, a wrong or missing token is refused and the right one admitted', async (t) => {
  const tokenFile = join(tempDir(t), 'token');
  writeFileSync(tokenFile, 'a-very-secret-shared-token-0123456789\n');
  const agg = await startTestAggregator(t, { agentTokenFile: tokenFile });
  for (const given of [undefined, 'Bearer wrong-token-wrong-token-wrong']) {
    const md = new grpc.Metadata();
    if (given) md.set('authorization', given);
    const s = rawAgentStream(agg.grpcPort, md);
    t.teardown(() => s.close());
    s.send(HELLO('n1'));
    await s.waitFor(1);
    t.equal(s.error?.code, grpc.status.UNAUTHENTICATED, `token ${given ?? '(none)'}`);
  }
  const md = new grpc.Metadata();
  md.set('authorization', 'Bearer a-very-secret-shared-token-0123456789');
  const ok = rawAgentStream(agg.grpcPort, md);
  t.teardown(() => ok.close());
  ok.send(HELLO('n1'));
  await ok.waitFor(1);
  t.equal(ok.received[0]?.kind, 'welcome');
  t.match(await metric(agg.httpPort, 'verdict_ingest_rejected_total'), /reason="unauthenticated"} 2/);
});

t.test('a flow batch is stored once and acked; a resend is a duplicate; a batch with a NUL is rejected', async (t) => {
  const agg = await startTestAggregator(t);
  const s = rawAgentStream(agg.grpcPort);
  t.teardown(() => s.close());
  const record = flowToWire(flow({ connections: 3 }));
  const batch = (seq: number, r = record) => ({
    flowBatch: {
      seq,
      windowStartUnixMs: T0,
      windowEndUnixMs: T0 + 15_000,
      records: [r],
      sources: [{ source: 'calico:/x', malformed: 2, lost: 0 }],
      droppedRecords: 0,
    },
  });
  s.send(HELLO('n1'));
  s.send(batch(1));
  s.send(batch(1));
  s.send(batch(2, { ...record, destination: { ...record.destination!, name: 'bad\u0000name' } }));
  await s.waitFor(4);
  t.same(s.received.slice(1, 3), [
    { kind: 'ack', ack: { seq: 1, duplicate: false } },
    { kind: 'ack', ack: { seq: 1, duplicate: true } },
  ]);
  t.equal(
    s.received[3]?.kind === 'reject' && s.received[3].reject.message,
    'flow batch: records[0]: destination.name holds a NUL character',
  );
  const rows = await agg.store.flowRows({ fromMs: T0 - 3600_000, toMs: T0 + 3600_000 });
  t.equal(
    rows.reduce((sum, r) => sum + r.flow.connections, 0),
    3,
    'stored once',
  );
  t.match(await metric(agg.httpPort, 'verdict_flows_malformed_total'), /source="calico"} 2/);
});

t.test('a heartbeat moves last seen forward without a sequence number or an ack', async (t) => {
  const agg = await startTestAggregator(t);
  const s = rawAgentStream(agg.grpcPort);
  t.teardown(() => s.close());
  s.send(HELLO('n1'));
  s.send(run(1));
  await s.waitFor(2);
  const before = (await agg.store.listNodes())[0]?.lastSeenMs ?? 0;
  // Last seen is the aggregator's clock in ms: a heartbeat handled in the same ms could not move it.
  await until(() => Date.now() > before, 'the clock to pass the last seen of the run');
  s.send({ heartbeat: { sentUnixMs: Date.now() } });
  // A resend of the stored run, after the heartbeat on the same in-order stream: its duplicate ack marks the heartbeat
  // handled, and it does not touch last seen itself, so only the heartbeat can have moved it.
  s.send(run(1));
  await s.waitFor(3);
  t.same(
    s.received.slice(1),
    [
      { kind: 'ack', ack: { seq: 1, duplicate: false } },
      { kind: 'ack', ack: { seq: 1, duplicate: true } },
    ],
    'the heartbeat itself is not answered',
  );
  t.ok(((await agg.store.listNodes())[0]?.lastSeenMs ?? 0) > before, 'the heartbeat moved last seen forward');
});

t.test('loopback peers are recognised in every form grpc-js reports', async (t) => {
  for (const p of ['127.0.0.1:5000', 'ipv4:127.0.0.1:5000', '[::1]:5000', 'ipv6:[::1]:5000', '[::ffff:127.0.0.1]:5000'])
    t.ok(isLoopbackPeer(p), p);
  for (const p of ['10.0.0.4:5000', 'ipv4:192.168.1.2:5000', '[2001:db8::1]:5000', '128.0.0.1:1'])
    t.notOk(isLoopbackPeer(p), p);
});
