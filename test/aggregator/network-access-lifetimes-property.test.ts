import t from 'tap';
import fc from 'fast-check';
import {
  configuredEvidence,
  type ClusterPod,
  type PodVersion,
  type ClusterConfiguration,
} from '../../aggregator/network-access/index.js';
import { podPieces } from '../../aggregator/network-access/configured.js';

/**
 * Properties of judging each pod over its own lifetime (configured.ts), on arbitrary lifetimes, label versions and
 * policy versions over a small time line:
 * - the pieces of a pod's existence inside an interval are in order, disjoint, inside the interval and inside one
 *   version each, and cover exactly the part of the interval the pod existed;
 * - "ingress protected" agrees with a plain oracle: at every instant the pod existed in the interval, some policy in
 *   force then selected its labels then (everything is constant between boundaries, so the boundaries suffice);
 * - cutting a version into two with the same labels changes nothing.
 */

const RUNS = 300;

const time = fc.integer({ min: 0, max: 100 });
const span = fc.tuple(time, time).map(([a, b]) => (a <= b ? [a, b + 1] : [b, a + 1]) as [number, number]);

/** Consecutive versions (gaps allowed: a pod that was not there), each labelled app=web or app=other. */
const lifetime = fc
  .array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 1, max: 30 }), fc.boolean()), {
    minLength: 1,
    maxLength: 5,
  })
  .map((steps) => {
    const out: PodVersion[] = [];
    let at = 0;
    for (const [gap, length, web] of steps) {
      const fromMs = at + gap;
      out.push({ fromMs, toMs: fromMs + length, labels: { app: web ? 'web' : 'other' }, serviceAccount: 'default' });
      at = fromMs + length;
    }
    return out;
  });

/** Versions of Kubernetes NetworkPolicies in shop selecting app=web with an ingress rule, each in force over a span. */
const policies = fc.array(span, { maxLength: 3 }).map((spans) =>
  spans.map(([fromMs, toMs], i) => ({
    fromMs,
    toMs,
    object: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: `web-in-${i}`, namespace: 'shop' },
      spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: {} }] }] },
    },
  })),
);

const podOf = (versions: PodVersion[]): ClusterPod => ({
  namespace: 'shop',
  name: 'web-0',
  labels: versions[versions.length - 1]?.labels ?? {},
  serviceAccount: 'default',
  envoy: false,
  lifetime: versions,
});

const cfgOf = (pod: ClusterPod, pv: ClusterConfiguration['policies']): ClusterConfiguration => ({
  source: 'property',
  namespaces: [{ name: 'shop', labels: {} }],
  pods: [pod],
  policies: pv,
});

t.test('the pieces of a pod inside an interval', async (t) => {
  fc.assert(
    fc.property(lifetime, span, (versions, [from, to]) => {
      const pieces = podPieces(podOf(versions), from, to);
      let last = -Infinity;
      for (const p of pieces) {
        if (!(p.fromMs < p.toMs && p.fromMs >= last && p.fromMs >= from && p.toMs <= to)) return false;
        if (!versions.some((v) => v.fromMs <= p.fromMs && p.toMs <= v.toMs && v.labels === p.labels)) return false;
        last = p.toMs;
      }
      const covered = pieces.reduce((n, p) => n + p.toMs - p.fromMs, 0);
      const existed = versions.reduce((n, v) => n + Math.max(0, Math.min(v.toMs, to) - Math.max(v.fromMs, from)), 0);
      return covered === existed;
    }),
    { numRuns: RUNS },
  );
  t.pass('in order, disjoint, inside the interval and one version each, covering exactly its existence');
});

t.test('ingress protected agrees with the instant-by-instant oracle', async (t) => {
  fc.assert(
    fc.property(lifetime, policies, span, (versions, pv, [from, to]) => {
      const evidence = configuredEvidence(cfgOf(podOf(versions), pv), from, to);
      const e = evidence.endpoints.get('shop/web');
      const instants = new Set<number>([from]);
      for (const x of [...versions, ...pv]) for (const b of [x.fromMs, x.toMs]) if (b > from && b < to) instants.add(b);
      const existed = [...instants].flatMap((at) => {
        const v = versions.find((w) => w.fromMs <= at && at < w.toMs);
        return v ? [{ at, v }] : [];
      });
      if (existed.length === 0) return e === undefined;
      const oracle = existed.every(
        ({ at, v }) => v.labels['app'] === 'web' && pv.some((p) => p.fromMs <= at && at < p.toMs),
      );
      return e !== undefined && e.ingressProtected === oracle && e.pods === 1;
    }),
    { numRuns: RUNS },
  );
  t.pass('protected exactly when, at every instant it existed, a policy in force selected its labels then');
});

t.test('a version cut in two with the same labels changes nothing', async (t) => {
  fc.assert(
    fc.property(lifetime, policies, span, fc.nat(), (versions, pv, [from, to], pick) => {
      const i = pick % versions.length;
      const v = versions[i] as PodVersion;
      const mid = v.fromMs + ((pick >> 3) % (v.toMs - v.fromMs));
      if (mid === v.fromMs) return true;
      const cut = [...versions.slice(0, i), { ...v, toMs: mid }, { ...v, fromMs: mid }, ...versions.slice(i + 1)];
      const a = configuredEvidence(cfgOf(podOf(versions), pv), from, to).endpoints.get('shop/web');
      const b = configuredEvidence(cfgOf(podOf(cut), pv), from, to).endpoints.get('shop/web');
      return JSON.stringify(a) === JSON.stringify(b);
    }),
    { numRuns: RUNS },
  );
  t.pass('same evidence');
});
