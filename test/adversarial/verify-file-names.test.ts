import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { sha256Hex } from '../../aggregator/evidence/canonical.js';
import { runVerify } from '../../aggregator/evidence/verify-cli.js';
import { tempDir } from '../fixtures/tmp.js';

// `verdict-aggregator verify --file F --manifest M` finds F's name in the manifest as the first listed name F's
// download name ends with. A CIS run lists both failed-tests.csv and most-failed-tests.csv, and
// "weekly-cis-b9b69983-most-failed-tests.csv" ends with "failed-tests.csv", which sorts first: the genuine
// most-failed-tests.csv was reported BROKEN (exit 1), and a forged one holding failed-tests.csv's bytes was reported
// intact (exit 0). The name is the longest listed name the download name is, or ends with after a "-".

t.test(
  'verify --file matches a download to its own name in the manifest, not a shorter one it ends with',
  async (t) => {
    const dir = tempDir(t);
    const failed = 'id,title\n4.2.1,anonymous auth\n';
    const mostFailed = 'id,title,failedNodes\n4.2.1,anonymous auth,3\n';
    const manifest = join(dir, 'weekly-cis-b9b69983-manifest.json');
    writeFileSync(
      manifest,
      JSON.stringify({
        files: { 'failed-tests.csv': sha256Hex(failed), 'most-failed-tests.csv': sha256Hex(mostFailed) },
      }),
    );
    const verify = async (name: string, bytes: string) => {
      const file = join(dir, name);
      writeFileSync(file, bytes);
      let out = '';
      const code = await runVerify(['--file', file, '--manifest', manifest], (s) => (out += s));
      return { code, out };
    };
    const genuine = await verify('weekly-cis-b9b69983-most-failed-tests.csv', mostFailed);
    t.equal(genuine.code, 0, `the genuine most-failed-tests.csv is intact:\n${genuine.out}`);
    const forged = await verify('weekly-cis-b9b69983-most-failed-tests.csv', failed);
    t.equal(forged.code, 1, `most-failed-tests.csv holding failed-tests.csv's bytes is broken:\n${forged.out}`);
    t.equal((await verify('weekly-cis-b9b69983-failed-tests.csv', failed)).code, 0, 'failed-tests.csv is intact');
    t.equal((await verify('failed-tests.csv', failed)).code, 0, 'a download saved under its own name is intact');
    t.equal((await verify('failed-tests.csv', mostFailed)).code, 1, 'and broken when its bytes are another file');
  },
);
