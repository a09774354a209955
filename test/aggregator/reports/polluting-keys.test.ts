import t, { type Test } from 'tap';
import {
  isValid,
  parseReportsYaml,
  toDefinition,
  type InvalidReport,
  type ReportDefinition,
} from '../../../aggregator/reports/globalreport.js';
import { labelSelectorMatches } from '../../../aggregator/reports/types/inventory.js';
import { isPolicyChange, jsonDiff, policyChanges } from '../../../aggregator/reports/types/policy-audit.js';
import type { StoredAuditEvent } from '../../../aggregator/store/index.js';

/*
 * GlobalReports (files and the Kubernetes API), audit events and cluster
 * objects are untrusted documents: `__proto__`, `constructor` and `prototype`
 * keys are keys like any other, never a way into Object.prototype or into a
 * lookup that answers from it.
 */

const POLLUTING_KEYS = ['__proto__', 'constructor', 'prototype'] as const;
const prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort();

function assertPrototypeUntouched(t: Test): void {
  t.same(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeNames, 'Object.prototype has no new properties');
  t.equal(({} as Record<string, unknown>).suspend, undefined, '({}).suspend is still undefined');
}

const REPORT = `apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata:
  name: weekly-cis
spec:
  reportType: cis-benchmark
  schedule: "0 0 * * 0"
  cis:
    highThreshold: 90
`;

/** A definition as plain data, for comparing (the origin aside). */
const plain = (items: (ReportDefinition | InvalidReport)[]) => JSON.parse(JSON.stringify(items)) as unknown;

for (const key of POLLUTING_KEYS) {
  t.test(`a "${key}" key where GlobalReport allows unknown fields changes nothing (YAML)`, async (t) => {
    const block = `${key}:\n  suspend: true\n  spec: {reportType: inventory}\n`;
    const top = parseReportsYaml(block + REPORT, 'r.yaml');
    const inMetadata = parseReportsYaml(
      REPORT.replace('metadata:\n', `metadata:\n${block.replace(/^(?=.)/gm, '  ')}`),
      'r.yaml',
    );
    const clean = parseReportsYaml(REPORT, 'r.yaml');
    t.ok(isValid(clean[0] as ReportDefinition));
    t.same(plain(top), plain(clean), 'top level');
    t.same(plain(inMetadata), plain(clean), 'in metadata');
    t.equal((top[0] as ReportDefinition).suspend, false);
    assertPrototypeUntouched(t);
  });

  t.test(`a "${key}" key in a GlobalReport from the Kubernetes API (JSON) changes nothing`, async (t) => {
    const clean = {
      apiVersion: 'compliance.verdict.dev/v1',
      kind: 'GlobalReport',
      metadata: { name: 'r' },
      spec: { reportType: 'cis-benchmark' },
    };
    const json = JSON.stringify(clean).slice(0, -1) + `,${JSON.stringify(key)}:{"suspend":true}}`;
    const def = toDefinition(JSON.parse(json), 'cluster');
    t.same(plain([def]), plain([toDefinition(clean, 'cluster')]));
    assertPrototypeUntouched(t);
  });

  t.test(`a "${key}" key in a GlobalReport spec is an unknown field, named in the reason`, async (t) => {
    const [r] = parseReportsYaml(REPORT.replace('spec:\n', `spec:\n  ${key}: {suspend: true}\n`), 'r.yaml');
    t.notOk(isValid(r as ReportDefinition));
    t.match((r as InvalidReport).error, new RegExp(`VERDICT_REPORT_INVALID: spec.*${key}`));
    assertPrototypeUntouched(t);
  });

  t.test(`an audit event for API group "${key}" is not a policy change (and does not throw)`, async (t) => {
    const event: StoredAuditEvent = {
      auditId: 'a1',
      stageMs: 0,
      verb: 'create',
      resource: 'networkpolicies',
      apiGroup: key,
      namespace: 'ns',
      name: 'p',
      username: 'u',
      event: {},
    };
    t.equal(isPolicyChange(event), false);
    t.same(policyChanges([event, { ...event, verb: 'observe' }]), []);
  });

  t.test(`a policy diff of a "${key}" key present on one side only has nothing before it`, async (t) => {
    const after = JSON.parse(`{"podSelector":{},${JSON.stringify(key)}:{"x":1}}`) as unknown;
    t.same(jsonDiff({ podSelector: {} }, after, 'spec'), [{ path: `spec.${key}`, before: undefined, after: { x: 1 } }]);
  });
}

t.test('a YAML alias bomb is an invalid GlobalReport with a reason, not an exception', async (t) => {
  const bomb = `a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
kind: GlobalReport
`;
  const out = parseReportsYaml(`${REPORT}---\n${bomb}`, 'r.yaml');
  t.equal(out.length, 2);
  t.same(
    plain([out[0] as ReportDefinition]),
    plain(parseReportsYaml(REPORT, 'r.yaml')),
    'the good document next to it is unchanged',
  );
  t.match((out[1] as InvalidReport).error, /VERDICT_REPORT_INVALID: not YAML: .*alias/i);
});

t.test("a label selector matches a pod's own labels only, whatever Object.prototype says", async (t) => {
  const proto = Object.prototype as Record<string, unknown>;
  let matched: boolean;
  try {
    proto.app = 'web';
    matched = labelSelectorMatches({ matchLabels: { app: 'web' } }, {});
  } finally {
    delete proto.app;
  }
  t.equal(matched, false);
});
