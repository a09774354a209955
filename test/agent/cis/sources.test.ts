import t from 'tap';
import { parseBenchmark } from '../../../agent/cis/benchmarks.js';
import { HostView } from '../../../agent/cis/host.js';
import { scanNode } from '../../../agent/cis/index.js';
import { readKubeletSettings, resolveSetting } from '../../../agent/cis/kubelet.js';
import { listProcesses } from '../../../agent/cis/processes.js';
import { NodeRootBuilder } from '../../../examples/node-root.js';
import { tempDir } from '../../fixtures/tmp.js';
import type { CheckResult } from '../../../common/scan-report.js';

// Where settings come from beyond the plain kubelet: etcd's environment,
// kube-proxy's --config file, systemd unit properties, k3s's embedded kubelet,
// RKE2's release directory, globbing across directories.
const BENCH = parseBenchmark(
  `
id: sources-1.0
version: 1.0.0
title: sources
kubernetesVersions: ["1.31"]
checks:
  - { id: "2.2", title: etcd client cert auth, section: "2", level: 1, automated: true, role: control-plane, remediation: r,
      audit: { type: component-flag, component: etcd, flag: client-cert-auth, default: "false", expect: { op: eq, value: "true" } } }
  - { id: "4.3.1", title: kube-proxy metrics on loopback, section: "4.3", level: 1, automated: true, role: worker, remediation: r,
      audit: { type: component-flag, component: kube-proxy, flag: metrics-bind-address, configField: metricsBindAddress, default: "127.0.0.1:10249",
               expect: { op: matches, value: "^(127\\\\.0\\\\.0\\\\.1|localhost|\\\\[::1\\\\])(:[0-9]+)?$" } } }
  - { id: "4.1.3", title: kube-proxy kubeconfig mode, section: "4.1", level: 1, automated: true, role: worker, remediation: r,
      audit: { type: file-mode, path: "{flag:kube-proxy:kubeconfig|config:kube-proxy:clientConnection.kubeconfig}", mode: "600" } }
  - { id: "4.2.15", title: IPAddressDeny any, section: "4.2", level: 2, automated: false, role: worker, remediation: r,
      audit: { type: systemd-property, unit: kubelet.service, property: IPAddressDeny, expect: { op: eq, value: any } } }
  - { id: "1.1.9", title: cni files, section: "1.1", level: 1, automated: true, role: control-plane, remediation: r,
      audit: { type: file-mode, path: "/var/lib/cni/networks/*/*", mode: "600" } }
`,
  'sources.yaml',
);

const scan = (root: string, role: 'worker' | 'control-plane' | 'auto' = 'auto') =>
  scanNode({
    hostRoot: root,
    nodeName: 'n',
    benchmark: 'sources-1.0',
    role,
    level: 2,
    exclude: [],
    benchmarks: [BENCH],
  });
const check = (checks: CheckResult[], id: string) => checks.find((c) => c.id === id) as CheckResult;

t.test('etcd flags are read from ETCD_* variables of the process when not given as flags', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.process(50, ['etcd', '--data-dir=/var/lib/etcd']);
  b.file('/proc/50/environ', 'PATH=/usr/bin\0ETCD_CLIENT_CERT_AUTH=true\0', { mode: 0o400 });
  const c = check(scan(b.root, 'control-plane').report.checks, '2.2');
  t.equal(c.status, 'PASS');
  t.match(c.evidence, /ETCD_CLIENT_CERT_AUTH in the environment of etcd pid 50/);

  b.process(50, ['etcd', '--client-cert-auth=false']);
  t.equal(check(scan(b.root, 'control-plane').report.checks, '2.2').status, 'FAIL', 'a flag wins over the environment');
});

t.test('etcd environment from a static pod manifest counts too', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.yaml('/etc/kubernetes/manifests/etcd.yaml', {
    apiVersion: 'v1',
    kind: 'Pod',
    spec: {
      containers: [{ name: 'etcd', command: ['etcd'], env: [{ name: 'ETCD_CLIENT_CERT_AUTH', value: 'true' }] }],
    },
  });
  t.equal(check(scan(b.root, 'control-plane').report.checks, '2.2').status, 'PASS');
});

t.test('kube-proxy with --config is judged by its config file, which replaces its flags', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.yaml('/var/lib/kube-proxy/config.conf', {
    kind: 'KubeProxyConfiguration',
    metricsBindAddress: '0.0.0.0:10249',
    clientConnection: { kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf' },
  });
  b.file('/var/lib/kube-proxy/kubeconfig.conf', 'x', { mode: 0o644 });
  b.process(70, ['kube-proxy', '--config=/var/lib/kube-proxy/config.conf', '--metrics-bind-address=127.0.0.1:10249']);
  const checks = scan(b.root, 'worker').report.checks;
  t.equal(check(checks, '4.3.1').status, 'FAIL');
  t.match(check(checks, '4.3.1').evidence, /metricsBindAddress in \/var\/lib\/kube-proxy\/config\.conf/);
  t.equal(check(checks, '4.1.3').status, 'FAIL', 'the kubeconfig named in the config file is checked');
  t.match(check(checks, '4.1.3').actual, /kubeconfig\.conf: 644/);

  b.yaml('/var/lib/kube-proxy/config.conf', {
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf' },
  });
  t.equal(
    check(scan(b.root, 'worker').report.checks, '4.3.1').status,
    'PASS',
    'unset in the file: the loopback default',
  );
  t.equal(check(scan(b.root, 'worker').report.checks, '4.3.1').actual, '127.0.0.1:10249');
});

