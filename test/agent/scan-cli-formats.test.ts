import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { buildExampleNodes } from '../../examples/nodes.js';
import { tempDir } from '../fixtures/tmp.js';
import { findTool, skipUnlessFound } from '../fixtures/tools.js';
import type { ScanReport } from '../../common/scan-report.js';

// Issue 14, item 4 (formats), through the built CLI.
const CLI = join(packageRoot(), 'dist', 'agent', 'cli.js');
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '', FORCE_COLOR: '', ...env },
  });

// worker-weak fails, by hand from examples/nodes.ts: 4.1.1 (unit 644), 4.1.5 (kubeconfig 644), 4.1.9/4.1.10
// (config.yaml 644, uid 1000), 4.2.1 (anonymous auth), 4.2.2 (AlwaysAllow), 4.2.3 (no client CA), 4.2.6
// (makeIPTablesUtilChains false), 4.2.10 (no TLS cert) scored; 4.2.4, 4.2.5, 4.2.7, 4.2.9, 4.2.12, 4.2.13, 4.2.14 not.
const SCORED_FAILS = ['4.1.1', '4.1.5', '4.1.9', '4.1.10', '4.2.1', '4.2.2', '4.2.3', '4.2.6', '4.2.10'];
const UNSCORED_FAILS = ['4.2.4', '4.2.5', '4.2.7', '4.2.9', '4.2.12', '4.2.13', '4.2.14'];

interface Sarif {
  $schema: string;
  version: string;
  runs: {
    tool: {
      driver: { name: string; rules: { id: string; shortDescription: { text: string }; help?: { text: string } }[] };
    };
    results: {
      ruleId: string;
      level: string;
      message: { text: string };
      locations?: { physicalLocation: { artifactLocation: { uri: string } } }[];
    }[];
  }[];
}

t.test('--format sarif: SARIF 2.1.0, one rule per check, one result per FAIL', async (t) => {
  const { roots } = buildExampleNodes(tempDir(t));
  const r = run(['scan', '--host-root', roots['worker-weak'], '--format', 'sarif']);
  t.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as Sarif;
  const json = JSON.parse(run(['scan', '--host-root', roots['worker-weak'], '--format', 'json']).stdout) as ScanReport;
  // The properties SARIF 2.1.0 requires of these objects.
  t.equal(s.version, '2.1.0');
  t.equal(s.$schema, 'https://json.schemastore.org/sarif-2.1.0.json');
  t.equal(s.runs.length, 1);
  const [runObj] = s.runs;
  t.equal(runObj!.tool.driver.name, 'verdict-agent');
  t.same(
    runObj!.tool.driver.rules.map((x) => x.id),
    json.checks.map((c) => c.id),
  );
  const rule421 = runObj!.tool.driver.rules.find((x) => x.id === '4.2.1')!;
  const c421 = json.checks.find((c) => c.id === '4.2.1')!;
  t.equal(rule421.shortDescription.text, c421.title);
  t.equal(rule421.help?.text, c421.remediation.trim().replace(/\s+/g, ' '));
  for (const res of runObj!.results) {
    t.type(res.ruleId, 'string');
    t.type(res.message.text, 'string');
    t.ok(res.message.text.length > 0);
  }
  t.same(
    runObj!.results.filter((x) => x.level === 'error').map((x) => x.ruleId),
    SCORED_FAILS,
  );
  t.same(
    runObj!.results.filter((x) => x.level === 'warning').map((x) => x.ruleId),
    UNSCORED_FAILS,
  );
  const loc = (id: string) =>
    runObj!.results.find((x) => x.ruleId === id)?.locations?.[0]?.physicalLocation.artifactLocation.uri;
  t.equal(loc('4.2.1'), 'file:///var/lib/kubelet/config.yaml', 'the evidence file');
  t.equal(loc('4.2.4'), undefined, 'a flag is no file');
  // --exit-code counts scored failures in every format.
  t.equal(run(['scan', '--host-root', roots['worker-weak'], '--format', 'sarif', '--exit-code']).status, 1);
});

