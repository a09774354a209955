// Counts the tests of tap runs from their TAP output (`tap --reporter=tap`).
//
//   node .ci/count-tap.mjs [RUN.tap ...]
//     prints one line, "N passed, N failed, N skipped", and before it (on
//     stderr) each skipped test with its reason. Reads stdin without files.
//     With several runs, a test file's result in a later run replaces its
//     result in the earlier ones (.ci/run reruns the files that skipped a test
//     with the optional tools present). Exits 1 on a failure, when nothing
//     passed, or, under CI=true, when anything was skipped: CI runs every test.
//
//   node .ci/count-tap.mjs --skipped-files RUN.tap
//     prints the test files that skipped a test, one a line.
//
// What is counted: each named test (t.test) of each test file. A test with a
// skipped assertion or subtest inside it (t.skip, { skip } deeper down) did
// not run whole, so it counts as skipped, never as passed. A test file that
// failed without any failing test inside it (a crash, a timeout) counts as one
// failure; a test file skipped whole (t.plan(0, reason)) as one skip.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

/** @typedef {{ passed: number, failed: number, skipped: { test: string, reason: string }[] }} FileResult */

/** @returns {Promise<Map<string, FileResult>>} each test file's result, by file. */
async function readRun(input) {
  /** @type {Map<string, FileResult>} */
  const files = new Map();
  let file = { passed: 0, failed: 0, skipped: [] };
  let innerSkip = ''; // the first skip seen inside the current top-level test
  let innerFail = false;
  let yamlEnd = ''; // inside a YAML diagnostic block: the line that closes it
  for await (const line of createInterface({ input })) {
    if (yamlEnd !== '') {
      if (line === yamlEnd) yamlEnd = '';
      continue;
    }
    const yaml = /^( *)---$/.exec(line);
    if (yaml) {
      yamlEnd = `${yaml[1]}...`;
      continue;
    }
    const point = /^( *)(not ok|ok) \d+ - (.*?)(?: # (SKIP|TODO)\b ?(.*?))?(?: # time=[\d.]+m?s)?$/.exec(line);
    if (!point) continue;
    const [, indent, result, name, directive, reason] = point;
    const skip = directive !== undefined ? reason || name : undefined;
    if (indent.length > 4) {
      if (skip !== undefined && innerSkip === '') innerSkip = skip;
      if (result === 'not ok' && skip === undefined) innerFail = true;
      continue;
    }
    if (indent.length === 4) {
      if (result === 'not ok' && skip === undefined) file.failed++;
      else if (skip !== undefined) file.skipped.push({ test: name, reason: skip });
      else if (innerFail) file.failed++;
      else if (innerSkip !== '') file.skipped.push({ test: name, reason: innerSkip });
      else file.passed++;
      innerSkip = '';
      innerFail = false;
      continue;
    }
    if (indent.length === 0) {
      // The file's own line closes it.
      if (result === 'not ok' && file.failed === 0) file.failed++;
      if (skip !== undefined && file.passed + file.failed + file.skipped.length === 0)
        file.skipped.push({ test: '(the whole file)', reason: skip });
      files.set(name, file);
      file = { passed: 0, failed: 0, skipped: [] };
    }
  }
  return files;
}

const args = process.argv.slice(2);
if (args[0] === '--skipped-files') {
  const files = await readRun(createReadStream(args[1]));
  for (const [name, r] of files) if (r.skipped.length > 0) console.log(name);
} else {
  /** @type {Map<string, FileResult>} */
  const merged = new Map();
  const inputs = args.length > 0 ? args.map((a) => createReadStream(a)) : [process.stdin];
  for (const input of inputs) for (const [name, r] of await readRun(input)) merged.set(name, r);
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const [name, r] of merged) {
    passed += r.passed;
    failed += r.failed;
    skipped += r.skipped.length;
    for (const s of r.skipped) console.error(`skipped: ${name}: ${s.test} — ${s.reason}`);
  }
  const ci = process.env.CI !== undefined && !['', '0', 'false'].includes(process.env.CI);
  if (ci && skipped > 0)
    console.error(
      `CI runs every test, and ${skipped} were skipped: install what the reasons above name (.ci/run installs it when missing)`,
    );
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exitCode = failed > 0 || passed === 0 || (ci && skipped > 0) ? 1 : 0;
}
