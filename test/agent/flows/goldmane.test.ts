import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import fc from 'fast-check';
import t from 'tap';
import { FlowCapture, parseFlowSource } from '../../../agent/flows/index.js';
import { InternalNetworks, workloadFromPodName } from '../../../agent/flows/normalize.js';
import { parseCalicoLine } from '../../../agent/flows/sources/calico.js';
import {
  GoldmaneSource,
  goldmaneFlowsServiceDefinition,
  goldmaneFlowToRecord,
} from '../../../agent/flows/sources/goldmane.js';
import { networkAccess } from '../../../aggregator/compute/network-access.js';
import { flowRecordProblem, type FlowRecord } from '../../../common/flow.js';
import { packageRoot } from '../../../common/package-root.js';
import { flowFromWire } from '../../../proto/from-wire.js';
import type { WireFlowBatch } from '../../../proto/index.js';
import { recordingOutbox } from '../../fixtures/outbox.js';
import { fuzzParams } from '../../fixtures/fuzz.js';
import { makeTestCa, writeIdentity } from '../../fixtures/pki.js';
import { tempDir } from '../../fixtures/tmp.js';
import { capturingLogger, logMessages, until } from '../../fixtures/wait.js';

// There is no Goldmane here. Each test starts a real grpc-js server in this
// process, on 127.0.0.1 (an ephemeral port), that implements Flows.Stream from
// Verdict's own proto/goldmane/api.proto (Calico's names and field numbers).
// It streams the 43 lines of examples/flows/calico/flows.log, each turned into
// the Goldmane Flow felix would have sent for it (goldmane/pkg ... felix's
// ConvertFlowlogToGoldmane and goldmane/proto HitFromString, rewritten below):
// same key fields, "name_aggr" as the name, policy hit strings as PolicyHits
// (rule index -1 = an EndOfTier hit whose trigger is the named policy),
// num_flows_started / num_flows_completed / num_flows as
// num_connections_started / _completed / _live.
//
// What Goldmane cannot express, and how the sample is handled:
// - IP addresses: Goldmane has none. Only the 5 denied lines carry IPs, and
//   with no internal CIDRs configured they change nothing.
// - The 6 old-shape lines (all_policies, 4-field hits without a rule index):
//   Goldmane only ever gets hits from a current felix. They become what such a
//   felix would send for the same traffic: the non-staged hits as enforced,
//   every hit as pending, rule index -2 ("unknown"; none of them is a -1).
// - Buckets: Goldmane streams 15 s buckets; the sample's 300 s windows are
//   kept as they are (start_time / end_time), which the client does not mind.
// Everything else maps one to one, so every line gives exactly the FlowRecord
// the flow-log parser gives, and the summary equals EXPECTED.md's.

type Json = Record<string, unknown>;
const dir = join(packageRoot(), 'examples', 'flows');
const calicoLines = (): string[] =>
  readFileSync(join(dir, 'calico', 'flows.log'), 'utf8')
    .split('\n')
    .filter(Boolean);

const TYPES: Record<string, string> = {
  wep: 'WorkloadEndpoint',
  hep: 'HostEndpoint',
  ns: 'NetworkSet',
  net: 'Network',
};
const SHORT_KINDS: Record<string, string> = {
  gnp: 'GlobalNetworkPolicy',
  np: 'CalicoNetworkPolicy',
  knp: 'NetworkPolicy',
  snp: 'StagedNetworkPolicy',
  sgnp: 'StagedGlobalNetworkPolicy',
  sknp: 'StagedKubernetesNetworkPolicy',
  kcnp: 'ClusterNetworkPolicy',
  pro: 'Profile',
};
const STAGED = new Set(['StagedNetworkPolicy', 'StagedGlobalNetworkPolicy', 'StagedKubernetesNetworkPolicy']);
const ACTION: Record<string, string> = { allow: 'Allow', deny: 'Deny', pass: 'Pass' };

/**
 * A felix policy-hit string as the PolicyHit Goldmane gets for it: both name forms; 4-field hits get rule index -2
 * (unknown).
 */
