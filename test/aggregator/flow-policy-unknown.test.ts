import t, { type Test } from 'tap';
import { InternalNetworks } from '../../agent/flows/normalize.js';
import { HubbleParser } from '../../agent/flows/sources/hubble.js';
import type { ClusterConfiguration } from '../../aggregator/network-access/index.js';
import type { FlowRecord } from '../../common/flow.js';
import { flowToWire } from '../../proto/convert.js';
import { HELLO, rawAgentStream, startTestAggregator } from '../fixtures/aggregator.js';
import { testPostgres } from '../fixtures/postgres.js';

/**
 * FlowRecord.policyUnknown and FlowEndpoint.reserved through the store, from real gRPC ingest to the flow API and
 * network access, on both stores. A Hubble connection seen only through a trace event (event_type 4: no policy
 * verdict, no *_allowed_by) says nothing about policy: read back, it must not look "allowed, decided by no policy",
 * and where the configuration says the endpoint is protected it is no finding. The records come from the agent's own
 * Hubble parser, on lines made here from the fields Hubble's Flow carries (cilium/cilium api/v1/flow/flow.proto).
 */

const TIME = '2026-11-01T10:00:01Z';
const T = Date.parse(TIME);

/** One Hubble Flow line: a TCP connection into default/deployment on 8080, observed at the destination (ingress). */
function hubbleLine(source: Record<string, unknown>, sourceIp: string, event: Record<string, unknown>): string {
  return JSON.stringify({
    flow: {
      time: TIME,
      verdict: 'FORWARDED',
      IP: { source: sourceIp, destination: '10.8.15.253', ipVersion: 'IPv4' },
      l4: { TCP: { source_port: 43006, destination_port: 8080, flags: { SYN: true } } },
      source,
      destination: {
        identity: 107099,
        namespace: 'default',
        labels: ['k8s:app=deployment', 'k8s:io.kubernetes.pod.namespace=default'],
        pod_name: 'deployment-85c67465d6-tfgcp',
      },
      node_name: 'dev/worker-1',
      traffic_direction: 'INGRESS',
      is_reply: false,
      ...event,
    },
    node_name: 'dev/worker-1',
    time: TIME,
  });
}

const cronjob = {
  identity: 124484,
  namespace: 'default',
  labels: ['k8s:app=cronjob', 'k8s:io.kubernetes.pod.namespace=default'],
  pod_name: 'cronjob-1623329400-8mg2z',
};

/** The records the agent sends for: a trace-only connection from a pod, and one from the internet the CNP allowed. */
function hubbleRecords(t: Test): FlowRecord[] {
  const p = new HubbleParser(new InternalNetworks());
  // A trace event (event_type 4) and nothing else for this connection: held, then sent when the window closes.
  t.equal(p.line(hubbleLine(cronjob, '10.8.14.163', { event_type: { type: 4, sub_type: 3 } })).kind, 'skip');
  // A policy-verdict event (event_type 5) naming the policy that allowed the internet in.
  const world = p.line(
    hubbleLine({ identity: 2, labels: ['reserved:world'] }, '203.0.113.7', {
      event_type: { type: 5 },
      policy_match_type: 1,
      ingress_allowed_by: [{ name: 'deployment-ingress', namespace: 'default', kind: 'CiliumNetworkPolicy' }],
    }),
  );
  if (world.kind !== 'flow') throw new Error(`the verdict event gave ${world.kind}`);
  return [...p.flush(), world.flow];
}

/** default/deployment selected by a CNP with ingress rules all the time: configured ingress protected. */
const configuration: ClusterConfiguration = {
  source: 'test',
  namespaces: [{ name: 'default', labels: {} }],
  pods: [
    {
      namespace: 'default',
      name: 'deployment-85c67465d6-tfgcp',
      labels: { app: 'deployment' },
      serviceAccount: 'default',
      envoy: false,
    },
  ],
  policies: [
    {
      fromMs: -Infinity,
      toMs: Infinity,
      object: {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNetworkPolicy',
        metadata: { name: 'deployment-ingress', namespace: 'default' },
        spec: {
          endpointSelector: { matchLabels: { 'k8s:app': 'deployment' } },
          ingress: [{ fromEntities: ['world'] }, { fromEndpoints: [{}] }],
        },
      },
    },
  ],
};

interface FlowsReply {
  items: (Omit<FlowRecord, 'startMs' | 'endMs'> & { node: string })[];
}
interface NetworkAccessReply {
  endpoints: {
    endpoint: string;
    ingressProtected: boolean;
    allowedIn: number;
    observed: {
      ingressProtected: boolean | null;
      unprotectedAllowedIn: number;
      unknownAllowedIn: number;
    } | null;
    findings: { kind: string; connections: number; detail: string }[];
  }[];
}

