import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import t from 'tap';
import { FlowCapture, parseFlowSource } from '../../../agent/flows/index.js';
import { InternalNetworks, workloadFromPodName } from '../../../agent/flows/normalize.js';
import { HubbleParser } from '../../../agent/flows/sources/hubble.js';
import {
  HubbleObserverSource,
  observerServiceDefinition,
  timestampToRfc3339,
  type WireTimestamp,
} from '../../../agent/flows/sources/hubble-grpc.js';
import { networkAccess } from '../../../aggregator/compute/network-access.js';
import type { FlowRecord } from '../../../common/flow.js';
import { packageRoot } from '../../../common/package-root.js';
import { flowFromWire } from '../../../proto/from-wire.js';
import type { WireFlowBatch } from '../../../proto/index.js';
import { recordingOutbox } from '../../fixtures/outbox.js';
import { tempDir } from '../../fixtures/tmp.js';
import { capturingLogger, logMessages, until } from '../../fixtures/wait.js';

// There is no Cilium here. Each test starts a real grpc-js server in this
// process, on a unix socket in a temp dir, that implements Observer.GetFlows
// from Verdict's own proto/cilium/observer.proto (Cilium's names and field
// numbers) and streams the 30 lines of examples/flows/hubble/flows.jsonl as
// GetFlowsResponse messages, plus a lost_events message. The client side is
// the real HubbleObserverSource, alone or inside a FlowCapture.

