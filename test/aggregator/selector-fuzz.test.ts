import fc from 'fast-check';
import t from 'tap';
import { configuredEvidence, type ClusterConfiguration } from '../../aggregator/network-access/index.js';
import { parseSelector, SelectorError, type Selector } from '../../aggregator/reports/selector.js';
import { fuzzParams } from '../fixtures/fuzz.js';

/**
 * Calico selectors from arbitrary text (issue 15). The grammar is Calico's ("Selectors" in the Calico NetworkPolicy
 * reference: ==, !=, has(), !, in {}, not in {}, contains, starts with, ends with, all(), global(), &&, ||,
 * parentheses), as aggregator/reports/selector.ts documents it. Properties:
 * - the parser returns a selector or throws a SelectorError naming a column and a reason, nothing else, whatever the
 *   text;
 * - what it accepts prints in a normal form that parses back to the same selector, matching the same labels;
 * - a policy with a selector that does not parse is counted in configured evidence's problems with that reason and
 *   treated as absent (Calico's API server refuses such a policy, so it is never in force), and the computation goes
 *   on: never an exception out of the process.
 */

const RUNS = fuzzParams(300);

/** Pieces of Calico's selector grammar, shuffled into near-misses as well as valid selectors. */
const TOKENS = [
  'app',
  'role',
  'projectcalico.org/name',
  'k8s-app',
  'a_b.c/d-e',
  '==',
  '!=',
  '!',
  '&&',
  '||',
  '(',
  ')',
  '{',
  '}',
  ',',
  'in',
  'not in',
  'notin',
  'contains',
  'starts with',
  'startswith',
  'ends with',
  'has(',
  'has(app)',
  'all()',
  'global()',
  "'web'",
  '"db"',
  "'it''s'",
  "'unterminated",
  '=',
  '&',
  '|',
  '\n',
  '\t',
  ' ',
  '\u00e9',
  '\u{1F600}',
];

const selectorText = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.array(fc.constantFrom(...TOKENS), { maxLength: 14 }).map((ts) => ts.join(' ')),
  fc.array(fc.constantFrom(...TOKENS), { maxLength: 14 }).map((ts) => ts.join('')),
);

const labelSets = fc.array(
  fc.dictionary(fc.constantFrom('app', 'role', 'projectcalico.org/name', 'k8s-app'), fc.constantFrom('web', 'db', '')),
  { minLength: 1, maxLength: 4 },
);

function tryParse(text: string): Selector | SelectorError {
  try {
    return parseSelector(text);
  } catch (err) {
    if (err instanceof SelectorError) return err;
    throw err;
  }
}

t.test('the parser returns a selector or a SelectorError with a column and a reason, whatever the text', async (t) => {
  fc.assert(
    fc.property(selectorText, (text) => {
      const r = tryParse(text);
      if (r instanceof SelectorError) {
        return (
          r.code === 'VERDICT_SELECTOR_INVALID' && r.position >= 0 && r.position <= text.length && r.reason.length > 0
        );
      }
      return typeof r.toString() === 'string';
    }),
    RUNS,
  );
  t.pass('no other exception escaped');
});

t.test('an accepted selector prints in a normal form that parses back to the same meaning', async (t) => {
  fc.assert(
    fc.property(selectorText, labelSets, (text, labels) => {
      const r = tryParse(text);
      if (r instanceof SelectorError) return true;
      const again = parseSelector(r.toString());
      return again.toString() === r.toString() && labels.every((l) => again.matches(l) === r.matches(l));
    }),
    RUNS,
  );
  t.pass();
});

t.test(
  'a policy whose selector does not parse is a counted problem, treated as absent; the rest goes on',
  async (t) => {
    fc.assert(
      fc.property(selectorText, fc.constantFrom('selector', 'source', 'namespaceSelector'), (text, where) => {
        const spec: Record<string, unknown> = { selector: "app == 'web'", types: ['Ingress'], ingress: [] };
        if (where === 'selector') spec['selector'] = text;
        else if (where === 'source') spec['ingress'] = [{ action: 'Allow', source: { selector: text } }];
        else spec['namespaceSelector'] = text;
        const cfg: ClusterConfiguration = {
          source: 'fuzz',
          namespaces: [{ name: 'shop', labels: {} }],
          pods: [{ namespace: 'shop', name: 'web-0', labels: { app: 'web' }, serviceAccount: 'default', envoy: false }],
          policies: [
            {
              fromMs: -Infinity,
              toMs: Infinity,
              object: {
                apiVersion: 'projectcalico.org/v3',
                kind: 'GlobalNetworkPolicy',
                metadata: { name: 'fuzzed' },
                spec,
              },
            },
          ],
        };
        const ev = configuredEvidence(cfg, 0, 3_600_000);
        const web = ev.endpoints.get('shop/web');
        const bad = tryParse(text);
        if (bad instanceof SelectorError)
          return (
            ev.problems.length === 1 &&
            ev.problems[0] === `GlobalNetworkPolicy fuzzed: ${bad.detail}` &&
            web !== undefined &&
            web.appliedPolicies.length === 0 &&
            !web.ingressProtected
          );
        return ev.problems.length === 0 && web !== undefined;
      }),
      RUNS,
    );
    t.pass();
  },
);

t.test('the Calico selector operators the docs list are all accepted, and global() is no namespace', async (t) => {
  // Calico NetworkPolicy reference, "Selectors" table: each expression form, on one label set.
  const labels = { app: 'web', tier: 'frontend-blue', env: 'prod' };
  const cases: [string, boolean][] = [
    ["app == 'web'", true],
    ["app != 'web'", false],
    ['has(app)', true],
    ['!has(app)', false],
    ["app in {'web', 'db'}", true],
    ["app not in {'web', 'db'}", false],
    ["tier contains 'blue'", true],
    ["tier starts with 'front'", true],
    ["tier ends with 'green'", false],
    ['all()', true],
    ["env == 'prod' && (app == 'db' || !has(missing))", true],
  ];
  for (const [text, expected] of cases) t.equal(parseSelector(text).matches(labels), expected, text);
  // global() parses anywhere; in a rule's namespaceSelector it selects non-namespaced resources only (tested in
  // network-access-rules.test.ts: a NetworkPolicy allowing `namespaceSelector: global()` admits no namespace).
  t.equal(parseSelector('global()').usesGlobal, true);
});
