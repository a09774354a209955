import t from 'tap';
import { loadBenchmarks } from '../../../agent/cis/benchmarks.js';
import { HostView } from '../../../agent/cis/host.js';
import { scanNode } from '../../../agent/cis/index.js';
import { readKubeletSettings, resolveSetting } from '../../../agent/cis/kubelet.js';
import { listProcesses } from '../../../agent/cis/processes.js';
import { NodeRootBuilder } from '../../../examples/node-root.js';
import type { CheckResult } from '../../../common/scan-report.js';
import {
  addApiServerFlags,
  buildK3sServer,
  buildKindNode,
  KIND_KUBELET_CONFIG,
  KIND_KUBE_PROXY_CONFIG,
  DOCS_AUDIT_POLICY,
  encryptionConfig,
  buildKubeadmNode,
  buildRke2Server,
  K3S_HARDENED_CONFIG,
  KUBE_PROXY_POD_UID,
  KUBEADM_KUBE_PROXY_CONFIG,
  KUBEADM_KUBELET_CONFIG,
  withFlannel,
  withKubeProxyPod,
} from '../../fixtures/distro-nodes.js';
import { tempDir } from '../../fixtures/tmp.js';

/*
 * Issue 14: checks on node roots laid out as kubeadm, kind, k3s and RKE2 really lay them out (see
 * test/fixtures/distro-nodes.ts for where each layout comes from). Every expected verdict below is worked out by hand
 * from the node's files and the upstream behaviour named next to it.
 */

const BENCHMARKS = loadBenchmarks();

function scan(root: string, benchmark = 'cis-1.12'): CheckResult[] {
  return scanNode({
    hostRoot: root,
    nodeName: 'n1',
    benchmark,
    role: 'auto',
    level: 2,
    exclude: [],
    benchmarks: BENCHMARKS,
  }).report.checks;
}

const check = (checks: CheckResult[], id: string) => checks.find((c) => c.id === id) as CheckResult;

t.test(
  '4.2.5: kubeadm writes streamingConnectionIdleTimeout: 0s; the kubelet runs with the 4h0m0s default',
  async (t) => {
    const dir = tempDir(t);
    // kubeadm's config file: `streamingConnectionIdleTimeout: 0s`. SetDefaults_KubeletConfiguration replaces a zero
    // duration with 4h, so the kubelet's timeout is 4h0m0s > 0: PASS, and the evidence says why.
    const b = buildKubeadmNode(new NodeRootBuilder(`${dir}/kubeadm`));
    for (const bench of ['cis-1.9', 'cis-1.10', 'cis-1.11', 'cis-1.12']) {
      const c = check(scan(b.root, bench), '4.2.5');
      t.equal(c.status, 'PASS', `${bench} 4.2.5 on a kubeadm node`);
      t.equal(c.actual, '4h0m0s');
      t.match(c.evidence, /config\.yaml sets streamingConnectionIdleTimeout: 0s.*defaulting replaces with 4h0m0s/);
    }
  },
);

t.test('4.2.5: --streaming-connection-idle-timeout=0 on the command line really is 0 and FAILs', async (t) => {
  const dir = tempDir(t);
  const b = buildKubeadmNode(new NodeRootBuilder(`${dir}/kubeadm-flag`));
  // kubeadm passes extra kubelet flags through KUBELET_EXTRA_ARGS (/etc/default/kubelet); the running kubelet shows it.
  b.process(901, [
    '/usr/bin/kubelet',
    '--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf',
    '--kubeconfig=/etc/kubernetes/kubelet.conf',
    '--config=/var/lib/kubelet/config.yaml',
    '--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock',
    '--streaming-connection-idle-timeout=0',
  ]);
  const c = check(scan(b.root), '4.2.5');
  t.equal(c.status, 'FAIL', 'flags are parsed over the defaulted config: 0 stays 0');
  t.equal(c.actual, '0');
  t.match(c.evidence, /flag --streaming-connection-idle-timeout/);
});