t.test('kube-proxy without --config is judged by its flags', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.process(70, ['kube-proxy', '--metrics-bind-address=0.0.0.0:10249']);
  t.equal(check(scan(b.root, 'worker').report.checks, '4.3.1').status, 'FAIL');
  t.equal(
    check(scan(b.root, 'worker').report.checks, '4.1.3').status,
    'SKIP',
    'no kubeconfig named anywhere: not applicable',
  );
});

t.test('a systemd property is read from the unit and its drop-ins, a later drop-in winning', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.file('/usr/lib/systemd/system/kubelet.service', '[Service]\nExecStart=/usr/bin/kubelet\n');
  t.equal(check(scan(b.root, 'worker').report.checks, '4.2.15').status, 'FAIL');
  b.file(
    '/etc/systemd/system/kubelet.service.d/50-ip.conf',
    '[Service]\nIPAddressDeny=any\nIPAddressAllow=localhost\n',
  );
  const c = check(scan(b.root, 'worker').report.checks, '4.2.15');
  t.equal(c.status, 'PASS');
  t.match(c.evidence, /50-ip\.conf/);
  b.file('/etc/systemd/system/kubelet.service.d/90-reset.conf', '[Service]\nIPAddressDeny=\n');
  t.equal(check(scan(b.root, 'worker').report.checks, '4.2.15').status, 'FAIL', 'an empty assignment resets the list');
});

t.test('no kubelet unit at all makes the systemd check not applicable', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  const c = check(scan(b.root, 'worker').report.checks, '4.2.15');
  t.equal(c.status, 'SKIP');
  t.match(c.skipReason, /not applicable: no kubelet\.service unit/);
});

t.test('a glob may have wildcards in several path components', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.file('/var/lib/cni/networks/k8s-pod-network/10.0.0.5', 'x', { mode: 0o600 });
  b.file('/var/lib/cni/networks/other/last_reserved_ip.0', 'x', { mode: 0o644 });
  const c = check(scan(b.root, 'control-plane').report.checks, '1.1.9');
  t.equal(c.status, 'FAIL');
  t.match(c.actual, /other\/last_reserved_ip\.0: 644/);
  t.same(new HostView(b.root).glob('/var/lib/cni/networks/*/*'), [
    '/var/lib/cni/networks/k8s-pod-network/10.0.0.5',
    '/var/lib/cni/networks/other/last_reserved_ip.0',
  ]);
});

t.test(
  'the kubelet embedded in k3s: built-in arguments, then --kubelet-arg from config.yaml and the command line',
  async (t) => {
    const b = new NodeRootBuilder(`${tempDir(t)}/node`);
    b.yaml('/etc/rancher/k3s/config.yaml', {
      'kubelet-arg': ['read-only-port=10255', 'streaming-connection-idle-timeout=5m'],
    });
    b.process(400, ['/usr/local/bin/k3s', 'server', '--kubelet-arg=streaming-connection-idle-timeout=10m']);
    const host = new HostView(b.root);
    const s = readKubeletSettings(host, listProcesses(host));
    t.equal(s.origin, 'process');
    t.match(s.originDetail, /embedded in k3s pid 400/);
    t.equal(resolveSetting(s, 'authentication.anonymous.enabled', 'anonymous-auth').value, 'false', 'k3s built-in');
    t.equal(
      resolveSetting(s, 'readOnlyPort', 'read-only-port').value,
      '10255',
      'config.yaml kubelet-arg beats the built-in',
    );
    t.equal(
      resolveSetting(s, 'streamingConnectionIdleTimeout', 'streaming-connection-idle-timeout').value,
      '10m',
      'the command line beats config.yaml',
    );
    t.equal(scan(b.root).report.nodeRole, 'control-plane', 'k3s server runs the control plane');
  },
);

t.test('k3s since v1.30 keeps kubelet defaults in a --config-dir drop-in', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.yaml('/var/lib/rancher/k3s/agent/etc/kubelet.conf.d/00-k3s-defaults.conf', {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    podPidsLimit: 2048,
  });
  b.process(401, ['/usr/local/bin/k3s', 'agent']);
  const host = new HostView(b.root);
  const s = readKubeletSettings(host, listProcesses(host));
  t.equal(resolveSetting(s, 'podPidsLimit', 'pod-max-pids').value, '2048');
  t.equal(scan(b.root).report.nodeRole, 'worker');
});

t.test('--benchmark auto reads the Kubernetes version of an RKE2 node from its release directory', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.dir('/var/lib/rancher/rke2/data/v1.31.4-rke2r1-8a9d8f1e2c3b');
  const r = scanNode({ hostRoot: b.root, nodeName: 'n', benchmark: 'auto', role: 'worker', level: 2, exclude: [] });
  t.equal(r.kubernetesVersion, '1.31.4');
  t.equal(r.report.benchmark.id, 'cis-1.11');
});

t.test('--kubernetes-version picks the benchmark when the node does not show its version', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  const r = scanNode({
    hostRoot: b.root,
    nodeName: 'n',
    benchmark: 'auto',
    role: 'worker',
    level: 2,
    exclude: [],
    kubernetesVersion: 'v1.28.9',
  });
  t.equal(r.report.benchmark.id, 'cis-1.10');
});
