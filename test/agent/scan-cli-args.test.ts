import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { VERDICT_VERSION } from '../../common/version.js';
import { NodeRootBuilder } from '../../examples/node-root.js';
import { buildExampleNodes } from '../../examples/nodes.js';
import { tempDir } from '../fixtures/tmp.js';
import type { ScanReport } from '../../common/scan-report.js';

// Issue 14, items 1-3, through the built CLI as users run it.
const CLI = join(packageRoot(), 'dist', 'agent', 'cli.js');
const run = (args: string[], env: Record<string, string | undefined> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NODE_NAME: '', ...env } });

const oneLine = (s: string) => s.trimEnd().split('\n').length === 1 && !/\n\s+at /.test(s);

t.test('--help and --version work at top level and on every subcommand', async (t) => {
  for (const args of [['--help'], ['-h'], ['help'], ['scan', '--help'], ['run', '--help'], ['benchmarks', '-h']]) {
    const r = run(args);
    t.equal(r.status, 0, args.join(' '));
    t.equal(r.stderr, '', args.join(' '));
    t.match(r.stdout, /^verdict-agent: CIS Kubernetes Benchmark checks/, args.join(' '));
    t.match(r.stdout, /--version, -V {2}print the version and exit/, args.join(' '));
  }
  // A subcommand's help is its own: scan's names --exit-code, not run's --aggregator, and the other way round.
  const scan = run(['scan', '--host-root', '/nowhere', '--help']).stdout;
  t.match(scan, /--exit-code/);
  t.notMatch(scan, /--aggregator/);
  t.match(run(['run', '--help']).stdout, /--aggregator HOST:PORT/);
  t.notMatch(run(['run', '--help']).stdout, /--exit-code/);
  t.match(run(['benchmarks', '--help']).stdout, /--format table\|json/);
  for (const args of [
    ['--version'],
    ['-V'],
    ['version'],
    ['scan', '--version'],
    ['run', '-V'],
    ['benchmarks', '--version'],
  ]) {
    const r = run(args);
    t.equal(r.status, 0, args.join(' '));
    t.equal(r.stdout, `verdict-agent ${VERDICT_VERSION}\n`, args.join(' '));
  }
});

t.test('unknown flags, missing values and a missing host root exit 2 with one line', async (t) => {
  const cases: [string[], string][] = [
    [['scan', '--host-root', '/tmp', '--bogus'], "verdict-agent: VERDICT_USAGE: Unknown option '--bogus'"],
    [['scan', '--host-root'], "verdict-agent: VERDICT_USAGE: Option '--host-root <value>' argument missing"],
    [['run', '--frob'], "verdict-agent: VERDICT_USAGE: Unknown option '--frob'"],
    [['benchmarks', '--x'], "verdict-agent: VERDICT_USAGE: Unknown option '--x'"],
    [
      ['scan', '--host-root', '/does/not/exist'],
      'verdict-agent: VERDICT_USAGE: --host-root /does/not/exist does not exist',
    ],
    [
      ['benchmarks', '--format', 'yaml'],
      'verdict-agent: VERDICT_USAGE: --format must be one of table, json, not "yaml"',
    ],
  ];
  for (const [args, start] of cases) {
    const r = run(args);
    t.equal(r.status, 2, args.join(' '));
    t.ok(r.stderr.startsWith(start), `${args.join(' ')}: ${r.stderr}`);
    t.ok(oneLine(r.stderr), `${args.join(' ')}: one line, no stack`);
    t.equal(r.stdout, '');
  }
  // parseArgs' errors say which command's help to read.
  t.match(run(['scan', '--bogus']).stderr, /; run 'verdict-agent scan --help' for the options\n$/);
  t.match(run(['run', '--bogus']).stderr, /; run 'verdict-agent run --help' for the options\n$/);
});

t.test('an --exclude id that matches no check of the benchmark is warned about', async (t) => {
  const { roots } = buildExampleNodes(tempDir(t));
  const r = run([
    'scan',
    '--host-root',
    roots['worker-weak'],
    '--format',
    'json',
    '--exclude',
    '4.2.6,9.9.9',
    '--exclude',
    '4.2',
  ]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, 'warning: --exclude 9.9.9 matches no check of cis-1.12\n');
  const report = JSON.parse(r.stdout) as ScanReport;
  t.equal(report.checks.find((c) => c.id === '4.2.6')?.skipReason, 'excluded');
});

