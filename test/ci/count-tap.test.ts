import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { tempDir } from '../fixtures/tmp.js';

// .ci/count-tap.mjs writes CI's closing line from tap's TAP output. A test that
// did not run whole must never count as passed, and CI must fail on a skip.
// The TAP below is what tap 21 prints for each case (`tap --reporter=tap`).

const SCRIPT = join(packageRoot(), '.ci', 'count-tap.mjs');

const file = (name: string, body: string, result = 'ok 1') =>
  `# Subtest: ${name}\n${body}    1..9\n${result} - ${name} # time=12.5ms\n\n`;
const passing = (n: number, name: string) =>
  `    # Subtest: ${name}\n        ok 1 - should be equal\n        1..1\n    ok ${n} - ${name} # time=4.3ms\n    \n`;

const MIXED = `TAP version 14\n1..2\n${file(
  'test/a.test.ts',
  passing(1, 'runs') +
    '    ok 2 - needs a tool # SKIP needs promtool: apt-get install prometheus\n' +
    '    # Subtest: skips inside\n        ok 1 - should be equal\n        ok 2 - needs a small filesystem to fill # SKIP\n        1..2\n    ok 3 - skips inside # time=1.7ms\n    \n' +
    '    # Subtest: a skipped subtest deeper down\n        ok 1 - deep # SKIP deep reason\n        1..1\n    ok 4 - a skipped subtest deeper down # time=0.5ms\n    \n' +
    '    # Subtest: fails with a skip inside\n        not ok 1 - broken\n          ---\n          found: "ok 9 - quoted # SKIP in a diff"\n          ...\n        ok 2 - later # SKIP\n        1..2\n    not ok 5 - fails with a skip inside # time=3ms\n    \n',
  'not ok 1',
)}${file('test/b.test.ts', passing(1, 'also runs'))}`;

const CRASH = `TAP version 14\n1..2\n${file('test/a.test.ts', passing(1, 'runs'))}${file('test/c.test.ts', '', 'not ok 2')}`;
const WHOLE_FILE_SKIP = `TAP version 14\n1..2\n${file('test/a.test.ts', passing(1, 'runs'))}# Subtest: test/d.test.ts\n    1..0 # no tool\nok 2 - test/d.test.ts # SKIP no tool\n\n`;
const HIDDEN = `TAP version 14\n1..2\n${file('test/a.test.ts', passing(1, 'runs') + '    ok 2 - needs a tool # SKIP needs promtool: apt-get install prometheus\n')}${file('test/b.test.ts', passing(1, 'also runs'))}`;
const RERUN = `TAP version 14\n1..1\n${file('test/a.test.ts', passing(1, 'runs') + passing(2, 'needs a tool'))}`;

function count(t: Test, runs: string[], args: string[] = [], ci = '') {
  const dir = tempDir(t);
  const files = runs.map((text, i) => {
    const f = join(dir, `run-${i}.tap`);
    writeFileSync(f, text);
    return f;
  });
  const r = spawnSync(process.execPath, [SCRIPT, ...args, ...files], {
    encoding: 'utf8',
    env: { ...process.env, CI: ci },
  });
  return { line: r.stdout.trim(), status: r.status, stderr: r.stderr };
}

const cases: [string, string[], string, number][] = [
  [
    'a skip, a skip inside a test and a skipped subtest deeper down count as skipped, never as passed',
    [MIXED],
    '2 passed, 1 failed, 3 skipped',
    1,
  ],
  [
    'a file that fails without a failing test inside counts as one failure',
    [CRASH],
    '1 passed, 1 failed, 0 skipped',
    1,
  ],
  ['a file skipped whole counts as one skip', [WHOLE_FILE_SKIP], '1 passed, 0 failed, 1 skipped', 0],
  ["a later run's result for a file replaces the earlier one", [HIDDEN, RERUN], '3 passed, 0 failed, 0 skipped', 0],
];
for (const [name, runs, line, status] of cases) {
  t.test(name, async (t) => {
    const r = count(t, runs);
    t.equal(r.line, line);
    t.equal(r.status, status);
  });
}

t.test('each skip is listed with its reason; under CI=true a skip fails the count', async (t) => {
  const local = count(t, [HIDDEN]);
  t.equal(local.line, '2 passed, 0 failed, 1 skipped');
  t.equal(local.status, 0, 'a developer without promtool gets a passing count');
  t.match(local.stderr, 'skipped: test/a.test.ts: needs a tool — needs promtool: apt-get install prometheus');
  const ci = count(t, [HIDDEN], [], 'true');
  t.equal(ci.line, '2 passed, 0 failed, 1 skipped', 'the line CI parses still starts "N passed, N failed"');
  t.equal(ci.status, 1);
  t.match(ci.stderr, /CI runs every test, and 1 were skipped/);
  t.equal(count(t, [HIDDEN, RERUN], [], 'true').status, 0, 'nothing left skipped once the rerun ran it');
});

t.test('--skipped-files names the files to run again', async (t) => {
  t.equal(count(t, [MIXED], ['--skipped-files']).line, 'test/a.test.ts');
  t.equal(count(t, [RERUN], ['--skipped-files']).line, '');
});
