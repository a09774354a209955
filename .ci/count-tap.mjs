// Reads tap's TAP output on stdin and prints one line: "N passed, N failed".
// Counts each named test (t.test) of each test file; a test file that failed
// without any failing test inside it (a crash, a timeout) counts as one failure.
import { createInterface } from 'node:readline';

let passed = 0;
let failed = 0;
let skipped = 0;
let failedInFile = 0;
for await (const line of createInterface({ input: process.stdin })) {
  const sub = /^ {4}(not ok|ok) \d+ - .*?(# (SKIP|TODO)\b.*)?$/.exec(line);
  if (sub) {
    if (sub[3]) skipped++;
    else if (sub[1] === 'ok') passed++;
    else {
      failed++;
      failedInFile++;
    }
    continue;
  }
  const file = /^(not ok|ok) \d+ - /.exec(line);
  if (file) {
    if (file[1] === 'not ok' && failedInFile === 0) failed++;
    failedInFile = 0;
  }
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