t.test('4.2.5: a zero in a --config-dir drop-in is a zero (drop-ins merge over the defaulted file)', async (t) => {
  const dir = tempDir(t);
  const b = buildKubeadmNode(new NodeRootBuilder(`${dir}/kubeadm-dropin`));
  b.file(
    '/etc/kubernetes/kubelet.conf.d/50-idle.conf',
    'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstreamingConnectionIdleTimeout: 0s\n',
  );
  b.process(901, [
    '/usr/bin/kubelet',
    '--kubeconfig=/etc/kubernetes/kubelet.conf',
    '--config=/var/lib/kubelet/config.yaml',
    '--config-dir=/etc/kubernetes/kubelet.conf.d',
  ]);
  const c = check(scan(b.root), '4.2.5');
  t.equal(c.status, 'FAIL');
  t.equal(c.actual, '0s');
});

t.test(
  'zero values in the kubeadm config file: defaulted where v1beta1 defaults them, kept where it does not',
  async (t) => {
    const dir = tempDir(t);
    // readOnlyPort has no defaulting (0 = off); eventRecordQPS is a pointer (an explicit 0 stays 0 = no limit);
    // podPidsLimit is a pointer whose negative values become -1; eventBurst and the webhook cache TTL default on zero.
    const config = KUBEADM_KUBELET_CONFIG.replace(
      'rotateCertificates: true\n',
      'rotateCertificates: true\nreadOnlyPort: 0\neventRecordQPS: 0\neventBurst: 0\npodPidsLimit: -5\n',
    );
    const b = buildKubeadmNode(new NodeRootBuilder(`${dir}/kubeadm-zeros`), config);
    const host = new HostView(b.root);
    const k = readKubeletSettings(host, listProcesses(host));
    const value = (s: string, f?: string) => resolveSetting(k, s, f).value;
    t.equal(value('readOnlyPort', 'read-only-port'), '0');
    t.equal(value('eventRecordQPS', 'event-qps'), '0');
    t.equal(value('eventBurst', 'event-burst'), '100');
    t.equal(value('podPidsLimit', 'pod-max-pids'), '-1');
    t.equal(value('authentication.webhook.cacheTTL'), '2m0s');
    t.equal(value('syncFrequency'), '1m0s');
    t.equal(value('nodeStatusUpdateFrequency'), '10s');
    t.equal(value('imageMinimumGCAge'), '2m0s');
    t.equal(value('healthzPort'), '10248', 'written by kubeadm, not zero');
    const scanned = scan(b.root);
    t.equal(check(scanned, '4.2.4').status, 'PASS', '4.2.4 read-only port 0 stays 0');
    t.equal(check(scanned, '4.2.8').status, 'PASS', '4.2.8 eventRecordQPS 0 >= 0');
    t.equal(check(scanned, '4.2.13').status, 'FAIL', '4.2.13 podPidsLimit -1 is not > 0');
  },
);

const KP_VOLUME = `/var/lib/kubelet/pods/${KUBE_PROXY_POD_UID}/volumes/kubernetes.io~configmap/kube-proxy`;

