import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { formatReport } from '../../agent/cis/format.js';
import { scanNode } from '../../agent/cis/index.js';
import { buildExampleNodes } from '../../examples/nodes.js';
import { tempDir } from '../fixtures/tmp.js';

// Text in a scan comes from the node: a kubelet flag's value, a config file's value. One holding control characters
// (ESC, CR, NUL) went out as it was: the table wrote a node's escape sequences to the operator's terminal (colours,
// a cursor moved back over "[FAIL]", a window title set), and JUnit XML held characters XML 1.0 forbids, so a CI
// system refused the whole report. The table shows them as U+FFFD; XML never holds them.

/** Characters XML 1.0 does not allow anywhere in a document. */
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const NOT_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/u;

t.test('control characters from the node reach neither the terminal nor the XML', async (t) => {
  const root = buildExampleNodes(tempDir(t)).roots['worker-weak'];
  const hostile = 'evil\u001b]0;owned\u0007\u001b[2K\r[PASS]\u0000\u009b31m\u0008x<&>';
  writeFileSync(
    join(root, 'proc/655/cmdline'),
    [
      '/usr/bin/kubelet',
      '--config=/var/lib/kubelet/config.yaml',
      `--hostname-override=${hostile}`,
      `--read-only-port=${hostile}`,
      '',
    ].join('\0'),
  );
  const { report, sectionTitles } = scanNode({
    hostRoot: root,
    benchmark: 'cis-1.12',
    role: 'auto',
    level: 2,
    exclude: [],
    nodeName: hostile,
  });
  t.ok(JSON.stringify(report).includes('\\u001b'), 'the report itself keeps what the node holds (evidence as found)');
  for (const color of [false, true]) {
    const text = formatReport(report, 'table', { color, width: 100 }, sectionTitles);
    // eslint-disable-next-line no-control-regex -- control characters are what it finds
    const withoutStyling = text.replace(/\u001b\[\d+m/g, '');
    t.notMatch(
      withoutStyling,
      // eslint-disable-next-line no-control-regex -- control characters are what it finds
      /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/u,
      `table (colour ${color}): no control character but styling`,
    );
    t.match(text, /evil\ufffd/, 'the value is still shown, its control characters as U+FFFD');
  }
  const junit = formatReport(report, 'junit');
  t.notMatch(junit, NOT_XML, 'JUnit holds only characters XML 1.0 allows');
  t.match(junit, /evil/, 'and the value');
});
