import { rmSync } from 'node:fs';
import t, { type Test } from 'tap';
import { loadBenchmarks, parseBenchmark } from '../../../agent/cis/benchmarks.js';
import { scanNode } from '../../../agent/cis/index.js';
import type { CheckResult } from '../../../common/scan-report.js';
import type { NodeRootBuilder } from '../../../examples/node-root.js';
import { NodeModel } from '../../fixtures/node-model.js';
import { tempDir } from '../../fixtures/tmp.js';

/*
 * A kubelet systemd unit that exists but cannot be read is evidence we could
 * not look at: FAIL with the reason, never SKIP as if there were no unit. Tests
 * run as root, who can read any mode, so "unreadable" is made of what root
 * cannot read either: a directory where the file should be, or a link that
 * leaves the host root.
 */

const benchmarks = [
  ...loadBenchmarks().filter((b) => b.id === 'cis-1.12'),
  parseBenchmark(
    `
id: unit-1.0
version: 1.0.0
title: unit
kubernetesVersions: ["1.32"]
checks:
  - { id: "4.2.15", title: IPAddressDeny any, section: "4.2", level: 2, automated: false, role: worker, remediation: r,
      audit: { type: systemd-property, unit: kubelet.service, property: IPAddressDeny, expect: { op: unset } } }
`,
    'unit.yaml',
  ),
];

const UNIT = '/usr/lib/systemd/system/kubelet.service';
const KUBEADM_DROPIN = '/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf';

function scan(root: string, benchmark = 'cis-1.12'): CheckResult[] {
  return scanNode({ hostRoot: root, nodeName: 'n', benchmark, role: 'worker', level: 2, exclude: [], benchmarks })
    .report.checks;
}
const check = (checks: CheckResult[], id: string) => checks.find((c) => c.id === id) as CheckResult;

/** The kubeadm node of the model with one unit path replaced by something that cannot be read. */
function nodeWith(t: Test, spoil: (b: NodeRootBuilder) => void, model = new NodeModel()) {
  const b = model.build(`${tempDir(t)}/node`);
  spoil(b);
  return b.root;
}

const asDirectory = (path: string) => (b: NodeRootBuilder) => {
  rmSync(b.path(path), { force: true });
  b.dir(path, { mode: 0o600 });
};

t.test('on the model node the kubelet unit checks pass (the baseline the cases below spoil)', async (t) => {
  const checks = scan(nodeWith(t, () => undefined));
  t.equal(check(checks, '4.1.1').status, 'PASS');
  t.equal(check(checks, '4.1.2').status, 'PASS');
});

for (const [name, spoil, why] of [
  [
    'the drop-in holding ExecStart is a directory',
    asDirectory(KUBEADM_DROPIN),
    /10-kubeadm\.conf exists but cannot be read: .*not a regular file/,
  ],
  [
    'the unit file itself is a directory',
    asDirectory(UNIT),
    /kubelet\.service exists but cannot be read: .*not a regular file/,
  ],
  [
    'the unit is a link that leaves the host root',
    (b: NodeRootBuilder) => b.symlink(UNIT, '../../../../../../../../etc/hostname'),
    /kubelet\.service exists but cannot be read: .*climbs above the host root/,
  ],
  [
    'a drop-in directory is a link that leaves the host root',
    (b: NodeRootBuilder) => b.symlink('/etc/systemd/system/kubelet.service.d', '../../../../../../../tmp'),
    /kubelet\.service\.d exists but cannot be read/,
  ],
] as const) {
  t.test(`an unreadable kubelet unit FAILs the unit file checks with the reason: ${name}`, async (t) => {
    const root = nodeWith(t, spoil);
    const checks = scan(root);
    for (const id of ['4.1.1', '4.1.2']) {
      const c = check(checks, id);
      t.equal(c.status, 'FAIL', `${id} FAIL, not SKIP (${c.skipReason ?? c.evidence})`);
      t.equal(c.actual, 'unknown');
      t.match(c.evidence, why);
    }
    const property = check(scan(root, 'unit-1.0'), '4.2.15');
    t.equal(property.status, 'FAIL', 'a systemd property of an unreadable unit is unknown, not "unset"');
    t.match(property.evidence, why);
  });
}

t.test(
  'with the kubelet not running, an unreadable unit makes its settings unknown (FAIL), not "no kubelet" (SKIP)',
  async (t) => {
    const model = new NodeModel();
    // Not running: the kubelet's command line would come from its unit.
    const root = nodeWith(
      t,
      (b) => {
        rmSync(b.path('/proc/901'), { recursive: true, force: true });
        asDirectory(KUBEADM_DROPIN)(b);
      },
      model,
    );
    const c = check(scan(root), '4.2.1');
    t.equal(c.status, 'FAIL', c.skipReason ?? c.evidence);
    t.match(c.evidence, /10-kubeadm\.conf exists but cannot be read/);
  },
);

t.test('a masked kubelet unit (a link to /dev/null) is no unit, not an unreadable one', async (t) => {
  const root = nodeWith(t, (b) => {
    b.file('/dev/null', '', { mode: 0o666 });
    b.symlink('/etc/systemd/system/kubelet.service', '/dev/null');
  });
  const checks = scan(root);
  t.equal(check(checks, '4.1.1').status, 'SKIP');
  t.match(check(checks, '4.1.1').skipReason, /no kubelet systemd unit/);
  t.equal(check(scan(root, 'unit-1.0'), '4.2.15').status, 'SKIP');
});
