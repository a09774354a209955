import t from 'tap';
import { reportToWire } from '../../proto/convert.js';
import { HELLO, rawAgentStream, startTestAggregator } from '../fixtures/aggregator.js';
import { reportOf } from '../fixtures/reports.js';

// A node whose clock jumped ahead (an RTC set to a wrong year at boot, corrected later by NTP) sends one scan dated in
// the future. The store keeps a node's latest scan by start time, so a stored future scan would stay the node's
// "latest" for good and hide every later, correctly dated scan from /api/v1/nodes, the summary and /metrics. The
// aggregator refuses a run started more than ingest.maxClockAheadMs (10 minutes) past its clock, with a Reject
// counted as invalid. (Found by an adversarial test; the test sends what such a node would send.)

const rejectOf = (m: unknown) => (m as { reject?: { seq: number; code: string; message: string } }).reject;

t.test('a scan dated far in the future is refused and does not hide later scans of its node', async (t) => {
  const agg = await startTestAggregator(t);
  const s = rawAgentStream(agg.grpcPort);
  t.teardown(() => s.close());
  const now = Date.now();
  s.send(HELLO('skewed'));
  // Seq 1: the clock is ten years ahead; every check passes.
  const future = new Date(now + 10 * 365 * 86_400_000).toISOString();
  s.send({
    benchmarkRun: reportToWire(reportOf('skewed', { '4.1.1': 'PASS', '4.2.1': 'PASS' }, { startedAt: future }), 1),
  });
  // Seq 2: five minutes ahead, inside the allowed skew; 4.1.1 fails.
  const slightly = new Date(now + 5 * 60_000).toISOString();
  s.send({
    benchmarkRun: reportToWire(reportOf('skewed', { '4.1.1': 'FAIL', '4.2.1': 'PASS' }, { startedAt: slightly }), 2),
  });
  await s.waitFor(3);
  t.same(
    s.received.map((m) => m.kind),
    ['welcome', 'reject', 'ack'],
  );
  const reject = rejectOf(s.received[1]);
  t.equal(reject?.seq, 1);
  t.equal(reject?.code, 'VERDICT_INGEST_INVALID');
  t.match(reject?.message, /started_at is \d+ s ahead of the aggregator's clock/);
  const res = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/nodes?name=skewed`);
  const body = (await res.json()) as { items: { name: string; fail: number; pass: number }[] };
  t.equal(body.items[0]?.fail, 1, `the stored scan is the one within the skew (got ${JSON.stringify(body.items[0])})`);
  const metrics = await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
  t.match(metrics, /verdict_ingest_rejected_total\{reason="invalid"\} 1\b/, 'the refused run is counted');
});
