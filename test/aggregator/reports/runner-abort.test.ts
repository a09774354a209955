import t from 'tap';
import { parseReportsYaml, type ReportDefinition } from '../../../aggregator/reports/globalreport.js';
import { reportRunner } from '../../../aggregator/reports/runner.js';
import type { ReportRunRecord, Store } from '../../../aggregator/store/index.js';
import { until } from '../../fixtures/wait.js';

// Issue 13: the scheduler stopping (shutdown) aborts the signal it gave the run; the runner ends the run at its
// next stage — before reading, between reading and generating, after generating — with the signal's reason.

const START_MS = Date.parse('2026-11-20T00:00:00.000Z');
const END_MS = Date.parse('2026-11-21T00:00:00.000Z');

const def = parseReportsYaml(
  'apiVersion: compliance.verdict.dev/v1\nkind: GlobalReport\nmetadata: {name: access}\nspec: {reportType: network-access}\n',
  'test',
)[0] as ReportDefinition;

const run: ReportRunRecord = {
  id: '00000000-0000-0000-0000-000000000001',
  report: 'access',
  reportType: 'network-access',
  trigger: 'on-demand',
  status: 'running',
  attempts: 1,
  intervalStartMs: START_MS,
  intervalEndMs: END_MS,
  notBeforeMs: START_MS,
  createdMs: START_MS,
  inputs: {},
};

/** A store whose flow read is answered when the test says, noting that it was asked. */
function slowStore() {
  let answer!: () => void;
  const asked: string[] = [];
  const store = {
    flowTotals: () => {
      asked.push('flowTotals');
      return new Promise((resolve) => (answer = () => resolve([])));
    },
  } as unknown as Store;
  return { store, asked, answer: () => answer() };
}

t.test('a signal aborted before the run starts ends it before anything is read', async (t) => {
  const { store, asked } = slowStore();
  const stop = new AbortController();
  stop.abort(new Error('the report scheduler is stopping'));
  await t.rejects(reportRunner(store)(run, def, stop.signal), { message: 'the report scheduler is stopping' });
  t.same(asked, []);
});

t.test('a signal aborted while the inputs are read ends the run before it generates', async (t) => {
  const { store, asked, answer } = slowStore();
  const stop = new AbortController();
  const result = reportRunner(store)(run, def, stop.signal);
  await until(() => asked.length > 0, 'the run to ask the store for the flow totals', 5000, 1);
  stop.abort(new Error('the report scheduler is stopping'));
  answer();
  await t.rejects(result, { message: 'the report scheduler is stopping' });
});

t.test('with a signal never aborted (or none) the run ends with its result', async (t) => {
  for (const signal of [new AbortController().signal, undefined]) {
    const { store, answer, asked } = slowStore();
    const result = reportRunner(store, () => END_MS)(run, def, signal);
    await until(() => asked.length > 0, 'the run to ask the store for the flow totals', 5000, 1);
    answer();
    t.match(await result, { report: 'access', reportType: 'network-access', generatedAt: '2026-11-21T00:00:00.000Z' });
  }
});
