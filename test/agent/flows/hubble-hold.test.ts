import t from 'tap';
import { AGENT_DEFAULTS } from '../../../agent/defaults.js';
import { InternalNetworks } from '../../../agent/flows/normalize.js';
import { HubbleParser } from '../../../agent/flows/sources/hubble.js';
import { parseRunArgs } from '../../../agent/run.js';

// Issue 15's leftover: the hold of a trace-first Hubble connection (time and cap) is configuration, and a connection
// pushed out by the cap is counted and still sent, never lost.

const internal = new InternalNetworks();

/** A trace event (event_type 4: no policy evidence) of one egress TCP connection, by source port. */
function trace(port: number, time: string): string {
  return JSON.stringify({
    flow: {
      time,
      verdict: 'FORWARDED',
      IP: { source: '10.8.14.163', destination: '10.8.15.253', ipVersion: 'IPv4' },
      l4: { TCP: { source_port: port, destination_port: 8087 } },
      source: { identity: 124484, namespace: 'default', labels: ['k8s:app=job'], pod_name: 'job-8mg2z' },
      destination: {
        identity: 107099,
        namespace: 'default',
        labels: ['k8s:app=web'],
        pod_name: 'web-85c67465d6-tfgcp',
      },
      node_name: 'node-a',
      event_type: { type: 4 },
      traffic_direction: 'EGRESS',
      is_reply: false,
    },
    node_name: 'node-a',
    time,
  });
}

/** The same connection's policy-verdict event (event_type 5, an L3 match). */
function verdict(port: number, time: string): string {
  const line = JSON.parse(trace(port, time)) as { flow: Record<string, unknown> };
  line.flow.event_type = { type: 5 };
  line.flow.policy_match_type = 1;
  return JSON.stringify(line);
}

t.test('the hold defaults are AGENT_DEFAULTS, and the flags set them', async (t) => {
  const base = ['--aggregator', 'agg:9090', '--host-root', '/'];
  const d = parseRunArgs(base);
  t.equal(d.hubbleHoldMs, AGENT_DEFAULTS.run.hubbleHoldMs);
  t.equal(d.hubbleHoldMs, 2000);
  t.equal(d.hubbleHoldMaxConnections, AGENT_DEFAULTS.run.hubbleHoldMaxCount);
  t.equal(d.hubbleHoldMaxConnections, 10_000);
  const set = parseRunArgs([...base, '--hubble-hold-ms', '500', '--hubble-hold-max-connections', '3']);
  t.equal(set.hubbleHoldMs, 500);
  t.equal(set.hubbleHoldMaxConnections, 3);
  t.throws(() => parseRunArgs([...base, '--hubble-hold-max-connections', '0']), /--hubble-hold-max-connections/);
  t.throws(() => parseRunArgs([...base, '--hubble-hold-ms', '-1']), /--hubble-hold-ms/);
});

t.test('a connection pushed out by the hold cap is counted and sent once, without its verdict', async (t) => {
  const p = new HubbleParser(internal, { ms: 2000, maxConnections: 2 });
  for (const port of [1, 2, 3]) t.equal(p.line(trace(port, '2021-06-10T12:50:15Z')).kind, 'skip', `trace ${port} held`);
  t.equal(p.stats.heldEvicted, 1, 'the third pushed the first out');
  const out = p.release();
  t.equal(out.length, 1, 'handed over at once, not after the hold time');
  t.match(out[0], { connections: 1, policyUnknown: true, policyDecided: false });
  t.same(p.release(), [], 'and only once');
  // Its verdict, arriving later: the evidence, counting no connection again.
  t.match(p.line(verdict(1, '2021-06-10T12:50:15.001Z')), {
    kind: 'flow',
    flow: { connections: 0, policyDecided: true },
  });
  // The two still held take their verdicts as usual.
  t.match(p.line(verdict(2, '2021-06-10T12:50:15.001Z')), {
    kind: 'flow',
    flow: { connections: 1, policyDecided: true },
  });
  t.equal(p.flush().length, 1, 'the last one handed over when the window closes');
  t.equal(p.stats.heldEvicted, 1);
});

t.test('an evicted connection not yet released is handed over by flush', async (t) => {
  const p = new HubbleParser(internal, { ms: 2000, maxConnections: 1 });
  p.line(trace(1, '2021-06-10T12:50:15Z'));
  p.line(trace(2, '2021-06-10T12:50:15Z'));
  const all = p.flush();
  t.equal(all.length, 2, 'both connections, each once');
  t.equal(p.stats.heldEvicted, 1);
});

t.test('the hold time is configurable', async (t) => {
  const p = new HubbleParser(internal, { ms: 500, maxConnections: 10 });
  p.line(trace(1, '2021-06-10T12:50:15Z'));
  p.line(trace(2, '2021-06-10T12:50:15.6Z'));
  t.same(
    p.release().map((f) => f.startMs),
    [Date.parse('2021-06-10T12:50:15Z')],
    'released 0.6 s later under a 0.5 s hold',
  );
});
