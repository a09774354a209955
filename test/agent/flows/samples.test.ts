import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { InternalNetworks, workloadFromPodName } from '../../../agent/flows/normalize.js';
import { parseCalicoLine, parseHit } from '../../../agent/flows/sources/calico.js';
import { HubbleParser } from '../../../agent/flows/sources/hubble.js';
import { networkAccess } from '../../../aggregator/compute/network-access.js';
import { packageRoot } from '../../../common/package-root.js';
import type { FlowRecord } from '../../../common/flow.js';

// The bundled samples and the summaries examples/flows/EXPECTED.md derives from
// them by hand (rules R1-R8 there). EXPECTED.md keys Calico endpoints by
// name_aggr ("shop/frontend-7d9f8b6c5d-*") and host endpoints as "-/node";
// Verdict keys them by workload ("shop/frontend") and bare host name.
const dir = join(packageRoot(), 'examples', 'flows');

function expectedBlocks(): Record<string, Record<string, unknown>>[] {
  const md = readFileSync(join(dir, 'EXPECTED.md'), 'utf8');
  return [...md.matchAll(/```json\n([\s\S]*?)```/g)].map(
    (m) => JSON.parse(m[1] as string) as Record<string, Record<string, unknown>>,
  );
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

function check(t: Test, flows: FlowRecord[], expected: Record<string, Record<string, unknown>>) {
  const got = networkAccess(flows).endpoints;
  t.same(got.map((e) => e.endpoint).sort(), Object.keys(expected).map(verdictKey).sort(), 'the same endpoints');
  for (const [key, want] of Object.entries(expected)) {
    const e = got.find((g) => g.endpoint === verdictKey(key));
    const picked = Object.fromEntries(FIELDS.map((f) => [f, e?.[f]]));
    t.same(picked, Object.fromEntries(FIELDS.map((f) => [f, want[f]])), key);
  }
}

t.test('the Calico sample gives exactly the hand-derived network-access summary', async (t) => {
  const internal = new InternalNetworks();
  const flows = readFileSync(join(dir, 'calico', 'flows.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => parseCalicoLine(l, internal));
  t.ok(
    flows.every((r) => r.kind === 'flow'),
    'every sample line parses',
  );
  check(
    t,
    flows.flatMap((r) => (r.kind === 'flow' ? [r.flow] : [])),
    expectedBlocks()[0] as Record<string, Record<string, unknown>>,
  );
});

t.test(
  'the Hubble sample gives exactly the hand-derived summary: replies and non-policy drops do not count',
  async (t) => {
    const parser = new HubbleParser(new InternalNetworks());
    const results = readFileSync(join(dir, 'hubble', 'flows.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => parser.line(l));
    t.equal(results.filter((r) => r.kind === 'skip' && r.why === 'reply').length, 6);
    t.equal(results.filter((r) => r.kind === 'malformed').length, 0);
    // Connections whose first event is a trace are held for their verdict; the window's close hands over the rest.
    check(
      t,
      [...results.flatMap((r) => (r.kind === 'flow' ? [r.flow] : [])), ...parser.flush()],
      expectedBlocks()[1] as Record<string, Record<string, unknown>>,
    );
  },
);

t.test('Calico policy hits in every name form', async (t) => {
  const cases: [
    string,
    Partial<{ tier: string; namespace: string; name: string; kind: string; action: string }>,
    { staged: boolean; profile: boolean },
  ][] = [
    [
      '0|default|shop/knp.default.allow-web|allow|2',
      { tier: 'default', namespace: 'shop', name: 'allow-web', kind: 'NetworkPolicy' },
      { staged: false, profile: false },
    ],
    [
      '1|security|security.allow-dns|allow',
      { tier: 'security', namespace: '', name: 'allow-dns', kind: 'GlobalNetworkPolicy' },
      { staged: false, profile: false },
    ],
    [
      '0|security|payments/security.isolate|deny|-1',
      { tier: 'security', namespace: 'payments', name: 'isolate', kind: 'CalicoNetworkPolicy', action: 'deny' },
      { staged: false, profile: false },
    ],
    ['2|__PROFILE__|__PROFILE__.kns.shop|allow|0', { tier: '__PROFILE__' }, { staged: false, profile: true }],
    [
      '0|default|shop/staged:knp.default.restrict|deny|0',
      { namespace: 'shop', name: 'restrict', kind: 'StagedKubernetesNetworkPolicy' },
      { staged: true, profile: false },
    ],
    [
      '0|tier1|tier1.staged:lockdown|deny|0',
      { tier: 'tier1', name: 'lockdown', kind: 'StagedGlobalNetworkPolicy' },
      { staged: true, profile: false },
    ],
    [
      '0|tier1|ns1/tier1.staged:p1|pass|3',
      { tier: 'tier1', namespace: 'ns1', name: 'p1', kind: 'StagedNetworkPolicy' },
      { staged: true, profile: false },
    ],
    [
      '0|default|knp:shop/allow-web|allow|2',
      { namespace: 'shop', name: 'allow-web', kind: 'NetworkPolicy' },
      { staged: false, profile: false },
    ],
    ['1|default|pro:kns.default|allow|0', {}, { staged: false, profile: true }],
    ['0|default|sknp:shop/restrict|deny|0', { namespace: 'shop', name: 'restrict' }, { staged: true, profile: false }],
  ];
  for (const [hit, policy, flags] of cases) {
    const h = parseHit(hit);
    t.ok(h, hit);
    t.match(h?.policy, policy, hit);
    t.same({ staged: h?.staged, profile: h?.profile }, flags, hit);
  }
  for (const bad of ['', 'x|y', 'a|tier|name|allow', '0||name|allow'])
    t.equal(parseHit(bad), undefined, `"${bad}" is refused`);
});

t.test('a profile at the end of the tiers means no policy decided, even after a policy passed', async (t) => {
  const line = (policies: unknown) =>
    JSON.stringify({
      start_time: 1795168800,
      end_time: 1795169100,
      source_type: 'wep',
      source_namespace: 'a',
      source_name_aggr: 'x-*',
      dest_type: 'wep',
      dest_namespace: 'a',
      dest_name_aggr: 'y-*',
      proto: 'tcp',
      dest_port: 80,
      action: 'allow',
      reporter: 'dst',
      num_flows: 1,
      policies,
    });
  const internal = new InternalNetworks();
  const decided = (p: unknown) => {
    const r = parseCalicoLine(line(p), internal);
    return r.kind === 'flow' ? r.flow.policyDecided : undefined;
  };
  t.equal(
    decided({ enforced_policies: ['0|security|security.base|pass|0', '1|__PROFILE__|__PROFILE__.kns.a|allow|0'] }),
    false,
  );
  t.equal(
    decided({ enforced_policies: ['0|security|security.base|pass|0', '1|default|a/knp.default.web|allow|0'] }),
    true,
  );
  t.equal(
    decided({
      enforced_policies: ['1|__PROFILE__|__PROFILE__.kns.a|allow|0'],
      pending_policies: ['0|default|a/staged:knp.default.lock|deny|0'],
    }),
    false,
    'a staged deny decides nothing',
  );
  t.equal(
    decided({ all_policies: ['0|default|a/knp.default.web|allow'] }),
    true,
    'old records: all_policies with 4-field hits',
  );
  t.equal(decided(null), false);
});

t.test('malformed Calico and Hubble lines are reported as malformed, with the reason', async (t) => {
  const internal = new InternalNetworks();
  for (const [line, reason] of [
    ['{not json', /not JSON/],
    ['[1,2]', /not a JSON object/],
    ['{"action":"maybe"}', /action/],
    ['{"action":"allow","reporter":"src","start_time":5,"end_time":1}', /start_time/],
    [
      '{"action":"allow","reporter":"src","start_time":1,"end_time":2,"num_flows":1,"proto":"tcp","source_type":"pod"}',
      /source_type/,
    ],
    [
      '{"action":"allow","reporter":"src","start_time":1,"end_time":2,"num_flows":1,"proto":"tcp","source_type":"wep","source_name_aggr":"a-*","dest_type":"net","dest_name_aggr":"pub","policies":{"enforced_policies":["garbage"]}}',
      /policies/,
    ],
  ] as const) {
    const r = parseCalicoLine(line, internal);
    t.equal(r.kind, 'malformed', line);
    if (r.kind === 'malformed') t.match(r.reason, reason, line);
  }
  const hubble = new HubbleParser(internal);
  t.equal(hubble.line('{"flow":{"verdict":"MAYBE"}}').kind, 'malformed');
  t.equal(hubble.line('nope').kind, 'malformed');
  t.same(hubble.line('{"lost_events":{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":"7"}}'), {
    kind: 'lost',
    count: 7,
  });
  t.equal(hubble.line('{"node_status":{}}').kind, 'skip');
});

t.test('internal CIDRs narrow what counts as internet', async (t) => {
  const internal = new InternalNetworks(['203.0.113.0/24']);
  const line = (ip: string) =>
    JSON.stringify({
      start_time: 1,
      end_time: 2,
      source_type: 'net',
      source_namespace: '-',
      source_name_aggr: 'pub',
      source_ip: ip,
      dest_type: 'wep',
      dest_namespace: 'a',
      dest_name_aggr: 'web-*',
      proto: 'tcp',
      dest_port: 443,
      action: 'allow',
      reporter: 'dst',
      num_flows: 1,
    });
  const r1 = parseCalicoLine(line('203.0.113.9'), internal);
  const r2 = parseCalicoLine(line('198.51.100.7'), internal);
  t.equal(r1.kind === 'flow' && r1.flow.source.internet, false);
  t.equal(r2.kind === 'flow' && r2.flow.source.internet, true);
  t.throws(() => new InternalNetworks(['10.0.0.0']), /not a CIDR/);
});

t.test('workload names from pod names and Calico aggregates', async (t) => {
  for (const [pod, workload] of [
    ['checkout-7d9f8b6c5d-x2k8p', 'checkout'],
    ['checkout-7d9f8b6c5d-*', 'checkout'],
    ['fluentd-8xk2m', 'fluentd'],
    ['web-0', 'web'],
    ['prometheus-k8s-*', 'prometheus-k8s'],
    ['coredns-5d78c9869d-*', 'coredns'],
    ['standalone', 'standalone'],
  ])
    t.equal(workloadFromPodName(pod), workload, pod);
});