function hitFromString(s: string): Json {
  const [idx, tier, namePart, action, rule = '-2'] = s.split('|') as [string, string, string, string, string?];
  let kind: string;
  let namespace = '';
  let name: string;
  const prefixed = /^([a-z]+):(.+)$/.exec(namePart);
  if (prefixed && SHORT_KINDS[prefixed[1] as string]) {
    kind = SHORT_KINDS[prefixed[1] as string] as string;
    const rest = (prefixed[2] as string).split('/');
    if (rest.length === 2) [namespace, name] = rest as [string, string];
    else name = rest[0] as string;
  } else {
    const parts = namePart.split('/');
    let n = parts[parts.length - 1] as string;
    if (parts.length === 2) {
      namespace = parts[0] as string;
      if (n.startsWith('staged:knp.')) [kind, n] = ['StagedKubernetesNetworkPolicy', n.slice('staged:knp.'.length)];
      else if (n.startsWith('knp.')) [kind, n] = ['NetworkPolicy', n.slice('knp.'.length)];
      else if (n.includes('staged:')) [kind, n] = ['StagedNetworkPolicy', n.replace('staged:', '')];
      else kind = 'CalicoNetworkPolicy';
    } else if (n.includes('staged:')) [kind, n] = ['StagedGlobalNetworkPolicy', n.replace('staged:', '')];
    else kind = n.startsWith('__PROFILE__.') ? 'Profile' : 'GlobalNetworkPolicy';
    name = n.split('.').slice(1).join('.');
  }
  const goldmaneTier = tier === '__PROFILE__' ? '' : tier;
  const act = ACTION[action] as string;
  if (rule === '-1')
    return {
      kind: 'EndOfTier',
      tier: goldmaneTier,
      action: act,
      policy_index: idx,
      rule_index: '-1',
      trigger: { kind, name, namespace, tier: goldmaneTier },
    };
  return { kind, namespace, name, tier: goldmaneTier, action: act, policy_index: idx, rule_index: rule };
}

const isStaged = (h: Json) => STAGED.has(String(h.kind)) || STAGED.has(String((h.trigger as Json | undefined)?.kind));

/** One flows.log record as the Goldmane Flow for the same traffic. */
function toGoldmaneFlow(rec: Json): Json {
  const pol = (rec.policies ?? {}) as Json;
  const hits = (v: unknown) => ((v ?? []) as string[]).map(hitFromString);
  const all = hits(pol.all_policies);
  const labels = (v: unknown) => ((v as { labels?: string[] } | null)?.labels ?? []).slice().sort();
  return {
    Key: {
      source_name: rec.source_name_aggr,
      source_namespace: rec.source_namespace,
      source_type: TYPES[String(rec.source_type)],
      dest_name: rec.dest_name_aggr,
      dest_namespace: rec.dest_namespace,
      dest_type: TYPES[String(rec.dest_type)],
      dest_port: String(rec.dest_port ?? 0),
      dest_service_name: rec.dest_service_name ?? '',
      dest_service_namespace: rec.dest_service_namespace ?? '',
      dest_service_port_name: rec.dest_service_port ?? '',
      dest_service_port: String(rec.dest_service_port_num ?? 0),
      proto: rec.proto,
      reporter: rec.reporter === 'src' ? 'Src' : 'Dst',
      action: ACTION[String(rec.action)],
      policies: {
        enforced_policies: 'enforced_policies' in pol ? hits(pol.enforced_policies) : all.filter((h) => !isStaged(h)),
        pending_policies: 'pending_policies' in pol ? hits(pol.pending_policies) : all,
      },
    },
    start_time: String(rec.start_time),
    end_time: String(rec.end_time),
    source_labels: labels(rec.source_labels),
    dest_labels: labels(rec.dest_labels),
    packets_in: String(rec.packets_in),
    packets_out: String(rec.packets_out),
    bytes_in: String(rec.bytes_in),
    bytes_out: String(rec.bytes_out),
    num_connections_started: String(rec.num_flows_started),
    num_connections_completed: String(rec.num_flows_completed),
    num_connections_live: String(rec.num_flows),
  };
}