async function cases(t: Test, db: string | undefined): Promise<void> {
  const agg = await startTestAggregator(t, db ? { db } : {});
  agg.networkAccess.source = { configuration: async () => configuration };
  const s = rawAgentStream(agg.grpcPort);
  t.teardown(() => s.close());
  const records = hubbleRecords(t);
  const [trace, world] = records;
  t.match(trace, { policyUnknown: true, policyDecided: false, policies: [], connections: 1 }, 'the parser: unknown');
  t.match(world, { source: { kind: 'network', reserved: 'world', internet: true }, policyDecided: true });
  t.notOk('policyUnknown' in world!, 'a verdict event knows');
  const batch = (seq: number, rs: FlowRecord[]) => ({
    flowBatch: {
      seq,
      windowStartUnixMs: T,
      windowEndUnixMs: T + 15_000,
      records: rs.map(flowToWire),
      sources: [{ source: 'hubble:/x', malformed: 0, lost: 0 }],
      droppedRecords: 0,
    },
  });
  s.send(HELLO('worker-1'));
  s.send(batch(1, records));
  await s.waitFor(2);
  t.same(s.received[1], { kind: 'ack', ack: { seq: 1, duplicate: false } });

  const interval = { fromMs: T - 3_600_000, toMs: T + 3_600_000 };
  const byPeer = (fs: FlowRecord[]) => new Map(fs.map((f) => [f.source.name, f]));
  const totals = byPeer(await agg.store.flowTotals(interval));
  t.strictSame(totals.get(trace!.source.name), trace, 'the trace-only connection reads back with policyUnknown');
  t.strictSame(totals.get('world'), world, 'the internet peer reads back with its reserved identity');
  t.strictSame(
    byPeer((await agg.store.flowRows(interval)).map((r) => r.flow)),
    totals,
    'bucket rows read back the same',
  );
  const api = async <R>(path: string): Promise<R> => {
    const res = await fetch(
      `http://127.0.0.1:${agg.httpPort}${path}?from=${new Date(interval.fromMs).toISOString()}&to=${new Date(interval.toMs).toISOString()}`,
    );
    t.equal(res.status, 200, path);
    return (await res.json()) as R;
  };
  const items = (await api<FlowsReply>('/api/v1/flows')).items;
  t.same(
    items.map((i) => [i.source.name, i.source.reserved, i.policyUnknown, i.policyDecided]).sort(),
    [
      ['cronjob-1623329400', undefined, true, false],
      ['world', 'world', undefined, true],
    ],
    'the flow API carries both fields, each only when set',
  );

  const endpoint = async () =>
    (await api<NetworkAccessReply>('/api/v1/network-access')).endpoints.find(
      (e) => e.endpoint === 'default/deployment',
    );
  const before = await endpoint();
  t.same(
    before && [before.ingressProtected, before.allowedIn, before.findings],
    [true, 2, []],
    'protected, both connections counted, and the trace-only one is no "decided by no policy" finding',
  );
  t.match(
    before?.observed,
    { ingressProtected: true, unprotectedAllowedIn: 0, unknownAllowedIn: 1 },
    'observed: the trace-only connection is unknown, counted apart; the verdict says protected',
  );

  // The same connection decided by no policy (a verdict event without a match): another flow, never merged with the
  // unknown one, and a finding that also names the unknown connection.
  const { policyUnknown, ...decidedByNone } = trace!;
  void policyUnknown;
  s.send(batch(2, [{ ...decidedByNone, connections: 2 }]));
  await s.waitFor(3);
  const after = (await agg.store.flowTotals(interval)).filter((f) => f.source.name === trace!.source.name);
  t.same(
    after.map((f) => [f.policyUnknown, f.connections]).sort((a, b) => Number(a[1]) - Number(b[1])),
    [
      [true, 1],
      [undefined, 2],
    ],
    'two keys: unknown and decided by no policy',
  );
  const findings = (await endpoint())?.findings ?? [];
  t.same(
    findings.map((f) => [f.kind, f.connections]),
    [['protected-but-unprotected-traffic', 2]],
    'only the connections decided by no policy are the finding',
  );
  t.match(
    findings[0]?.detail,
    /2 allowed connection\(s\) were decided by no policy.*; 1 more allowed connection\(s\) were seen by trace events only/,
  );
}

t.test('SQLite: policyUnknown and reserved through gRPC ingest, the store, the flow API and network access', (t) =>
  cases(t, undefined),
);

t.test(
  'PostgreSQL: policyUnknown and reserved through gRPC ingest, the store, the flow API and network access',
  async (t) => {
    const server = await testPostgres(t);
    await cases(t, await server.freshSchema());
  },
);