t.test(
  'table: sections with titles, full titles wrapped to 100 columns when piped, fixes for failures only, summaries',
  async (t) => {
    const { roots } = buildExampleNodes(tempDir(t));
    const r = run(['scan', '--host-root', roots['worker-weak'], '--node-name', 'w1']);
    t.equal(r.status, 0, r.stderr);
    const out = r.stdout;
    const lines = out.split('\n');
    t.notOk(out.includes('\u001b['), 'no colour when piped');
    t.ok(
      lines.every((l) => l.length <= 100),
      'wrapped to 100 columns when piped',
    );
    t.same(lines.slice(2, 5), [
      '4 Worker Node Security Configuration',
      '4.1 Worker Node Configuration Files',
      '[FAIL] 4.1.1  Ensure that the kubelet service file permissions are set to 600 or more restrictive',
    ]);
    // A title longer than the line goes on under itself, whole.
    t.match(
      out,
      '[FAIL] 4.1.5  Ensure that the --kubeconfig kubelet.conf file permissions are set to 600 or more\n              restrictive\n',
    );
    t.match(out, '\n4.2 Kubelet\n[FAIL] 4.2.1  Ensure that the --anonymous-auth argument is set to false\n');
    t.match(
      out,
      '[WARN] 4.2.4  Verify that if defined, readOnlyPort is set to 0\n',
      'an unscored failure is a warning',
    );
    t.match(out, '\n4.3 kube-proxy\n[SKIP] 4.3.1  Ensure that the kube-proxy metrics service is bound to localhost\n');
    // Remediation for the 16 failing checks only: not for 4.1.2, which passes.
    t.equal((out.match(/\n {4}fix: {6}/g) ?? []).length, 16);
    t.notMatch(out, /chown root:root` on the kubelet's systemd unit file/);
    // Per section (all checks by tag) and in total; the score counts scored checks only.
    t.match(
      out,
      [
        '  4.1 Worker Node Configuration Files  pass 2  fail 4  warn 0  skip 4  score 33.3%',
        '  4.2 Kubelet                          pass 2  fail 5  warn 7  skip 0  score 0%',
        '  4.3 kube-proxy                       pass 0  fail 0  warn 0  skip 1  score -',
        '  Total                                pass 4  fail 9  warn 7  skip 5  score 18.2%',
        '',
        'Score 18.2%  (scored checks: pass 2  fail 9  skip 0; 25 checks in all)',
        '',
      ].join('\n'),
    );
    // Colour: forced on when piped with FORCE_COLOR, and NO_COLOR always wins.
    const colored = run(['scan', '--host-root', roots['worker-weak'], '--node-name', 'w1'], {
      FORCE_COLOR: '1',
    }).stdout;
    t.match(colored, '\u001b[31m[FAIL]\u001b[0m 4.1.1  Ensure');
    t.match(colored, '\u001b[32m[PASS]\u001b[0m 4.1.2  Ensure');
    const plain = run(['scan', '--host-root', roots['worker-weak']], { FORCE_COLOR: '1', NO_COLOR: '1' }).stdout;
    t.notOk(plain.includes('\u001b['), 'NO_COLOR wins');
  },
);

t.test('json carries the notes the table prints; junit skips unscored failures with a message', async (t) => {
  const { roots } = buildExampleNodes(tempDir(t));
  const table = run(['scan', '--host-root', roots['worker-weak']]);
  const notes = table.stderr
    .split('\n')
    .filter((l) => l.startsWith('note: '))
    .map((l) => l.slice(6));
  t.same(notes, [
    "node name worker-weak-legacy: the kubelet's --hostname-override",
    'role worker: no kube-apiserver here',
    'Kubernetes version unknown: newest benchmark',
  ]);
  const json = JSON.parse(run(['scan', '--host-root', roots['worker-weak'], '--format', 'json']).stdout) as ScanReport;
  t.same(json.notes, notes);
  const junit = run(['scan', '--host-root', roots['worker-weak'], '--format', 'junit']).stdout;
  // 9 scored failures; skipped: 5 SKIP + 7 unscored failures.
  t.match(junit, '<testsuites name="verdict" tests="25" failures="9" skipped="12"');
  t.equal((junit.match(/<failure /g) ?? []).length, 9);
  t.match(
    junit,
    '<testcase classname="cis-1.12.4.2" name="4.2.4 Verify that if defined, readOnlyPort is set to 0" time="0">\n      <skipped message="not scored, failing: expected readOnlyPort 0, got 10255"/>',
  );
});

// A pseudo-terminal of 60 columns from util-linux script(1), found on PATH like the other optional programs.
const script = findTool('script');
t.test(
  'table on a terminal: colour, wrapped to its width',
  { skip: skipUnlessFound({ script }, 'apt-get install bsdutils (util-linux script)') },
  async (t) => {
    const { roots } = buildExampleNodes(tempDir(t));
    const cmd = `stty cols 60; '${process.execPath}' '${CLI}' scan --host-root '${roots['worker-weak']}' --node-name w1 2>/dev/null`;
    const env = { ...process.env };
    delete env.NO_COLOR;
    delete env.FORCE_COLOR;
    const r = spawnSync(script!, ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env, timeout: 60_000 });
    const lines = r.stdout.replace(/\r/g, '').split('\n');
    const i = lines.findIndex((l) => l.includes('4.1.1  Ensure'));
    t.same(lines.slice(i, i + 2), [
      '\u001b[31m[FAIL]\u001b[0m 4.1.1  Ensure that the kubelet service file',
      '              permissions are set to 600 or more restrictive',
    ]);
    const plain = lines.map((l) =>
      l
        .replaceAll('\u001b[31m', '')
        .replaceAll('\u001b[32m', '')
        .replaceAll('\u001b[33m', '')
        .replaceAll('\u001b[34m', '')
        .replaceAll('\u001b[1m', '')
        .replaceAll('\u001b[2m', '')
        .replaceAll('\u001b[0m', ''),
    );
    t.ok(
      plain.every((l) => l.length <= 60),
      'no line wider than the terminal',
    );
  },
);