const sampleFlows = (): Json[] => calicoLines().map((l) => toGoldmaneFlow(JSON.parse(l) as Json));

type StreamCall = grpc.ServerWritableStream<Json, Json>;

/**
 * As Goldmane does: start_time_gte 0 is "from now on" (here: the whole sample, as buckets completing after the call);
 * otherwise flows from that start time on.
 */
function gteAllows(call: StreamCall, flow: Json): boolean {
  const gte = Number(call.request.start_time_gte ?? 0);
  return gte === 0 || Number(flow.start_time) >= gte;
}

async function startServer(
  stream: (call: StreamCall) => void,
  port = 0,
  creds = grpc.ServerCredentials.createInsecure(),
): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService(goldmaneFlowsServiceDefinition(), {
    Stream: stream,
    List: (_call: unknown, cb: grpc.sendUnaryData<Json>) =>
      cb({ code: grpc.status.UNIMPLEMENTED, details: 'not in this fake' }),
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port: bound };
}

const waitFor = (what: string, cond: () => boolean, timeoutMs = 10_000) => until(cond, what, timeoutMs, 10);
const msgs = logMessages;

// The same key mapping and fields as samples.test.ts.
function expectedCalicoSummary(): Record<string, Record<string, unknown>> {
  const md = readFileSync(join(dir, 'EXPECTED.md'), 'utf8');
  const blocks = [...md.matchAll(/```json\n([\s\S]*?)```/g)].map(
    (m) => JSON.parse(m[1] as string) as Record<string, Record<string, unknown>>,
  );
  return blocks[0] as Record<string, Record<string, unknown>>;
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

/** Through the wire format: what a Goldmane server's FlowResult decodes to on the client. */
function overTheWire(flow: Json, id = 1): Json {
  const def = goldmaneFlowsServiceDefinition().Stream as grpc.MethodDefinition<Json, Json>;
  return def.responseDeserialize(def.responseSerialize({ id: String(id), flow })).flow as Json;
}

t.test(
  'every sample line, as the Goldmane Flow felix would send, gives the FlowRecord the flow-log parser gives',
  async (t) => {
    const lines = calicoLines();
    t.equal(lines.length, 43);
    const internal = new InternalNetworks();
    for (const [i, line] of lines.entries()) {
      const fromFile = parseCalicoLine(line, internal);
      const fromGoldmane = goldmaneFlowToRecord(overTheWire(toGoldmaneFlow(JSON.parse(line) as Json), i + 1));
      t.equal(fromGoldmane.kind, 'flow', `line ${i + 1} converts`);
      t.same(fromGoldmane, fromFile, `line ${i + 1}: the same record`);
    }
  },
);

t.test('FlowCapture follows Goldmane: the sample gives exactly the hand-derived Calico summary', async (t) => {
  const requests: Json[] = [];
  const flows = sampleFlows();
  const { server, port } = await startServer((call) => {
    requests.push(call.request);
    for (const [i, flow] of flows.entries()) if (gteAllows(call, flow)) call.write({ id: String(i + 1), flow });
    // A stream stays open: Goldmane sends each bucket as it completes.
  });
  t.teardown(() => server.forceShutdown());

  const batches: WireFlowBatch[] = [];
  const { log, lines } = capturingLogger();
  const spec = parseFlowSource(`goldmane:127.0.0.1:${port}`);
  t.equal(spec.kind, 'goldmane');
  const capture = new FlowCapture({
    sources: [spec],
    outbox: recordingOutbox(batches),
    internal: new InternalNetworks(),
    log,
    windowMs: 3_600_000,
    pollMs: 3_600_000,
    now: Date.now,
  });
  t.same(msgs(lines, /not supported/), [], 'no "not supported" warning for goldmane');
  capture.start();
  t.teardown(() => capture.stop());

  await waitFor('every flow', () => capture.stats.records === flows.length);
  capture.flush();
  t.equal(capture.stats.malformed, 0);
  t.same(requests, [{}], 'one Stream call, from now on (start_time_gte 0, left out), no filter');
  t.same(
    batches.flatMap((b) => b.sources.map((s) => s.source)),
    batches.map(() => spec.raw),
    'counts are reported under the source as given',
  );

  const records: FlowRecord[] = batches.flatMap((b) =>
    b.records.map((r) => {
      const f = flowFromWire(r);
      if (typeof f === 'string') throw new Error(f);
      return f;
    }),
  );
  const got = networkAccess(records).endpoints;
  const expected = expectedCalicoSummary();
  t.same(got.map((e) => e.endpoint).sort(), Object.keys(expected).map(verdictKey).sort(), 'the same endpoints');
  for (const [key, want] of Object.entries(expected)) {
    const e = got.find((g) => g.endpoint === verdictKey(key));
    t.same(
      Object.fromEntries(FIELDS.map((f) => [f, e?.[f]])),
      Object.fromEntries(FIELDS.map((f) => [f, want[f]])),
      key,
    );
  }
  const frontend = got.find((e) => e.endpoint === 'shop/frontend');
  t.same(frontend?.stagedPolicies, ['shop/restrict-frontend-egress'], 'the staged policy is seen, as intent only');
  t.equal(msgs(lines, /following Goldmane flows/).length, 1, 'one log line for the connection');
});

t.test(
  'after a restart of Goldmane the source reconnects from the newest flow start time, without repeats',
  async (t) => {
    const flows = sampleFlows();
    const requests: Json[] = [];
    const session = (extra: Json[]) => (call: StreamCall) => {
      requests.push(call.request);
      for (const [i, flow] of [...flows, ...extra].entries())
        if (gteAllows(call, flow)) call.write({ id: String(i + 1), flow });
    };
    const first = await startServer(session([]));
    const port = first.port;
    let server = first.server;
    t.teardown(() => server.forceShutdown());

    const received: FlowRecord[] = [];
    const wheres: string[] = [];
    const { log, lines } = capturingLogger();
    const source = new GoldmaneSource({
      address: `127.0.0.1:${port}`,
      log,
      onResult: (r, where) => {
        if (r.kind === 'flow') received.push(r.flow);
        wheres.push(where);
      },
      minBackoffMs: 20,
      maxBackoffMs: 100,
    });
    source.start();
    t.teardown(() => source.stop());

    await waitFor('the first session', () => received.length === flows.length);
    t.ok(source.connected);
    t.match(
      wheres[0],
      /^127\.0\.0\.1:\d+ flow 1 \(start_time 1795168800\)$/,
      'each flow is named by address, id and start time',
    );

    // Goldmane goes away (pod restart) and stays away for a few retries.
    server.forceShutdown();
    await waitFor('the disconnect', () => !source.connected);
    await waitFor('several failed retries', () => source.stats.failures >= 4);
    t.equal(msgs(lines, /stream lost/).length, 1, 'the disconnect is logged once');
    t.equal(
      msgs(lines, /cannot reach|stream lost/).filter((l) => l.level === 40).length,
      1,
      'failed retries are not logged as warnings again',
    );

    // It comes back with its buckets: it replays from the bucket holding start_time_gte (the 10:10 window, 9 flows
    // already delivered), then a new flow. One flow from the 10:00 window is replayed too, as a replay reaching
    // further back than asked: it must not count twice either.
    const newest = Math.max(...flows.map((f) => Number(f.start_time)));
    const inBoundary = flows.filter((f) => Number(f.start_time) === newest).length;
    t.equal(inBoundary, 9);
    const fresh = structuredClone(flows[0] as Json);
    fresh.start_time = String(newest + 300);
    fresh.end_time = String(newest + 600);
    const stale = flows[1] as Json;
    let second: StreamCall | undefined;
    ({ server } = await startServer((call) => {
      second = call;
      requests.push(call.request);
      call.write({ id: '900', flow: stale });
      for (const [i, flow] of [...flows, fresh].entries())
        if (gteAllows(call, flow)) call.write({ id: String(i + 1), flow });
    }, port));
    // The fresh flow is the last one this session writes, and a stream keeps order: once it is in, any repeat of an
    // older flow would already be in too.
    await waitFor('the fresh flow, written last, after the reconnect', () =>
      received.some((r) => r.startMs === (newest + 300) * 1000),
    );
    t.equal(received.length, flows.length + 1, 'nothing else arrives before it');
    t.equal(requests.length, 2);
    t.same(
      requests[1],
      { start_time_gte: String(newest) },
      'the second Stream call asks for flows from the newest start time seen',
    );
    t.equal(received[flows.length]?.startMs, (newest + 300) * 1000, 'the new flow arrives');
    t.equal(source.stats.duplicatesDropped, inBoundary, 'the flows at the resume point are not delivered twice');
    t.equal(source.stats.staleDropped, 1, 'nor a replayed flow older than the resume point');
    t.equal(msgs(lines, /following Goldmane flows/).length, 2, 'one connect log per connection');

    const before = lines.length;
    const call = second as StreamCall;
    const cancelled = new Promise((r) => call.once('cancelled', r));
    source.stop();
    await cancelled; // the server sees the cancellation: the client has processed its own end of the call
    t.same(lines.slice(before), [], 'stop() cancels the stream without logging a disconnect');
    // A reconnect would come from the retry timer, at most maxBackoffMs (100) + 20% jitter after the cancellation.
    // The marker that such a timer would have fired: a source with the same backoff, started now against an address
    // where nothing listens, fails four times (its retries wait about 20 + 40 + 80 ms, past that bound).
    const control = new GoldmaneSource({
      address: '127.0.0.1:1',
      log: pino({ level: 'silent' }),
      onResult: () => undefined,
      minBackoffMs: 20,
      maxBackoffMs: 100,
    });
    control.start();
    t.teardown(() => control.stop());
    await waitFor('four failed attempts of a source with the same backoff', () => control.stats.failures >= 4);
    t.equal(requests.length, 2, 'no new Stream call after stop()');
    t.same(lines.slice(before), [], 'nor any log line');
  },
);

t.test('malformed flows are counted per source and logged once, with the reason; Pass flows are skipped', async (t) => {
  const good = sampleFlows()[0] as Json;
  const withKey = (patch: Json): Json => ({ ...good, Key: { ...(good.Key as Json), ...patch } });
  const bad: Json[] = [
    {}, // no flow
    { flow: { ...good, Key: undefined } },
    { flow: withKey({ action: undefined }) },
    { flow: withKey({ reporter: undefined }) },
    { flow: withKey({ source_type: undefined }) },
    { flow: withKey({ dest_name: '' }) },
    { flow: { ...good, start_time: '200', end_time: '100' } },
    {
      flow: withKey({
        policies: { enforced_policies: [{ kind: 'NetworkPolicy', name: 'x', namespace: 'a', tier: 'default' }] },
      }),
    },
  ];
  const pass = { flow: withKey({ action: 'Pass' }) };
  const { server, port } = await startServer((call) => {
    for (const m of [...bad, pass, { flow: good }]) call.write({ id: '7', ...m });
  });
  t.teardown(() => server.forceShutdown());

  const batches: WireFlowBatch[] = [];
  const { log, lines } = capturingLogger();
  const spec = parseFlowSource(`goldmane:127.0.0.1:${port}`);
  const capture = new FlowCapture({
    sources: [spec],
    outbox: recordingOutbox(batches),
    internal: new InternalNetworks(),
    log,
    windowMs: 3_600_000,
    pollMs: 3_600_000,
    now: Date.now,
  });
  capture.start();
  t.teardown(() => capture.stop());
  await waitFor('the good flow', () => capture.stats.records === 1);
  capture.flush();
  t.equal(capture.stats.malformed, bad.length, 'every bad flow is counted');
  t.same(batches[0]?.sources, [{ source: spec.raw, malformed: bad.length, lost: 0 }], 'and reported with the batch');
  t.equal(batches[0]?.records.length, 1, 'the Pass flow is neither a record nor malformed');
  const logged = msgs(lines, /malformed flow record skipped/);
  t.equal(logged.length, 1, 'logged once, not per flow');
  t.match(logged[0]?.where, /flow 7 \(start_time \?\): no flow in the FlowResult/);

  // The reasons, one by one.
  const reasons = bad.map((m) => {
    const r = goldmaneFlowToRecord(m.flow === undefined ? undefined : overTheWire(m.flow as Json));
    return r.kind === 'malformed' ? r.reason : r.kind;
  });
  t.match(reasons, [
    /no flow/,
    /no Key/,
    /action is "ActionUnspecified"/,
    /reporter is "ReporterUnspecified"/,
    /source_type is "EndpointTypeUnspecified"/,
    /dest_name is empty/,
    /start_time/,
    /enforced_policies\[0\] has action "ActionUnspecified"/,
  ]);
});

t.test('policy hits: end-of-tier, profiles, staged kinds, unknown kinds', async (t) => {
  const base = (enforced: Json[], pending: Json[] = [], action = 'Deny'): Json =>
    overTheWire({
      Key: {
        source_name: 'pvt',
        source_namespace: '-',
        source_type: 'Network',
        dest_name: 'web-7d9f8b6c5d-*',
        dest_namespace: 'a',
        dest_type: 'WorkloadEndpoint',
        dest_port: '443',
        proto: 'tcp',
        reporter: 'Dst',
        action,
        policies: { enforced_policies: enforced, pending_policies: pending },
      },
      start_time: '1795168800',
      end_time: '1795168815',
      num_connections_started: '2',
      num_connections_live: '5',
    });
  const rec = (f: Json): FlowRecord => {
    const r = goldmaneFlowToRecord(f);
    if (r.kind !== 'flow') throw new Error(JSON.stringify(r));
    return r.flow;
  };
  const eot = (trigger: Json | undefined, action = 'Deny', policy_index = '1'): Json => ({
    kind: 'EndOfTier',
    tier: 'security',
    action,
    policy_index,
    rule_index: '-1',
    ...(trigger ? { trigger } : {}),
  });
  const isolate = { kind: 'CalicoNetworkPolicy', namespace: 'a', name: 'isolate', tier: 'security' };

  const r1 = rec(base([eot(isolate)]));
  t.equal(r1.policyDecided, true, "an end-of-tier Deny is its tier's policy deciding");
  t.same(
    r1.policies,
    [{ tier: 'security', namespace: 'a', name: 'isolate', action: 'deny', kind: 'CalicoNetworkPolicy' }],
    'named after its trigger',
  );
  t.equal(r1.unnamedPolicy, false);
  t.equal(r1.connections, 2, 'connections = num_connections_started');
  t.equal(r1.source.internet, false, 'a Network that is not "pub" is not the internet');
  t.equal(r1.destination.name, 'web');

  const r2 = rec(base([eot(undefined)]));
  t.same(
    [r2.policyDecided, r2.unnamedPolicy, r2.policies],
    [true, true, []],
    'without a trigger: decided by an unnamed policy',
  );

  const r3 = rec(
    base(
      [eot(isolate, 'Pass', '0'), { kind: 'Profile', name: 'kns.a', action: 'Allow', policy_index: '1' }],
      [],
      'Allow',
    ),
  );
  t.same(
    [r3.policyDecided, r3.policies.map((p) => p.action)],
    [false, ['pass']],
    'an end-of-tier Pass then a profile: not decided by a policy',
  );

  const r4 = rec(base([eot({ kind: 'Profile', name: 'kns.a' })]));
  t.equal(r4.policyDecided, false, 'an end-of-tier hit whose trigger is a profile is the profile');

  const staged = {
    kind: 'StagedKubernetesNetworkPolicy',
    namespace: 'a',
    name: 'lock',
    tier: 'default',
    action: 'Deny',
    policy_index: '0',
  };
  const r5 = rec(base([{ kind: 'Profile', name: 'kns.a', action: 'Allow', policy_index: '0' }], [staged], 'Allow'));
  t.same(
    [r5.policyDecided, r5.policies, r5.stagedPolicies.map((p) => p.name)],
    [false, [], ['lock']],
    'a staged deny is intent only',
  );
  const r6 = rec(
    base(
      [
        { ...staged, policy_index: '1' },
        { kind: 'Profile', name: 'kns.a', action: 'Allow', policy_index: '0' },
      ],
      [],
      'Allow',
    ),
  );
  t.same([r6.policyDecided, r6.policies], [false, []], 'a staged hit in the enforced list decides nothing either');

  const r7 = rec(
    base([{ kind: 'ClusterNetworkPolicy', name: 'baseline', tier: 'kube-admin', action: 'Deny', policy_index: '0' }]),
  );
  t.same([r7.policyDecided, r7.policies[0]?.kind], [true, 'ClusterNetworkPolicy']);
  const unknownKind = base([]);
  ((unknownKind.Key as Json).policies as Json).enforced_policies = [
    { kind: 12, name: 'future', tier: 't', action: 'Deny', policy_index: '0' },
  ];
  const r8 = rec(overTheWire(unknownKind));
  t.same(
    [r8.policyDecided, r8.policies[0]?.kind],
    [true, '12'],
    'a kind this proto does not know is kept as its number',
  );

  const r9 = rec(
    base(
      [{ kind: 'NetworkPolicy', namespace: 'a', name: 'web', tier: 'default', action: 'Allow', policy_index: '0' }],
      [],
      'Allow',
    ),
  );
  const pub = rec(overTheWire({ ...base([]), Key: { ...(base([]).Key as Json), source_name: 'pub' } }));
  t.equal(pub.source.internet, true, '"pub" is the internet');
  t.equal(r9.policyDecided, true);
  t.equal(r9.source.namespace, '', '"-" is no namespace');
});

t.test('back-pressure: onResult returning false pauses the stream until resume()', async (t) => {
  const flows = sampleFlows();
  const { server, port } = await startServer((call) => {
    for (const [i, flow] of flows.entries()) call.write({ id: String(i + 1), flow });
  });
  t.teardown(() => server.forceShutdown());
  const received: unknown[] = [];
  const source = new GoldmaneSource({
    address: `127.0.0.1:${port}`,
    log: pino({ level: 'silent' }),
    onResult: (r) => received.push(r) !== 1,
  });
  source.start();
  t.teardown(() => source.stop());
  await waitFor('the first flow', () => received.length === 1);
  // The positive marker: a second source, started after the first is paused, on the same server. The server has
  // written every flow to the paused stream before it writes any to this one; once this one has all of them,
  // they had time to reach the paused source, which must still hold only its first.
  const control: unknown[] = [];
  const other = new GoldmaneSource({
    address: `127.0.0.1:${port}`,
    log: pino({ level: 'silent' }),
    onResult: (r) => void control.push(r),
  });
  other.start();
  t.teardown(() => other.stop());
  await waitFor('every flow through an unpaused source', () => control.length === flows.length);
  t.equal(received.length, 1, 'nothing more while paused');
  source.resume();
  await waitFor('the rest', () => received.length === flows.length);
  t.pass('all flows after resume()');
});

t.test('mTLS: with TLS files the source verifies Goldmane and presents its client certificate', async (t) => {
  t.throws(
    () =>
      new GoldmaneSource({
        address: '127.0.0.1:1',
        log: pino({ level: 'silent' }),
        onResult: () => undefined,
        tls: { caFile: '/nonexistent/ca.crt' },
      }),
    /VERDICT_CONFIG_INVALID: cannot read the Goldmane TLS CA/,
  );
  t.throws(
    () =>
      new GoldmaneSource({
        address: '127.0.0.1:1',
        log: pino({ level: 'silent' }),
        onResult: () => undefined,
        tls: { caFile: '/dev/null', certFile: '/dev/null' },
      }),
    /both its certificate and its key/,
  );

  const d = tempDir(t);
  const ca = makeTestCa('test-ca');
  writeIdentity(d, 'ca', ca);
  writeIdentity(
    d,
    'server',
    ca.issue({ commonName: 'goldmane', usage: 'server', dnsNames: ['goldmane.calico-system.svc'] }),
  );
  writeIdentity(d, 'client', ca.issue({ commonName: 'verdict-agent', usage: 'client' }));
  const file = (n: string) => readFileSync(join(d, n));
  const serverCreds = grpc.ServerCredentials.createSsl(
    file('ca.crt'),
    [{ cert_chain: file('server.crt'), private_key: file('server.key') }],
    true,
  );
  const flows = sampleFlows();
  const { server, port } = await startServer(
    (call) => {
      for (const [i, flow] of flows.entries()) call.write({ id: String(i + 1), flow });
    },
    0,
    serverCreds,
  );
  t.teardown(() => server.forceShutdown());

  const received: unknown[] = [];
  const tls = {
    caFile: join(d, 'ca.crt'),
    certFile: join(d, 'client.crt'),
    keyFile: join(d, 'client.key'),
    serverName: 'goldmane.calico-system.svc',
  };
  const source = new GoldmaneSource({
    address: `127.0.0.1:${port}`,
    log: pino({ level: 'silent' }),
    onResult: (r) => void received.push(r),
    tls,
  });
  source.start();
  t.teardown(() => source.stop());
  await waitFor('the flows over mTLS', () => received.length === flows.length);
  t.pass('every flow arrives over mTLS');

  // Without a client certificate Goldmane refuses the connection: nothing arrives, the source keeps retrying.
  const { log, lines } = capturingLogger();
  const anonymous = new GoldmaneSource({
    address: `127.0.0.1:${port}`,
    log,
    onResult: () => t.fail('no flow without a client certificate'),
    tls: { caFile: tls.caFile, serverName: tls.serverName },
    minBackoffMs: 20,
    maxBackoffMs: 50,
  });
  anonymous.start();
  t.teardown(() => anonymous.stop());
  await waitFor('a refused attempt', () => anonymous.stats.failures >= 1);
  t.ok(msgs(lines, /cannot reach Goldmane|stream lost/).length >= 1, 'the failure is logged');
});

t.test(
  'Goldmane flows from the sample with fields mutated, nulled or retyped: a flow, a skip or malformed, never an exception',
  async (t) => {
    const flows = sampleFlows();
    const odd = fc.oneof(
      fc.constant(null),
      fc.integer(),
      fc.string(),
      fc.constant('\u0000'),
      fc.constant([1, 'x', null]),
      fc.constant({ toString: 1 }),
      fc.constant(JSON.parse('{"__proto__":{"x":1}}')),
      fc.double(),
      fc.constant(2 ** 64),
    );
    const paths = (o: Json, pre: string[] = []): string[][] =>
      Object.entries(o).flatMap(([k, v]) => [
        [...pre, k],
        ...(v && typeof v === 'object' && !Array.isArray(v) ? paths(v as Json, [...pre, k]) : []),
      ]);
    const kinds = new Set<string>();
    fc.assert(
      fc.property(
        fc.nat(flows.length - 1),
        fc.array(fc.tuple(fc.nat(), odd), { minLength: 1, maxLength: 3 }),
        (i, edits) => {
          const f = JSON.parse(JSON.stringify(flows[i])) as Json;
          for (const [p, v] of edits) {
            const all = paths(f);
            const path = all[p % all.length] as string[];
            let node = f;
            for (const k of path.slice(0, -1)) node = node[k] as Json;
            // A copy: generated constants are shared between runs, and a later edit must not reach into them.
            node[path[path.length - 1] as string] = JSON.parse(JSON.stringify(v)) as unknown;
          }
          const r = goldmaneFlowToRecord(f);
          kinds.add(r.kind);
          if (r.kind === 'flow' && flowRecordProblem(r.flow) === undefined && typeof r.flow.connections !== 'number')
            throw new Error('a flow without counts');
        },
      ),
      fuzzParams(300),
    );
    t.ok(kinds.has('flow') && kinds.has('malformed'), `both outcomes were generated (${[...kinds].join(', ')})`);
  },
);