t.test(
  'kube-proxy in a kubeadm pod: its ConfigMap is read from the kubelet pod volume its mountinfo names',
  async (t) => {
    const dir = tempDir(t);
    const b = withKubeProxyPod(buildKubeadmNode(new NodeRootBuilder(`${dir}/kubeadm-kp`)), { mountinfo: 'host-fs' });
    const checks = scan(b.root);
    // 4.3.1: config.conf in the ConfigMap has metricsBindAddress: "" -> kube-proxy's default 127.0.0.1:10249 -> PASS.
    const m = check(checks, '4.3.1');
    t.equal(m.status, 'PASS');
    t.equal(m.actual, '127.0.0.1:10249');
    // 4.1.3: clientConnection.kubeconfig /var/lib/kube-proxy/kubeconfig.conf is, on the host, the volume's
    // kubeconfig.conf, written 0644 (ConfigMap volume defaultMode 420): more than 600, naming the real file.
    const mode = check(checks, '4.1.3');
    t.equal(mode.status, 'FAIL');
    t.equal(mode.actual, `${KP_VOLUME}/kubeconfig.conf: 644`);
    t.match(mode.evidence, /\/var\/lib\/kube-proxy\/kubeconfig\.conf in kube-proxy's pod is/);
    // 4.1.4: the kubelet writes the volume as root -> root:root -> PASS.
    const owner = check(checks, '4.1.4');
    if (b.ownersFaked) t.equal(owner.status, 'FAIL');
    else t.equal(owner.status, 'PASS');
  },
);

t.test(
  'kube-proxy in a kind pod: /var is a Docker volume, the mount root names it; still read from the pod volume',
  async (t) => {
    const dir = tempDir(t);
    const config = KUBEADM_KUBE_PROXY_CONFIG.replace('metricsBindAddress: ""', 'metricsBindAddress: 0.0.0.0:10249');
    const b = withKubeProxyPod(buildKubeadmNode(new NodeRootBuilder(`${dir}/kind-kp`)), { mountinfo: 'kind', config });
    const m = check(scan(b.root), '4.3.1');
    // metricsBindAddress 0.0.0.0:10249 is not localhost -> FAIL, with the value read from the ConfigMap volume.
    t.equal(m.status, 'FAIL');
    t.equal(m.actual, '0.0.0.0:10249');
    t.match(
      m.evidence,
      new RegExp(`metricsBindAddress in ${KP_VOLUME}/config.conf \\(/var/lib/kube-proxy/config.conf in the pod\\)`),
    );
  },
);

t.test(
  "a kind node: kind's kubelet and kube-proxy settings, read from the config file and the pod volume",
  async (t) => {
    const dir = tempDir(t);
    t.not(KIND_KUBELET_CONFIG, KUBEADM_KUBELET_CONFIG, "kind's fields are in the kubelet config");
    t.match(KIND_KUBELET_CONFIG, 'cgroupRoot: /kubelet\n');
    t.match(KIND_KUBE_PROXY_CONFIG, 'mode: iptables\n');
    const checks = scan(buildKindNode(new NodeRootBuilder(`${dir}/kind`)).root);
    // kubeadm's 0s idle timeout: the kubelet's 4h default applies -> PASS.
    t.equal(check(checks, '4.2.5').status, 'PASS');
    t.equal(check(checks, '4.2.5').actual, '4h0m0s');
    t.equal(check(checks, '4.2.1').status, 'PASS', 'anonymous auth off in the kubeadm config');
    // metricsBindAddress "" in kind's config.conf: kube-proxy's 127.0.0.1:10249 default -> PASS, read in the pod
    // volume.
    const m = check(checks, '4.3.1');
    t.equal(m.status, 'PASS');
    t.equal(m.actual, '127.0.0.1:10249');
  },
);

t.test(
  'kube-proxy in a pod whose mounts the agent cannot read: 4.1.3, 4.1.4, 4.3.1 SKIP with the reason, never FAIL',
  async (t) => {
    const dir = tempDir(t);
    const b = withKubeProxyPod(buildKubeadmNode(new NodeRootBuilder(`${dir}/kp-hidden`)), { mountinfo: 'unreadable' });
    const checks = scan(b.root);
    for (const id of ['4.1.3', '4.1.4', '4.3.1']) {
      const c = check(checks, id);
      t.equal(c.status, 'SKIP', id);
      t.match(c.skipReason, /kube-proxy runs in a pod; its config is in the kube-proxy ConfigMap, not on the host/, id);
    }
  },
);

t.test('1.1.9/1.1.10: the CNI state files under /var/lib/cni/networks are audited with /etc/cni/net.d', async (t) => {
  const dir = tempDir(t);
  // Every CIS version here (1.9-1.12) keeps the IDs 1.1.9 (modes) and 1.1.10 (owners) for the CNI files.
  const good = withFlannel(buildKubeadmNode(new NodeRootBuilder(`${dir}/good`)), { conf: 0o600, state: 0o600 });
  // A state file at 0644 with the conflist at 0600: only the state directory shows the problem.
  const loose = withFlannel(buildKubeadmNode(new NodeRootBuilder(`${dir}/loose`)), { conf: 0o600, state: 0o644 });
  for (const bench of ['cis-1.9', 'cis-1.10', 'cis-1.11', 'cis-1.12']) {
    const g = scan(good.root, bench);
    t.equal(check(g, '1.1.9').status, 'PASS', `${bench} 1.1.9 all 600`);
    t.match(check(g, '1.1.9').actual, /\/var\/lib\/cni\/networks\/cbr0\/10\.244\.0\.2: 600/);
    if (!good.ownersFaked) t.equal(check(g, '1.1.10').status, 'PASS', `${bench} 1.1.10 all root:root`);
    const l = check(scan(loose.root, bench), '1.1.9');
    t.equal(l.status, 'FAIL', `${bench} 1.1.9 a 644 state file`);
    t.match(l.actual, /\/etc\/cni\/net\.d\/10-flannel\.conflist: 600/);
    t.match(l.actual, /\/var\/lib\/cni\/networks\/cbr0\/10\.244\.0\.2: 644/);
  }
});

t.test('1.1.9: a node with no CNI state directory is judged on /etc/cni/net.d alone', async (t) => {
  const dir = tempDir(t);
  // buildControlPlane writes /etc/cni/net.d/10-calico.conflist at 0600 and no /var/lib/cni/networks (calico-ipam).
  const b = buildKubeadmNode(new NodeRootBuilder(`${dir}/calico`));
  const c = check(scan(b.root), '1.1.9');
  t.equal(c.status, 'PASS');
  t.equal(c.actual, '/etc/cni/net.d/10-calico.conflist: 600');
});

const KUBELET_ARGV = [
  '/usr/bin/kubelet',
  '--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf',
  '--kubeconfig=/etc/kubernetes/kubelet.conf',
  '--config=/var/lib/kubelet/config.yaml',
  '--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock',
];

t.test(
  '4.2.11: the RotateKubeletServerCertificate gate decides; serverTLSBootstrap counts only with it on',
  async (t) => {
    const dir = tempDir(t);
    // RotateKubeletServerCertificate: alpha (default false) in 1.7, beta and default true since 1.12
    // (pkg/features/kube_features.go). The kubelet rotates its serving certificate only with serverTLSBootstrap true
    // and the gate on; flags' gates win gate by gate over the config's (kubeletConfigFlagPrecedence).
    const cases: {
      name: string;
      config?: string;
      flags?: string[];
      status: string;
      actual: string;
      evidence: RegExp;
    }[] = [
      {
        name: 'kubeadm as written: no gate set -> default true',
        status: 'PASS',
        actual: 'true',
        evidence: /feature gate default/,
      },
      {
        name: 'serverTLSBootstrap: true with the gate turned off in the config file -> no rotation',
        config: 'serverTLSBootstrap: true\nfeatureGates:\n  RotateKubeletServerCertificate: false\n',
        status: 'FAIL',
        actual: 'false',
        evidence: /config\.yaml/,
      },
      {
        name: 'serverTLSBootstrap: true with --feature-gates=RotateKubeletServerCertificate=False (ParseBool)',
        config: 'serverTLSBootstrap: true\n',
        flags: ['--feature-gates=RotateKubeletServerCertificate=False'],
        status: 'FAIL',
        actual: 'false',
        evidence: /flag --feature-gates/,
      },
      {
        name: 'the flag turns the gate back on over the config file',
        config: 'featureGates:\n  RotateKubeletServerCertificate: false\n',
        flags: ['--feature-gates=RotateKubeletServerCertificate=true'],
        status: 'PASS',
        actual: 'true',
        evidence: /flag --feature-gates/,
      },
      {
        name: 'repeated --feature-gates accumulate: a later flag with other gates keeps the earlier false',
        flags: ['--feature-gates=RotateKubeletServerCertificate=false', '--feature-gates=NodeSwap=true'],
        status: 'FAIL',
        actual: 'false',
        evidence: /flag --feature-gates/,
      },
    ];
    for (const [i, c] of cases.entries()) {
      const b = buildKubeadmNode(new NodeRootBuilder(`${dir}/n${i}`), KUBEADM_KUBELET_CONFIG + (c.config ?? ''));
      b.process(901, [...KUBELET_ARGV, ...(c.flags ?? [])]);
      for (const bench of ['cis-1.9', 'cis-1.12']) {
        const r = check(scan(b.root, bench), '4.2.11');
        t.equal(r.status, c.status, `${bench}: ${c.name}`);
        t.equal(r.actual, c.actual, `${bench}: ${c.name}`);
        t.match(r.evidence, c.evidence, `${bench}: ${c.name}`);
      }
    }
  },
);

t.test(
  'k3s server: control-plane checks read k3s built-ins and --kube-*-arg from config.yaml and the command line',
  async (t) => {
    const dir = tempDir(t);
    const b = buildK3sServer(new NodeRootBuilder(`${dir}/k3s`), {
      config: K3S_HARDENED_CONFIG,
      // The command line comes after config.yaml: it turns API server profiling back on.
      extraArgs: ['--kube-apiserver-arg=profiling=true'],
    });
    const checks = scan(b.root);
    const expected: [string, string, string][] = [
      ['1.2.1', 'PASS', 'false'], // anonymous-auth=false: k3s built-in
      ['1.2.15', 'FAIL', 'true'], // profiling: built-in false, config.yaml silent, command line profiling=true
      ['1.2.16', 'PASS', '/var/lib/rancher/k3s/server/logs/audit.log'], // config.yaml kube-apiserver-arg
      ['1.2.17', 'PASS', '30'], // audit-log-maxage=30 >= 30
      ['1.2.27', 'PASS', '/var/lib/rancher/k3s/server/cred/encryption-config.json'], // secrets-encryption: true
      ['1.3.1', 'PASS', '10'], // config.yaml kube-controller-manager-arg
      ['1.4.1', 'PASS', 'false'], // scheduler profiling=false: k3s built-in
    ];
    for (const [id, status, actual] of expected) {
      const c = check(checks, id);
      t.equal(c.status, status, `${id} ${c.title}: ${c.skipReason ?? c.evidence}`);
      t.equal(c.actual, actual, id);
      t.match(c.evidence, /embedded in k3s server pid 1201/, id);
    }
    // The embedded kubelet still takes kubelet-arg from the same file.
    t.equal(check(checks, '4.2.5').actual, '5m');
  },
);

t.test('k3s server with a config.yaml.d drop-in: key replaces the list, key+ appends to it', async (t) => {
  const dir = tempDir(t);
  const b = buildK3sServer(new NodeRootBuilder(`${dir}/k3s-d`), {
    config: 'kube-apiserver-arg:\n  - "audit-log-maxage=5"\n  - "audit-log-path=/var/log/a.log"\n',
  });
  b.file('/etc/rancher/k3s/config.yaml.d/10-audit.yaml', 'kube-apiserver-arg:\n  - "audit-log-maxage=40"\n');
  b.file('/etc/rancher/k3s/config.yaml.d/20-more.yaml', 'kube-apiserver-arg+:\n  - "audit-log-maxbackup=10"\n');
  const checks = scan(b.root);
  t.equal(check(checks, '1.2.17').actual, '40', '10-audit.yaml replaced the list');
  t.equal(check(checks, '1.2.16').status, 'FAIL', 'audit-log-path went with the replaced list');
  t.equal(check(checks, '1.2.18').actual, '10', 'key+ appended');
});

t.test('1.2.28: the EncryptionConfiguration named by --encryption-provider-config is read and judged', async (t) => {
  const dir = tempDir(t);
  const ENC = '/etc/kubernetes/enc/enc.yaml';
  const node = (name: string, file: string | undefined, flag = true) => {
    const b = buildKubeadmNode(new NodeRootBuilder(`${dir}/${name}`));
    if (file !== undefined) b.file(ENC, file, { mode: 0o600 });
    if (flag) addApiServerFlags(b, [`--encryption-provider-config=${ENC}`]);
    return b;
  };
  const cases: [string, NodeRootBuilder, string, RegExp][] = [
    // aescbc first: new Secrets are written encrypted; identity after it only reads old plain ones.
    [
      'aescbc then identity',
      node('aescbc', encryptionConfig(['aescbc', 'identity'])),
      'PASS',
      /secrets.*aescbc, identity/,
    ],
    ['kms first', node('kms', encryptionConfig(['kms', 'identity'])), 'PASS', /kms, identity/],
    // identity first: Secrets are written in plain text whatever follows.
    ['identity first', node('identity', encryptionConfig(['identity', 'aesgcm'])), 'FAIL', /identity, aesgcm/],
    ['flag names a missing file', node('missing', undefined), 'FAIL', /unknown/],
    ['no flag', node('noflag', undefined, false), 'FAIL', /--encryption-provider-config not set/],
  ];
  for (const bench of ['cis-1.9', 'cis-1.12']) {
    for (const [name, b, status, actual] of cases) {
      const c = check(scan(b.root, bench), '1.2.28');
      t.equal(c.status, status, `${bench} ${name}: ${c.evidence}`);
      t.match(c.actual, actual, `${bench} ${name}`);
      t.equal(c.scored, false, 'Manual in CIS: unscored');
    }
  }
  const missing = check(scan(cases[3]![1].root), '1.2.28');
  t.match(missing.evidence, /enc\.yaml \(named by kube-apiserver pid 2101\) does not exist on the host/);
});

t.test(
  '3.2.2: the audit Policy named by --audit-policy-file: secrets, configmaps, tokenreviews logged at Metadata',
  async (t) => {
    const dir = tempDir(t);
    const POLICY = '/etc/kubernetes/audit-policy.yaml';
    const node = (name: string, policy: string) =>
      addApiServerFlags(buildKubeadmNode(new NodeRootBuilder(`${dir}/${name}`)).file(POLICY, policy, { mode: 0o600 }), [
        `--audit-policy-file=${POLICY}`,
        '--audit-log-path=/var/log/kubernetes/audit/audit.log',
      ]);
    // The docs' example, worked by hand: a get of a Secret in "default" skips rules 1-6 (pods; pods/log; named
    // configmap;
    // user system:kube-proxy; non-resource URLs only; namespace kube-system) and meets rule 7 (secrets, configmaps:
    // Metadata); a ConfigMap in "default" likewise rule 7; a TokenReview (authentication.k8s.io) matches no group until
    // the catch-all rule 9 (Metadata).
    const docs = check(scan(node('docs', DOCS_AUDIT_POLICY).root), '3.2.2');
    t.equal(docs.status, 'PASS', docs.evidence);
    t.equal(docs.actual, 'secrets: Metadata (rule 7), configmaps: Metadata (rule 7), tokenreviews: Metadata (rule 9)');
    // Everything at RequestResponse records Secret data and tokens in the log: CIS wants only Metadata for these.
    const all = check(
      scan(node('rr', 'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: RequestResponse\n').root),
      '3.2.2',
    );
    t.equal(all.status, 'FAIL');
    t.match(all.evidence, /secrets are logged at RequestResponse/);
    // No rules: nothing is logged.
    const none = check(scan(node('empty', 'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n').root), '3.2.2');
    t.equal(none.status, 'FAIL');
    t.equal(none.actual, 'no rules');
    // A policy that logs secrets only for kube-system leaves the ordinary request unlogged.
    const narrow = check(
      scan(
        node(
          'narrow',
          'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n    namespaces: [kube-system]\n',
        ).root,
      ),
      '3.2.2',
    );
    t.equal(narrow.status, 'FAIL');
    t.match(narrow.actual, /secrets: None \(no rule matches\)/);
    t.equal(docs.scored, false, 'Manual in CIS: unscored');
  },
);

t.test('k3s server hardened as the k3s guide says: its encryption config and audit policy are read', async (t) => {
  const dir = tempDir(t);
  const b = buildK3sServer(new NodeRootBuilder(`${dir}/k3s-files`), { config: K3S_HARDENED_CONFIG });
  // k3s --secrets-encryption writes /var/lib/rancher/k3s/server/cred/encryption-config.json (JSON, aescbc first);
  // the hardening guide's audit policy is a single `level: Metadata` rule.
  b.file(
    '/var/lib/rancher/k3s/server/cred/encryption-config.json',
    '{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1","resources":[{"resources":["secrets"],"providers":[{"aescbc":{"keys":[{"name":"aescbckey","secret":"c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/"}]}},{"identity":{}}]}]}',
    { mode: 0o600 },
  );
  b.file(
    '/var/lib/rancher/k3s/server/audit.yaml',
    'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n',
    {
      mode: 0o600,
    },
  );
  const checks = scan(b.root);
  t.equal(check(checks, '1.2.28').status, 'PASS', check(checks, '1.2.28').evidence);
  t.equal(check(checks, '3.2.2').status, 'PASS', check(checks, '3.2.2').evidence);
  t.match(
    check(checks, '3.2.2').evidence,
    /--audit-policy-file=\/var\/lib\/rancher\/k3s\/server\/audit\.yaml in kube-apiserver embedded in k3s/,
  );
});

t.test(
  'RKE2 server: static pods under /var/lib/rancher/rke2, kube-proxy kubeconfig on the host, default policies',
  async (t) => {
    const dir = tempDir(t);
    const b = buildRke2Server(new NodeRootBuilder(`${dir}/rke2`));
    const checks = scan(b.root);
    // Secrets encryption is on by default with aescbc first -> PASS.
    t.equal(check(checks, '1.2.28').status, 'PASS', check(checks, '1.2.28').evidence);
    // RKE2's default audit policy is one `level: None` rule: secrets, configmaps, tokenreviews unlogged -> FAIL.
    const audit = check(checks, '3.2.2');
    t.equal(audit.status, 'FAIL');
    t.equal(audit.actual, 'secrets: None (rule 1), configmaps: None (rule 1), tokenreviews: None (rule 1)');
    // kube-proxy's --kubeconfig is a host path (same path in and out of the pod): read as is, 0600 -> PASS.
    const kp = check(checks, '4.1.3');
    t.equal(kp.status, 'PASS');
    t.equal(kp.actual, '/var/lib/rancher/rke2/agent/kubeproxy.kubeconfig: 600');
    // Static pod manifests are judged where the kubelet's staticPodPath (from the RKE2 drop-in) puts them: 0644 in
    // the captured RKE2 server -> FAIL against 600; root:root -> PASS.
    const DROPIN = '/var/lib/rancher/rke2/agent/etc/kubelet.conf.d/00-rke2-defaults.conf';
    const manifest = check(checks, '1.1.1');
    t.equal(manifest.status, 'FAIL');
    t.equal(manifest.actual, '/var/lib/rancher/rke2/agent/pod-manifests/kube-apiserver.yaml: 644');
    t.equal(check(checks, '1.1.2').status, 'PASS');
    t.equal(check(checks, '1.1.7').actual, '/var/lib/rancher/rke2/agent/pod-manifests/etcd.yaml: 644');
    // The kubelet runs with --config-dir and no --config: its settings and config files are the drop-ins.
    for (const [id, actual] of [
      ['4.2.1', 'false'], // authentication.anonymous.enabled: false
      ['4.2.2', 'Webhook'],
      ['4.2.3', '/var/lib/rancher/rke2/agent/client-ca.crt'],
      ['4.2.5', '4h0m0s'],
    ]) {
      const c = check(checks, id as string);
      t.equal(c.status, 'PASS', id);
      t.equal(c.actual, actual, id);
      t.equal(c.evidence, DROPIN, id);
    }
    t.equal(check(checks, '4.2.4').evidence, 'flag --read-only-port (pid 1150)', 'readOnlyPort 0 comes as a flag');
    t.equal(check(checks, '4.1.7').actual, '/var/lib/rancher/rke2/agent/client-ca.crt: 644');
    t.equal(check(checks, '4.1.9').status, 'PASS');
    t.equal(check(checks, '4.1.9').actual, `${DROPIN}: 600`);
    t.equal(check(checks, '4.1.10').actual, `${DROPIN}: root:root (0:0)`);
    // etcd runs from its --config-file: section 2 reads that file; the data dir is root-owned here -> 1.1.12 FAIL.
    const ETCD_CONFIG = '/var/lib/rancher/rke2/server/db/etcd/config';
    for (const id of ['2.1', '2.2', '2.4', '2.5', '2.7']) {
      t.equal(check(checks, id).status, 'PASS', id);
      t.match(check(checks, id).evidence, `${ETCD_CONFIG} (--config-file of etcd pid 2401)`, id);
    }
    t.equal(check(checks, '1.1.11').status, 'PASS');
    t.equal(check(checks, '1.1.12').status, 'FAIL');
    t.equal(check(checks, '1.1.12').actual, '/var/lib/rancher/rke2/server/db/etcd: root:root (0:0)');
    t.equal(check(checks, '1.2.23').status, 'PASS');
  },
);