type Json = Record<string, unknown>;
const dir = join(packageRoot(), 'examples', 'flows');
const sampleLines = (): Json[] =>
  readFileSync(join(dir, 'hubble', 'flows.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Json);

const LOST: Json = {
  lost_events: { source: 'PERF_EVENT_RING_BUFFER', num_events_lost: '3', cpu: 2 },
  node_name: 'shop-prod/worker-1',
  time: '2026-11-20T10:15:00.500Z',
};

/** RFC 3339 (as the exporter writes it) to google.protobuf.Timestamp. */
function toTimestamp(s: string): WireTimestamp {
  const m = /^(.*?)(?:\.(\d{1,9}))?Z$/.exec(s);
  if (!m) throw new Error(`not an RFC 3339 UTC time: ${s}`);
  return { seconds: String(Date.parse(`${m[1]}Z`) / 1000), nanos: Number((m[2] ?? '').padEnd(9, '0')) };
}

/**
 * An exporter JSON line to the GetFlowsResponse object a Hubble server sends: Timestamps and wrapper messages where
 * JSON has bare values.
 */
function toResponse(line: Json): Json {
  const m = structuredClone(line);
  if (typeof m.time === 'string') m.time = toTimestamp(m.time);
  const flow = m.flow as Json | undefined;
  if (flow) {
    if (typeof flow.time === 'string') flow.time = toTimestamp(flow.time);
    if (typeof flow.is_reply === 'boolean') flow.is_reply = { value: flow.is_reply };
  }
  const lost = m.lost_events as Json | undefined;
  if (lost && typeof lost.cpu === 'number') lost.cpu = { value: lost.cpu };
  return m;
}

type FlowsCall = grpc.ServerWritableStream<Json, Json>;

/** As Hubble does: flows before the request's `since` are not sent (it is inclusive); lost events always are. */
function sinceAllows(call: FlowsCall, line: Json): boolean {
  const since = call.request.since as WireTimestamp | undefined;
  if (!since || !line.flow) return true;
  const ts = toTimestamp(String(line.time));
  const a = BigInt(ts.seconds ?? 0) * 1_000_000_000n + BigInt(ts.nanos ?? 0);
  const b = BigInt(since.seconds ?? 0) * 1_000_000_000n + BigInt(since.nanos ?? 0);
  return a >= b;
}

async function startServer(socket: string, getFlows: (call: FlowsCall) => void): Promise<grpc.Server> {
  const server = new grpc.Server();
  server.addService(observerServiceDefinition(), { GetFlows: getFlows });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  return server;
}

const waitFor = (what: string, cond: () => boolean, timeoutMs = 10_000) => until(cond, what, timeoutMs, 10);
const msgs = logMessages;

// The same key mapping and fields as samples.test.ts.
function expectedHubbleSummary(): Record<string, Record<string, unknown>> {
  const md = readFileSync(join(dir, 'EXPECTED.md'), 'utf8');
  const blocks = [...md.matchAll(/```json\n([\s\S]*?)```/g)].map(
    (m) => JSON.parse(m[1] as string) as Record<string, Record<string, unknown>>,
  );
  return blocks[1] as Record<string, Record<string, unknown>>;
}
function verdictKey(expectedKey: string): string {
  if (expectedKey.startsWith('-/')) return expectedKey.slice(2);
  const [ns, name] = expectedKey.split('/') as [string, string];
  return `${ns}/${workloadFromPodName(name)}`;
}
const FIELDS = [
  'ingressProtected',
  'egressProtected',
  'ingressFromInternet',
  'egressToInternet',
  'ingressFromOtherNamespaces',
  'egressToOtherNamespaces',
  'allowedIn',
  'deniedIn',
  'allowedOut',
  'deniedOut',
] as const;

t.test('Timestamps become RFC 3339 with 0, 3, 6 or 9 fraction digits, as protojson writes them', async (t) => {
  t.equal(timestampToRfc3339({ seconds: '1795168804', nanos: 118402771 }), '2026-11-20T10:00:04.118402771Z');
  t.equal(timestampToRfc3339({ seconds: '1795168804', nanos: 118000000 }), '2026-11-20T10:00:04.118Z');
  t.equal(timestampToRfc3339({ seconds: '1795168804', nanos: 5000 }), '2026-11-20T10:00:04.000005Z');
  t.equal(timestampToRfc3339({ seconds: '1795168804' }), '2026-11-20T10:00:04Z');
  t.equal(timestampToRfc3339({}), '1970-01-01T00:00:00Z');
  t.equal(timestampToRfc3339({ seconds: '99999999999999999' }), undefined, 'out of range');
});

t.test(
  'FlowCapture follows a Hubble Observer socket: the sample gives exactly the hand-derived summary, and the lost count arrives',
  async (t) => {
    const socket = join(tempDir(t), 'hubble.sock');
    const requests: Json[] = [];
    const server = await startServer(socket, (call) => {
      requests.push(call.request);
      for (const line of sampleLines()) call.write(toResponse(line));
      call.write(toResponse(LOST));
      // follow = true: the stream stays open. This server ignores `since`: FlowCapture starts
      // following at the real clock, which may be after the sample's times.
    });
    t.teardown(() => server.forceShutdown());

    const batches: WireFlowBatch[] = [];
    const { log, lines } = capturingLogger();
    const spec = parseFlowSource(`hubble:unix://${socket}`);
    t.equal(spec.kind, 'hubble-grpc');
    const capture = new FlowCapture({
      sources: [spec],
      outbox: recordingOutbox(batches),
      internal: new InternalNetworks(),
      log,
      windowMs: 3_600_000,
      pollMs: 3_600_000,
      now: Date.now,
    });
    t.same(msgs(lines, /not supported/), [], 'no "not supported" warning for hubble-grpc');
    capture.start();
    t.teardown(() => capture.stop());

    // What the file-based parser counts from the same lines.
    const fileParser = new HubbleParser(new InternalNetworks());
    // Connections held for their verdict come out as the stream moves on (release) or when the window closes (flush).
    const wantRecords =
      sampleLines().reduce(
        (n, l) => n + (fileParser.response(l).kind === 'flow' ? 1 : 0) + fileParser.release().length,
        0,
      ) + fileParser.flush().length;
    let lost = 0;
    // The lost event is sent last, so once it is counted every flow before it is in too.
    await waitFor('the lost count', () => {
      capture.flush();
      lost = batches.reduce((n, b) => n + b.sources.reduce((m, s) => m + s.lost, 0), 0);
      return lost > 0;
    });
    t.equal(lost, 3, "lost_events.num_events_lost arrives as the source's lost count");
    t.equal(capture.stats.records, wantRecords, 'as many flows as the file parser finds in the same lines');
    t.equal(capture.stats.malformed, 0);
    t.same(
      batches.flatMap((b) => b.sources.map((s) => s.source)),
      batches.map(() => spec.raw),
      'counts are reported under the source as given',
    );

    t.equal(requests.length, 1);
    t.same(
      requests[0],
      { follow: true, since: requests[0]?.since },
      'GetFlows asks to follow, and nothing else but since',
    );
    t.ok(requests[0]?.since, 'and for flows since a point in time');

    const flows: FlowRecord[] = batches.flatMap((b) =>
      b.records.map((r) => {
        const f = flowFromWire(r);
        if (typeof f === 'string') throw new Error(f);
        return f;
      }),
    );
    const got = networkAccess(flows).endpoints;
    const expected = expectedHubbleSummary();
    t.same(got.map((e) => e.endpoint).sort(), Object.keys(expected).map(verdictKey).sort(), 'the same endpoints');
    for (const [key, want] of Object.entries(expected)) {
      const e = got.find((g) => g.endpoint === verdictKey(key));
      t.same(
        Object.fromEntries(FIELDS.map((f) => [f, e?.[f]])),
        Object.fromEntries(FIELDS.map((f) => [f, want[f]])),
        key,
      );
    }
    t.equal(msgs(lines, /following Hubble flows/).length, 1, 'one log line for the connection');
  },
);

t.test(
  'decoded messages have the exporter JSON shape; after a restart of the server the source reconnects from the last flow time',
  async (t) => {
    const socket = join(tempDir(t), 'hubble.sock');
    const sample = sampleLines();
    const requests: Json[] = [];
    const calls: FlowsCall[] = [];
    const session = (extra: Json[]) => (call: FlowsCall) => {
      calls.push(call);
      requests.push(call.request);
      for (const line of [...sample, ...extra]) if (sinceAllows(call, line)) call.write(toResponse(line));
    };
    let server = await startServer(socket, session([LOST]));
    t.teardown(() => server.forceShutdown());

    const received: Json[] = [];
    const { log, lines } = capturingLogger();
    // The source starts following just before the sample's first flow.
    const source = new HubbleObserverSource({
      address: `unix://${socket}`,
      log,
      onMessage: (m) => void received.push(m as Json),
      minBackoffMs: 20,
      maxBackoffMs: 100,
      now: () => Date.parse('2026-11-20T09:59:00Z'),
    });
    source.start();
    t.teardown(() => source.stop());

    await waitFor('the first session', () => received.length === sample.length + 1);
    t.same(
      received.slice(0, sample.length),
      sample,
      'every message equals its exporter JSON line (Timestamps as RFC 3339, is_reply a plain boolean, revision a string)',
    );
    t.same(received[sample.length], LOST, 'lost_events, with num_events_lost as a string and cpu unwrapped');
    t.ok(source.connected);

    // Hubble goes away (cilium-agent restart) and stays away for a few retries.
    server.forceShutdown();
    await waitFor('the disconnect', () => !source.connected);
    await waitFor('several failed retries', () => source.stats.failures >= 4);
    t.equal(msgs(lines, /stream lost/).length, 1, 'the disconnect is logged once');
    t.equal(
      msgs(lines, /cannot reach|stream lost/).filter((l) => l.level === 40).length,
      1,
      'failed retries are not logged as warnings again',
    );

    // The newest flow time the source saw; Hubble's `since` is inclusive, so it sends that flow again.
    const newest = sample.reduce((a, l) => (String(l.time) > String(a.time) ? l : a));
    const fresh = structuredClone(sample[0] as Json);
    const freshFlow = fresh.flow as Json;
    freshFlow.uuid = '00000000-0000-4000-8000-000000000001';
    freshFlow.time = fresh.time = '2026-11-20T10:20:00.250Z';
    ((freshFlow.l4 as Json).TCP as Json).source_port = 50001;

    // Hubble rewinds its ring to `since`: of the old flows only the one at that very time comes again, then the new
    // one.
    server = await startServer(socket, session([fresh]));
    // The fresh flow is the last one this session writes, and a stream keeps order: once it is in, any repeat of an
    // older flow would already be in too.
    await waitFor('the fresh flow, written last, after the reconnect', () =>
      received.some((m) => (m.flow as Json | undefined)?.uuid === freshFlow.uuid),
    );
    t.equal(received.length, sample.length + 2, 'nothing else arrives before it');
    t.equal(requests.length, 2);
    t.same(
      requests[1],
      { follow: true, since: toTimestamp(String(newest.time)) },
      'the second GetFlows asks for flows since the newest flow seen',
    );
    t.same(received[sample.length + 1], fresh, 'the new flow arrives');
    t.equal(source.stats.duplicatesDropped, 1, 'the flow at the resume point is not delivered twice');
    const parsed = new HubbleParser(new InternalNetworks()).response(received[sample.length + 1]);
    t.equal(parsed.kind, 'flow', 'and parses as a flow');
    t.equal(msgs(lines, /following Hubble flows/).length, 2, 'one connect log per connection');

    const before = lines.length;
    const call = calls[calls.length - 1] as FlowsCall;
    const cancelled = new Promise((r) => call.once('cancelled', r));
    source.stop();
    await cancelled; // the server sees the cancellation: the client has processed its own end of the call
    t.same(lines.slice(before), [], 'stop() cancels the stream without logging a disconnect');
    // A reconnect would come from the retry timer, at most maxBackoffMs (100) + 20% jitter after the cancellation.
    // The marker that such a timer would have fired: a source with the same backoff, started now against an address
    // where nothing listens, fails four times (its retries wait about 20 + 40 + 80 ms, past that bound).
    const control = new HubbleObserverSource({
      address: `unix://${join(tempDir(t), 'nobody.sock')}`,
      log: pino({ level: 'silent' }),
      onMessage: () => undefined,
      minBackoffMs: 20,
      maxBackoffMs: 100,
    });
    control.start();
    t.teardown(() => control.stop());
    await waitFor('four failed attempts of a source with the same backoff', () => control.stats.failures >= 4);
    t.equal(requests.length, 2, 'no new GetFlows call after stop()');
    t.same(lines.slice(before), [], 'nor any log line');
  },
);

t.test('back-pressure: onMessage returning false pauses the stream until resume()', async (t) => {
  const socket = join(tempDir(t), 'hubble.sock');
  const sample = sampleLines();
  const server = await startServer(socket, (call) => {
    for (const line of sample) call.write(toResponse(line));
  });
  t.teardown(() => server.forceShutdown());
  const received: unknown[] = [];
  const source = new HubbleObserverSource({
    address: `unix://${socket}`,
    log: pino({ level: 'silent' }),
    onMessage: (m) => received.push(m) !== 1,
  });
  source.start();
  t.teardown(() => source.stop());
  await waitFor('the first message', () => received.length === 1);
  // The positive marker: a second source, started after the first is paused, on the same server. The server has
  // written every message to the paused stream before it writes any to this one; once this one has all of them,
  // they had time to reach the paused source, which must still hold only its first.
  const control: unknown[] = [];
  const other = new HubbleObserverSource({
    address: `unix://${socket}`,
    log: pino({ level: 'silent' }),
    onMessage: (m) => void control.push(m),
  });
  other.start();
  t.teardown(() => other.stop());
  await waitFor('every message through an unpaused source', () => control.length === sample.length);
  t.equal(received.length, 1, 'nothing more while paused');
  source.resume();
  await waitFor('the rest', () => received.length === sample.length);
  t.pass('all messages after resume()');
});
