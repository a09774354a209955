import t from 'tap';
import { parseBenchmark } from '../../../agent/cis/benchmarks.js';
import { scanNode } from '../../../agent/cis/index.js';
import { NodeRootBuilder } from '../../../examples/node-root.js';
import { tempDir } from '../../fixtures/tmp.js';
import type { CheckResult } from '../../../common/scan-report.js';

const BENCH = parseBenchmark(
  `
id: test-1.0
version: 1.0.0
title: a test benchmark
kubernetesVersions: ["1.32"]
checks:
  - { id: "4.1.9", title: config mode, section: "4.1", level: 1, automated: true, role: worker, remediation: chmod 600,
      audit: { type: file-mode, path: "{kubelet-file:config}", mode: "600" } }
  - { id: "4.1.10", title: config owner, section: "4.1", level: 1, automated: true, role: worker, remediation: chown root:root,
      audit: { type: file-owner, path: "{kubelet-file:config}", owner: "root:root" } }
  - { id: "4.1.7", title: client CA mode, section: "4.1", level: 1, automated: true, role: worker, remediation: chmod 644,
      audit: { type: file-mode, path: "{kubelet:authentication.x509.clientCAFile}", mode: "644" } }
  - { id: "4.1.5", title: kubeconfig mode, section: "4.1", level: 1, automated: true, role: worker, remediation: chmod 600,
      audit: { type: file-mode, path: "{kubelet-file:kubeconfig}", mode: "600" } }
  - { id: "4.2.1", title: anonymous auth off, section: "4.2", level: 1, automated: true, role: worker, remediation: set it,
      audit: { type: kubelet, setting: authentication.anonymous.enabled, flag: anonymous-auth, expect: { op: eq, value: "false" } } }
  - { id: "4.2.4", title: read-only port off, section: "4.2", level: 1, automated: false, role: worker, remediation: set it,
      audit: { type: kubelet, setting: readOnlyPort, flag: read-only-port, expect: { op: eq, value: "0" } } }
  - { id: "4.2.5", title: idle timeout, section: "4.2", level: 1, automated: true, role: worker, remediation: set it,
      audit: { type: kubelet, setting: streamingConnectionIdleTimeout, flag: streaming-connection-idle-timeout, expect: { op: gt, value: "0" } } }
  - { id: "4.2.13", title: pid limit, section: "4.2", level: 2, automated: true, role: worker, remediation: set it,
      audit: { type: kubelet, setting: podPidsLimit, flag: pod-max-pids, expect: { op: gt, value: "0" } } }
  - { id: "4.2.9", title: tls files, section: "4.2", level: 1, automated: true, role: worker, remediation: set both,
      audit: { type: all, of: [ { type: kubelet, setting: tlsCertFile, expect: { op: set } }, { type: kubelet, setting: tlsPrivateKeyFile, expect: { op: set } } ] } }
  - { id: "3.1.1", title: no client certs for users, section: "3.1", level: 1, automated: false, role: control-plane, remediation: use OIDC,
      audit: { type: manual, reason: identity is a site decision } }
  - { id: "1.2.1", title: apiserver anonymous off, section: "1.2", level: 1, automated: true, role: control-plane, remediation: set it,
      audit: { type: component-flag, component: kube-apiserver, flag: anonymous-auth, default: "true", expect: { op: eq, value: "false" } } }
  - { id: "1.2.6", title: authz has Node, section: "1.2", level: 1, automated: true, role: control-plane, remediation: add Node,
      audit: { type: component-flag, component: kube-apiserver, flag: authorization-mode, default: AlwaysAllow, expect: { op: has, value: Node } } }
  - { id: "1.1.12", title: etcd data dir owner, section: "1.1", level: 1, automated: true, role: control-plane, remediation: chown etcd:etcd,
      audit: { type: file-owner, path: "{flag:etcd:data-dir|/var/lib/etcd}", owner: "etcd:etcd" } }
`,
  'test.yaml',
);

const KC = (extra: Record<string, unknown>) => ({
  apiVersion: 'kubelet.config.k8s.io/v1beta1',
  kind: 'KubeletConfiguration',
  ...extra,
});

function scan(b: NodeRootBuilder, opts: Partial<Parameters<typeof scanNode>[0]> = {}) {
  return scanNode({
    hostRoot: b.root,
    nodeName: 'n1',
    benchmark: 'test-1.0',
    role: 'auto',
    level: 2,
    exclude: [],
    benchmarks: [BENCH],
    ...opts,
  }).report;
}
const byId = (checks: CheckResult[], id: string) => checks.find((c) => c.id === id) as CheckResult;

function goodWorker(b: NodeRootBuilder): void {
  b.yaml(
    '/var/lib/kubelet/config.yaml',
    KC({
      authentication: { anonymous: { enabled: false }, x509: { clientCAFile: '/etc/kubernetes/pki/ca.crt' } },
      podPidsLimit: 4096,
      tlsCertFile: '/a.crt',
      tlsPrivateKeyFile: '/a.key',
    }),
    { mode: 0o600 },
  );
  b.file('/etc/kubernetes/pki/ca.crt', 'ca', { mode: 0o644 });
  b.file('/etc/kubernetes/kubelet.conf', 'kc', { mode: 0o600 });
  b.process(100, [
    '/usr/bin/kubelet',
    '--config=/var/lib/kubelet/config.yaml',
    '--kubeconfig=/etc/kubernetes/kubelet.conf',
  ]);
}