t.test('a root with no kubelet is not a node: one line, exit 2, even with --exit-code', async (t) => {
  const dir = tempDir(t);
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  for (const format of ['table', 'json']) {
    const r = run(['scan', '--host-root', empty, '--format', format, '--exit-code']);
    t.equal(r.status, 2);
    t.equal(r.stdout, '', 'no report, no "Score 0%"');
    t.equal(
      r.stderr,
      `verdict-agent: no kubelet found under ${empty} (no kubelet, k3s or rke2 process, no kubelet.service unit, no kubelet config or kubeconfig); not a Kubernetes node, nothing to assess\n`,
    );
  }
  // A laptop-like root: /etc and /proc with other processes, but nothing of a kubelet.
  const laptop = new NodeRootBuilder(join(dir, 'laptop'));
  laptop.file('/etc/hostname', 'laptop\n').file('/etc/os-release', 'PRETTY_NAME="Fedora"\n');
  laptop.process(100, ['/usr/bin/bash']);
  t.equal(run(['scan', '--host-root', laptop.root]).status, 2);
  // Embedded kubelets count: k3s's process, or only a kubelet kubeconfig of RKE2 with nothing running.
  const k3s = new NodeRootBuilder(join(dir, 'k3s'));
  k3s.process(200, ['/usr/local/bin/k3s', 'agent']);
  const k3sRun = run(['scan', '--host-root', k3s.root, '--format', 'json', '--node-name', 'k']);
  t.equal(k3sRun.status, 0, k3sRun.stderr);
  t.equal((JSON.parse(k3sRun.stdout) as ScanReport).notAssessable, undefined);
  const rke2 = new NodeRootBuilder(join(dir, 'rke2'));
  rke2.file('/var/lib/rancher/rke2/agent/kubelet.kubeconfig', 'apiVersion: v1\n');
  t.equal(run(['scan', '--host-root', rke2.root, '--format', 'json', '--node-name', 'r']).status, 0);
  // A stopped kubeadm kubelet: its unit alone is enough.
  const unit = new NodeRootBuilder(join(dir, 'unit'));
  unit.file('/usr/lib/systemd/system/kubelet.service', '[Service]\nExecStart=/usr/bin/kubelet\n');
  t.equal(run(['scan', '--host-root', unit.root, '--format', 'json', '--node-name', 'u']).status, 0);
});

t.test('scan names the node after the scanned root', async (t) => {
  const dir = tempDir(t);
  const nodeOf = (root: string, extra: string[] = [], env: Record<string, string> = {}) => {
    const r = run(['scan', '--host-root', root, '--format', 'json', ...extra], env);
    t.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as ScanReport;
  };
  // The kubelet's --hostname-override (worker-weak's kubelet has --hostname-override=worker-weak-legacy).
  const { roots } = buildExampleNodes(join(dir, 'ex'));
  const weak = nodeOf(roots['worker-weak'], [], { NODE_NAME: 'scanning-pod' });
  t.equal(weak.node, 'worker-weak-legacy', "the kubelet's name, not $NODE_NAME of the machine scanning");
  t.ok(weak.notes?.includes("node name worker-weak-legacy: the kubelet's --hostname-override"));
  // --node-name wins.
  t.equal(nodeOf(roots['worker-weak'], ['--node-name', 'given']).node, 'given');
  // The root's /etc/hostname when the kubelet has no override.
  const b = new NodeRootBuilder(join(dir, 'n1'));
  b.file('/etc/hostname', 'node-from-file\n');
  b.process(10, ['/usr/bin/kubelet', '--config=/var/lib/kubelet/config.yaml']);
  t.equal(nodeOf(b.root).node, 'node-from-file');
  // k3s: its node-name option (command line or /etc/rancher/k3s/config.yaml) is the kubelet's override.
  const k = new NodeRootBuilder(join(dir, 'k3s'));
  k.file('/etc/hostname', 'k3s-host\n');
  k.file('/etc/rancher/k3s/config.yaml', 'node-name: k3s-node-7\n');
  k.process(20, ['/usr/local/bin/k3s', 'agent']);
  t.equal(nodeOf(k.root).node, 'k3s-node-7');
  // Nothing under the root: this machine's name, with a note saying so (printed on stderr by the table).
  const bare = new NodeRootBuilder(join(dir, 'bare'));
  bare.process(10, ['/usr/bin/kubelet']);
  const report = nodeOf(bare.root);
  t.equal(report.node, hostname());
  const table = run(['scan', '--host-root', bare.root]);
  t.match(table.stderr, new RegExp(`note: node name ${hostname()}: this machine's host name \\(no --node-name`));
});
