import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import {
  isValid,
  parseReportsYaml,
  toDefinition,
  type InvalidReport,
  type ReportDefinition,
} from '../../../aggregator/reports/globalreport.js';
import { ReportRegistry } from '../../../aggregator/reports/registry.js';
import { packageRoot } from '../../../common/package-root.js';
import {
  asPollutingNames,
  dataOf,
  documentText,
  encoding,
  FUZZ_RUNS,
  hostileYaml,
  mutate,
  mutation,
  prototypeSnapshot,
  withInnocentKeys,
  type Data,
} from '../../fixtures/documents.js';
import { tempDir } from '../../fixtures/tmp.js';
import { fuzzParams } from '../../fixtures/fuzz.js';

/*
 * Property-based fuzzing of GlobalReport parsing, from files (YAML streams)
 * and from the Kubernetes API (JSON). Definitions start as the bundled
 * examples and are mutated, nulled, retyped, given `__proto__` /
 * `constructor` / `prototype` keys at any depth and hostile YAML next to them.
 * Whatever the input:
 *   - nothing throws: each document is a definition or VERDICT_REPORT_INVALID with a reason;
 *   - Object.prototype and Array.prototype are untouched;
 *   - a polluting key is treated exactly like any other unknown key;
 *   - a good definition next to bad ones (in one file or in other files) is what it is alone.
 */

const snapshot = prototypeSnapshot();
const examplesDir = join(packageRoot(), 'examples', 'reports');
const EXAMPLES: Data[] = readdirSync(examplesDir)
  .sort()
  .map((f) => dataOf(parseYaml(readFileSync(join(examplesDir, f), 'utf8'))));
const KEYS = [
  'apiVersion',
  'kind',
  'metadata',
  'name',
  'spec',
  'status',
  'reportType',
  'schedule',
  'suspend',
  'endpoints',
  'selector',
  'namespaces',
  'names',
  'serviceAccounts',
  'jobNodeSelector',
  'cis',
  'highThreshold',
  'medThreshold',
  'includeUnscoredTests',
  'numFailedTests',
  'resultsFilters',
  'benchmarkSelection',
  'kubernetesVersion',
  'include',
  'exclude',
];

const GOOD_NAME = 'the-good-one';
const GOOD = `apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata:
  name: ${GOOD_NAME}
spec:
  reportType: cis-benchmark
  schedule: "0 0 * * 0"
  endpoints:
    selector: app == 'web'
  cis:
    resultsFilters:
      - benchmarkSelection: {kubernetesVersion: "1.32"}
        exclude: ["1.1.12"]
`;
const plain = (v: unknown) => JSON.stringify(v);
const goodAlone = plain(parseReportsYaml(GOOD, 'r.yaml'));

const badDocument = fc.record({
  base: fc.constantFrom(...EXAMPLES),
  mutations: fc.array(mutation(KEYS), { maxLength: 5 }),
  how: encoding,
  hostile: hostileYaml,
});
type BadDocument = { base: Data; mutations: Parameters<typeof mutate>[1]; how: 'yaml' | 'json'; hostile: string };
const textOf = (d: BadDocument) => documentText(mutate(d.base, d.mutations), d.how, d.how === 'yaml' ? d.hostile : '');

function wellFormed(items: (ReportDefinition | InvalidReport)[]): boolean {
  return items.every((i) =>
    isValid(i)
      ? typeof i.name === 'string' && i.name.length > 0
      : /^VERDICT_REPORT_INVALID: \S/.test(i.error) && typeof i.name === 'string',
  );
}

t.test(
  'a YAML stream of good and bad GlobalReports: no exception, every bad one has a reason, the good one is what it is alone',
  async (t) => {
    let invalid = 0;
    fc.assert(
      fc.property(fc.array(badDocument, { maxLength: 3 }), fc.nat(), (bad, at) => {
        const texts = bad.map(textOf);
        texts.splice(at % (texts.length + 1), 0, GOOD);
        const items = parseReportsYaml(texts.map((x) => `---\n${x}\n`).join(''), 'r.yaml');
        if (prototypeSnapshot() !== snapshot) return false;
        if (!wellFormed(items)) return false;
        invalid += items.filter((i) => !isValid(i)).length;
        const good = items.filter((i) => i.name === GOOD_NAME);
        return good.length === 1 && plain(good) === goodAlone;
      }),
      FUZZ_RUNS,
    );
    t.ok(invalid > 50, `${invalid} documents were invalid, each with a reason`);
    t.equal(prototypeSnapshot(), snapshot);
  },
);

t.test('a polluting key in a GlobalReport (YAML or Kubernetes JSON) is an unknown key like any other', async (t) => {
  const yamlResult = (doc: Data, how: 'yaml' | 'json', hostile: string) =>
    plain(parseReportsYaml(documentText(doc, how, how === 'yaml' ? hostile : ''), 'r.yaml'));
  const apiResult = (doc: Data) => plain(toDefinition(JSON.parse(JSON.stringify(doc)), 'cluster'));
  fc.assert(
    fc.property(badDocument, ({ base, mutations, how, hostile }) => {
      const doc = mutate(base, mutations);
      const innocent = withInnocentKeys(doc);
      const fromFile = yamlResult(doc, how, hostile);
      const fromApi = apiResult(doc);
      if (prototypeSnapshot() !== snapshot) return false;
      return (
        fromFile === asPollutingNames(yamlResult(innocent, how, hostile)) &&
        fromApi === asPollutingNames(apiResult(innocent))
      );
    }),
    FUZZ_RUNS,
  );
  t.equal(prototypeSnapshot(), snapshot);
});

t.test('the --reports directory: bad files next to a good one leave the good definition as it is alone', async (t) => {
  const dir = tempDir(t);
  const registry = (files: string[]) => {
    for (const f of readdirSync(dir)) rmSync(join(dir, f));
    files.forEach((text, i) => writeFileSync(join(dir, `${String(i).padStart(2, '0')}.yaml`), text));
    const r = new ReportRegistry(pino({ level: 'silent' }));
    r.loadDir(dir);
    return r;
  };
  const alone = plain(registry([GOOD]).get(GOOD_NAME));
  fc.assert(
    fc.property(fc.array(badDocument, { minLength: 1, maxLength: 3 }), (bad) => {
      const r = registry([GOOD, ...bad.map(textOf)]);
      if (prototypeSnapshot() !== snapshot) return false;
      return plain(r.get(GOOD_NAME)) === alone && r.errors().every((e) => /^VERDICT_REPORT_INVALID: \S/.test(e.error));
    }),
    fuzzParams(100),
  );
  t.equal(prototypeSnapshot(), snapshot);
});