t.test('a hardened worker passes every worker check and runs no control-plane check', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  goodWorker(b);
  const r = scan(b);
  t.equal(r.nodeRole, 'worker');
  t.same(
    r.checks.map((c) => c.id).sort(),
    ['4.1.10', '4.1.5', '4.1.7', '4.1.9', '4.2.1', '4.2.13', '4.2.4', '4.2.5', '4.2.9'].sort(),
  );
  t.same(
    r.checks.filter((c) => c.status !== 'PASS').map((c) => c.id),
    [],
  );
  t.same(
    r.summary,
    { pass: 8, fail: 0, skip: 0, total: 8, scorePercent: 100 },
    'the unscored 4.2.4 is not in the summary',
  );
});

t.test('every file and setting check fails on a weak worker, with actual and expected', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.yaml(
    '/var/lib/kubelet/config.yaml',
    KC({
      authentication: { anonymous: { enabled: true }, x509: { clientCAFile: '/etc/kubernetes/pki/ca.crt' } },
    }),
    { mode: 0o644, uid: 1000, gid: 1000 },
  );
  b.file('/etc/kubernetes/pki/ca.crt', 'ca', { mode: 0o666 });
  b.file('/etc/kubernetes/kubelet.conf', 'kc', { mode: 0o640 });
  b.process(100, [
    '/usr/bin/kubelet',
    '--config=/var/lib/kubelet/config.yaml',
    '--kubeconfig=/etc/kubernetes/kubelet.conf',
    '--read-only-port=10255',
    // A zero in the config file would be defaulted to 4h (v1beta1 defaulting); a flag is taken as given.
    '--streaming-connection-idle-timeout=0',
  ]);
  const r = scan(b);
  const fails = r.checks
    .filter((c) => c.status === 'FAIL')
    .map((c) => c.id)
    .sort();
  const expectFails = [
    '4.1.5',
    '4.1.7',
    '4.1.9',
    '4.2.1',
    '4.2.13',
    '4.2.4',
    '4.2.5',
    '4.2.9',
    ...(b.ownersFaked ? [] : ['4.1.10']),
  ].sort();
  t.same(fails, expectFails);
  t.equal(byId(r.checks, '4.1.9').actual, '/var/lib/kubelet/config.yaml: 644');
  t.equal(byId(r.checks, '4.1.9').expected, '600 or more restrictive');
  t.equal(byId(r.checks, '4.2.4').actual, '10255');
  t.match(byId(r.checks, '4.2.4').evidence, /flag --read-only-port/);
  t.equal(byId(r.checks, '4.2.4').scored, false, 'manual checks with an audit are evaluated but unscored');
  if (!b.ownersFaked) t.match(byId(r.checks, '4.1.10').actual, /1000:1000/);
});

t.test('a file that does not exist on the node is SKIP not applicable, never PASS or FAIL', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.yaml(
    '/var/lib/kubelet/config.yaml',
    KC({ authentication: { x509: { clientCAFile: '/etc/kubernetes/pki/ca.crt' } } }),
    { mode: 0o600 },
  );
  b.process(100, ['/usr/bin/kubelet', '--config=/var/lib/kubelet/config.yaml']);
  const r = scan(b);
  const ca = byId(r.checks, '4.1.7');
  t.equal(ca.status, 'SKIP');
  t.match(ca.skipReason, /^not applicable: .*ca\.crt does not exist/);
  const kubeconfig = byId(r.checks, '4.1.5');
  t.equal(kubeconfig.status, 'SKIP');
  t.match(kubeconfig.skipReason, /without --kubeconfig/);
});

t.test('a hostile symlink out of the host root FAILs with the reason', async (t) => {
  const dir = tempDir(t);
  const b = new NodeRootBuilder(`${dir}/node`);
  goodWorker(b);
  b.symlink('/etc/kubernetes/kubelet.conf', '../../../../../../etc/shadow');
  const r = scan(b);
  const c = byId(r.checks, '4.1.5');
  t.equal(c.status, 'FAIL');
  t.match(c.actual, /climbs above the host root/);
});

t.test('a kubelet config that cannot be parsed fails the checks that depend on it', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.file('/var/lib/kubelet/config.yaml', 'authentication: [broken', { mode: 0o600 });
  b.process(100, ['/usr/bin/kubelet', '--config=/var/lib/kubelet/config.yaml']);
  const r = scan(b);
  const c = byId(r.checks, '4.2.1');
  t.equal(c.status, 'FAIL', 'never PASS on evidence that could not be read');
  t.equal(c.actual, 'unknown');
  t.match(c.evidence, /not valid YAML/);
  t.equal(byId(r.checks, '4.1.9').status, 'PASS', 'the file mode itself is still readable');
});

