import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { buildExampleNodes } from '../../examples/nodes.js';
import { tempDir } from '../fixtures/tmp.js';
import type { ScanReport } from '../../common/scan-report.js';

// The built CLI, as users run it (npm test builds first).
const CLI = join(packageRoot(), 'dist', 'agent', 'cli.js');
const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

t.test('scan --format json prints the report shape of docs/DESIGN.md, "The scan report"', async (t) => {
  const { roots } = buildExampleNodes(tempDir(t));
  const r = run(['scan', '--host-root', roots['worker-weak'], '--node-name', 'w1', '--format', 'json']);
  t.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as ScanReport;
  t.equal(report.node, 'w1');
  t.equal(report.benchmark.id, 'cis-1.12');
  t.equal(report.nodeRole, 'worker');
  t.ok(Date.parse(report.startedAt) > 0);
  t.type(report.durationMs, 'number');
  t.equal(report.summary.total, report.summary.pass + report.summary.fail + report.summary.skip);
  const scored = report.checks.filter((c) => c.scored);
  t.equal(report.summary.fail, scored.filter((c) => c.status === 'FAIL').length);
  for (const c of report.checks) if (c.status === 'SKIP') t.ok(c.skipReason, `${c.id} has a skip reason`);
  t.equal(
    report.checks.find((c) => c.id === '4.2.4')?.actual,
    '10255',
    'the --read-only-port flag beats the config file',
  );
});

t.test('--exit-code is non-zero when a scored check fails, zero otherwise', async (t) => {
  const { roots } = buildExampleNodes(tempDir(t));
  t.equal(run(['scan', '--host-root', roots['worker-weak'], '--format', 'json', '--exit-code']).status, 1);
  t.equal(run(['scan', '--host-root', roots['worker-hardened'], '--format', 'json', '--exit-code']).status, 0);
  t.equal(run(['scan', '--host-root', roots['worker-weak'], '--format', 'json']).status, 0);
});

t.test(
  'table output groups checks by section, then the failing checks with actual, expected and the fix',
  async (t) => {
    const { roots } = buildExampleNodes(tempDir(t));
    const r = run(['scan', '--host-root', roots['worker-weak'], '--node-name', 'w1']);
    t.equal(r.status, 0);
    const lines = r.stdout.split('\n');
    t.match(lines[0], /^Node w1 \(worker\), cis-1\.12/);
    t.equal(lines[2], '4 Worker Node Security Configuration');
    t.equal(lines[3], '4.1 Worker Node Configuration Files');
    t.match(lines[4], /^\[FAIL\] 4\.1\.1 {2}Ensure that the kubelet service file permissions/);
    t.match(
      r.stdout,
      /Failing checks:\n {2}4\.1\.1 .*\n {4}actual: {3}.*10-kubeadm\.conf: 644\n {4}expected: 600 or more restrictive/,
    );
    t.match(r.stdout, /fix: /);
  },
);

t.test('csv and junit outputs carry every check', async (t) => {
  const { roots } = buildExampleNodes(tempDir(t));
  const csv = run(['scan', '--host-root', roots['worker-weak'], '--format', 'csv']);
  const rows = csv.stdout.trim().split('\r\n');
  const json = JSON.parse(run(['scan', '--host-root', roots['worker-weak'], '--format', 'json']).stdout) as ScanReport;
  t.equal(rows.length, json.checks.length + 1);
  t.match(
    rows[0],
    /^node,benchmark,id,title,section,level,scored,status,skipReason,expected,actual,evidence,remediation$/,
  );
  const junit = run(['scan', '--host-root', roots['worker-weak'], '--format', 'junit']).stdout;
  t.equal((junit.match(/<testcase /g) ?? []).length, json.checks.length);
  t.equal(
    (junit.match(/<failure /g) ?? []).length,
    json.checks.filter((c) => c.status === 'FAIL' && c.scored).length,
    'unscored failures are skipped, not failures (issue 14)',
  );
});

t.test('bad arguments exit 2 with a message that says what to do', async (t) => {
  const cases: [string[], RegExp][] = [
    [['scan'], /--host-root DIR is required/],
    [['scan', '--host-root', '/tmp', '--level', '3'], /--level must be 1 or 2/],
    [['scan', '--host-root', '/tmp', '--format', 'xml'], /--format must be table, json, csv, junit or sarif/],
    [['scan', '--host-root', '/tmp', '--exclude', 'abc'], /--exclude takes check ids/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ];
  for (const [args, message] of cases) {
    const r = run(args);
    t.equal(r.status, 2, args.join(' '));
    t.match(r.stderr, message);
  }
  const unknownBench = run(['scan', '--host-root', '/tmp', '--benchmark', 'cis-0.1']);
  t.equal(unknownBench.status, 1);
  t.match(unknownBench.stderr, /VERDICT_BENCHMARK_UNKNOWN: .*verdict-agent benchmarks/);
});

t.test('benchmarks lists the bundled versions', async (t) => {
  const r = run(['benchmarks', '--format', 'json']);
  const ids = (JSON.parse(r.stdout) as { items: { id: string }[] }).items.map((i) => i.id);
  t.same(ids, ['cis-1.12', 'cis-1.11', 'cis-1.10', 'cis-1.9']);
});