t.test('--exclude skips with reason "excluded"; --level 1 drops Level 2 checks', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  goodWorker(b);
  const r = scan(b, { exclude: ['4.2.1', '4.1'], level: 1 });
  t.equal(byId(r.checks, '4.2.1').skipReason, 'excluded');
  t.equal(byId(r.checks, '4.1.9').skipReason, 'excluded', 'a section prefix excludes its checks');
  t.notOk(
    r.checks.some((c) => c.id === '4.2.13'),
    'level 2 check left out',
  );
});

t.test(
  'a control-plane node runs control-plane and worker checks; flags come from the process, else the manifest, else the default',
  async (t) => {
    const b = new NodeRootBuilder(`${tempDir(t)}/node`);
    goodWorker(b);
    b.yaml(
      '/etc/kubernetes/manifests/kube-apiserver.yaml',
      {
        apiVersion: 'v1',
        kind: 'Pod',
        spec: {
          containers: [
            {
              name: 'kube-apiserver',
              image: 'registry.k8s.io/kube-apiserver:v1.32.1',
              command: ['kube-apiserver', '--authorization-mode=Node,RBAC'],
            },
          ],
        },
      },
      { mode: 0o600 },
    );
    b.dir('/var/lib/etcd', { mode: 0o700, uid: 997, gid: 997 });
    const r = scan(b);
    t.equal(r.nodeRole, 'control-plane');
    t.ok(r.checks.some((c) => c.id === '4.2.1') && r.checks.some((c) => c.id === '1.2.1'));
    const anon = byId(r.checks, '1.2.1');
    t.equal(anon.status, 'FAIL', 'kube-apiserver anonymous-auth defaults to true');
    t.match(anon.evidence, /default/);
    t.equal(byId(r.checks, '1.2.6').status, 'PASS');
    t.match(byId(r.checks, '1.2.6').evidence, /kube-apiserver\.yaml/);
    t.equal(byId(r.checks, '3.1.1').status, 'SKIP');
    t.match(byId(r.checks, '3.1.1').skipReason, /^manual: /);
    const etcd = byId(r.checks, '1.1.12');
    t.equal(
      etcd.status,
      b.ownersFaked ? 'FAIL' : 'PASS',
      "etcd:etcd resolved through the node's /etc/passwd (uid 997)",
    );

    // A running process wins over the manifest.
    b.process(300, ['kube-apiserver', '--authorization-mode=AlwaysAllow', '--anonymous-auth=false']);
    const r2 = scan(b);
    t.equal(byId(r2.checks, '1.2.6').status, 'FAIL');
    t.match(byId(r2.checks, '1.2.6').evidence, /pid 300/);
    t.equal(byId(r2.checks, '1.2.1').status, 'PASS');
  },
);

t.test('a node without a kubelet skips every worker check as not applicable', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  const r = scan(b, { role: 'worker' });
  for (const c of r.checks) {
    t.equal(c.status, 'SKIP', `${c.id} skips`);
    t.match(c.skipReason, /^not applicable: /);
  }
  t.equal(r.summary.scorePercent, 0);
});

t.test(
  'a client CA given only by --client-ca-file is the file 4.1.7 checks, as 4.2.3 reads the same flag (it used to SKIP "not set")',
  async (t) => {
    for (const [mode, status] of [
      [0o644, 'PASS'],
      [0o666, 'FAIL'],
    ] as const) {
      const b = new NodeRootBuilder(`${tempDir(t)}/node`);
      // The config names another file: the flag wins, as it does for the kubelet.
      b.yaml(
        '/var/lib/kubelet/config.yaml',
        KC({
          authentication: { anonymous: { enabled: false }, x509: { clientCAFile: '/etc/kubernetes/pki/other.crt' } },
        }),
        { mode: 0o600 },
      );
      b.file('/etc/kubernetes/pki/other.crt', 'other', { mode: 0o600 });
      b.file('/etc/kubernetes/pki/flag-ca.crt', 'ca', { mode });
      b.process(100, [
        '/usr/bin/kubelet',
        '--config=/var/lib/kubelet/config.yaml',
        '--client-ca-file=/etc/kubernetes/pki/flag-ca.crt',
      ]);
      const ca = byId(scan(b).checks, '4.1.7');
      t.equal(ca.status, status, `mode ${mode.toString(8)}`);
      t.match(ca.actual, /^\/etc\/kubernetes\/pki\/flag-ca\.crt: /);
      t.match(ca.evidence, /flag --client-ca-file/);
    }
    const b = new NodeRootBuilder(`${tempDir(t)}/node`);
    b.yaml('/var/lib/kubelet/config.yaml', KC({}), { mode: 0o600 });
    b.file('/etc/kubernetes/pki/flag-ca.crt', 'ca', { mode: 0o644 });
    b.process(100, [
      '/usr/bin/kubelet',
      '--config=/var/lib/kubelet/config.yaml',
      '--client-ca-file=/etc/kubernetes/pki/flag-ca.crt',
    ]);
    t.equal(byId(scan(b).checks, '4.1.7').status, 'PASS', 'with nothing in the config file at all');
  },
);
