import { join } from 'node:path';
import { NodeRootBuilder } from './node-root.js';

/**
 * The demo's example nodes, shaped like kubeadm clusters: a hardened worker, a
 * weak worker (the mistakes seen in real clusters), and a control-plane node.
 */
export const EXAMPLE_NODES = ['worker-hardened', 'worker-weak', 'control-plane-1'] as const;
export type ExampleNode = (typeof EXAMPLE_NODES)[number];

const KUBEADM_DROPIN = `# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`;

const KUBELET_UNIT = `[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`;

const KUBECONFIG = (user: string) => `apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTi...
    server: https://10.0.0.10:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: ${user}
  name: ${user}@kubernetes
current-context: ${user}@kubernetes
users:
- name: ${user}
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
`;

const STRONG_CIPHERS = [
  'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
  'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
  'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
  'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
];

/** What every kubeadm node has: OS files, the kubelet unit and kubeconfig. */
function kubeadmBase(
  b: NodeRootBuilder,
  opts: { unitMode: number; kubeconfigMode: number; kernel: string; os: string },
): void {
  b.file(
    '/etc/os-release',
    `PRETTY_NAME="${opts.os}"\nNAME="${opts.os.split(' ')[0]}"\nID=${opts.os.split(' ')[0]?.toLowerCase()}\n`,
  );
  b.file('/proc/sys/kernel/osrelease', `${opts.kernel}\n`, { mode: 0o444 });
  b.file('/usr/lib/systemd/system/kubelet.service', KUBELET_UNIT, { mode: opts.unitMode });
  b.file('/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf', KUBEADM_DROPIN, { mode: opts.unitMode });
  b.file(
    '/var/lib/kubelet/kubeadm-flags.env',
    'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.10"\n',
    { mode: 0o644 },
  );
  b.file('/etc/kubernetes/kubelet.conf', KUBECONFIG('system:node'), { mode: opts.kubeconfigMode });
  b.file('/etc/kubernetes/pki/ca.crt', '-----BEGIN CERTIFICATE-----\nMIIC...\n-----END CERTIFICATE-----\n', {
    mode: 0o644,
  });
  b.dir('/etc/kubernetes/manifests', { mode: 0o755 });
}

const KUBELET_ARGV = (extra: string[] = []) => [
  '/usr/bin/kubelet',
  '--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf',
  '--kubeconfig=/etc/kubernetes/kubelet.conf',
  '--config=/var/lib/kubelet/config.yaml',
  '--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock',
  '--pod-infra-container-image=registry.k8s.io/pause:3.10',
  ...extra,
];

/** A kubeadm worker hardened per the benchmark, with part of its settings in a --config-dir drop-in. */
export function buildHardenedWorker(b: NodeRootBuilder): void {
  kubeadmBase(b, { unitMode: 0o600, kubeconfigMode: 0o600, kernel: '6.8.0-49-generic', os: 'Ubuntu 24.04.1 LTS' });
  b.yaml(
    '/var/lib/kubelet/config.yaml',
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true, cacheTTL: '0s' },
        x509: { clientCAFile: '/etc/kubernetes/pki/ca.crt' },
      },
      authorization: { mode: 'Webhook' },
      cgroupDriver: 'systemd',
      clusterDNS: ['10.96.0.10'],
      clusterDomain: 'cluster.local',
      rotateCertificates: true,
      serverTLSBootstrap: true,
      staticPodPath: '/etc/kubernetes/manifests',
      streamingConnectionIdleTimeout: '5m',
    },
    { mode: 0o600 },
  );
  // Hardening that kubeadm does not template lives in a drop-in (KEP-3983).
  b.yaml(
    '/etc/kubernetes/kubelet.conf.d/50-hardening.conf',
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      readOnlyPort: 0,
      protectKernelDefaults: true,
      podPidsLimit: 4096,
      seccompDefault: true,
      tlsCipherSuites: STRONG_CIPHERS,
      tlsCertFile: '/var/lib/kubelet/pki/kubelet.crt',
      tlsPrivateKeyFile: '/var/lib/kubelet/pki/kubelet.key',
    },
    { mode: 0o600 },
  );
  b.process(812, KUBELET_ARGV(['--config-dir=/etc/kubernetes/kubelet.conf.d']));
  b.file('/var/lib/kube-proxy/kubeconfig.conf', KUBECONFIG('kube-proxy'), { mode: 0o600 });
  b.process(1377, [
    '/usr/local/bin/kube-proxy',
    '--kubeconfig=/var/lib/kube-proxy/kubeconfig.conf',
    '--metrics-bind-address=127.0.0.1:10249',
    '--hostname-override=worker-hardened',
  ]);
}

/** A worker with the usual mistakes: loose file modes, a flag that re-opens the read-only port, anonymous auth. */
export function buildWeakWorker(b: NodeRootBuilder): void {
  kubeadmBase(b, { unitMode: 0o644, kubeconfigMode: 0o644, kernel: '5.15.0-125-generic', os: 'Ubuntu 22.04.5 LTS' });
  b.yaml(
    '/var/lib/kubelet/config.yaml',
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
      authorization: { mode: 'AlwaysAllow' },
      cgroupDriver: 'systemd',
      makeIPTablesUtilChains: false,
    },
    { mode: 0o644, uid: 1000, gid: 1000 },
  );
  // The flag wins over the config file, as the kubelet resolves it. A zero idle timeout must come from the flag: in
  // the config file a zero duration is unset and the kubelet runs with its 4h default (v1beta1 defaulting).
  b.process(
    655,
    KUBELET_ARGV([
      '--read-only-port=10255',
      '--streaming-connection-idle-timeout=0',
      '--hostname-override=worker-weak-legacy',
    ]),
  );
}

const APISERVER_FLAGS = [
  '--advertise-address=10.0.0.10',
  '--allow-privileged=true',
  '--authorization-mode=Node,RBAC',
  '--client-ca-file=/etc/kubernetes/pki/ca.crt',
  '--enable-admission-plugins=NodeRestriction',
  '--enable-bootstrap-token-auth=true',
  '--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt',
  '--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt',
  '--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key',
  '--etcd-servers=https://127.0.0.1:2379',
  '--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt',
  '--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key',
  '--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname',
  '--proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt',
  '--proxy-client-key-file=/etc/kubernetes/pki/front-proxy-client.key',
  '--requestheader-allowed-names=front-proxy-client',
  '--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt',
  '--secure-port=6443',
  '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
  '--service-account-key-file=/etc/kubernetes/pki/sa.pub',
  '--service-account-signing-key-file=/etc/kubernetes/pki/sa.key',
  '--service-cluster-ip-range=10.96.0.0/12',
  '--tls-cert-file=/etc/kubernetes/pki/apiserver.crt',
  '--tls-private-key-file=/etc/kubernetes/pki/apiserver.key',
  '--profiling=false',
  '--audit-log-path=/var/log/kubernetes/audit/audit.log',
  '--audit-log-maxage=30',
  '--audit-log-maxbackup=10',
  '--audit-log-maxsize=100',
];

const CONTROLLER_MANAGER_FLAGS = [
  '--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf',
  '--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf',
  '--bind-address=127.0.0.1',
  '--client-ca-file=/etc/kubernetes/pki/ca.crt',
  '--cluster-name=kubernetes',
  '--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt',
  '--cluster-signing-key-file=/etc/kubernetes/pki/ca.key',
  '--controllers=*,bootstrapsigner,tokencleaner',
  '--kubeconfig=/etc/kubernetes/controller-manager.conf',
  '--leader-elect=true',
  '--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt',
  '--root-ca-file=/etc/kubernetes/pki/ca.crt',
  '--service-account-private-key-file=/etc/kubernetes/pki/sa.key',
  '--use-service-account-credentials=true',
];

const SCHEDULER_FLAGS = [
  '--authentication-kubeconfig=/etc/kubernetes/scheduler.conf',
  '--authorization-kubeconfig=/etc/kubernetes/scheduler.conf',
  '--bind-address=127.0.0.1',
  '--kubeconfig=/etc/kubernetes/scheduler.conf',
  '--leader-elect=true',
];

const ETCD_FLAGS = [
  '--advertise-client-urls=https://10.0.0.10:2379',
  '--cert-file=/etc/kubernetes/pki/etcd/server.crt',
  '--client-cert-auth=true',
  '--data-dir=/var/lib/etcd',
  '--initial-advertise-peer-urls=https://10.0.0.10:2380',
  '--key-file=/etc/kubernetes/pki/etcd/server.key',
  '--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.10:2379',
  '--name=control-plane-1',
  '--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt',
  '--peer-client-cert-auth=true',
  '--peer-key-file=/etc/kubernetes/pki/etcd/peer.key',
  '--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt',
  '--snapshot-count=10000',
  '--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt',
];

function staticPod(name: string, image: string, command: string[]): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'kube-system', labels: { component: name, tier: 'control-plane' } },
    spec: { hostNetwork: true, priorityClassName: 'system-node-critical', containers: [{ name, image, command }] },
  };
}

/** A kubeadm control-plane node (Kubernetes 1.32) with static pods running. */
export function buildControlPlane(b: NodeRootBuilder): void {
  kubeadmBase(b, {
    unitMode: 0o600,
    kubeconfigMode: 0o600,
    kernel: '6.1.0-27-amd64',
    os: 'Debian GNU/Linux 12 (bookworm)',
  });
  b.yaml(
    '/var/lib/kubelet/config.yaml',
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: '/etc/kubernetes/pki/ca.crt' },
      },
      authorization: { mode: 'Webhook' },
      cgroupDriver: 'systemd',
      rotateCertificates: true,
      staticPodPath: '/etc/kubernetes/manifests',
    },
    { mode: 0o600 },
  );
  b.process(901, KUBELET_ARGV());
  const components: [string, string, string[]][] = [
    ['kube-apiserver', 'registry.k8s.io/kube-apiserver:v1.32.2', APISERVER_FLAGS],
    ['kube-controller-manager', 'registry.k8s.io/kube-controller-manager:v1.32.2', CONTROLLER_MANAGER_FLAGS],
    ['kube-scheduler', 'registry.k8s.io/kube-scheduler:v1.32.2', SCHEDULER_FLAGS],
    ['etcd', 'registry.k8s.io/etcd:3.5.16-0', ETCD_FLAGS],
  ];
  let pid = 2101;
  for (const [name, image, flags] of components) {
    b.yaml(`/etc/kubernetes/manifests/${name}.yaml`, staticPod(name, image, [name, ...flags]), { mode: 0o600 });
    b.process(pid++, [name, ...flags]);
  }
  for (const f of ['admin.conf', 'super-admin.conf', 'controller-manager.conf', 'scheduler.conf'])
    b.file(`/etc/kubernetes/${f}`, KUBECONFIG(f.replace('.conf', '')), { mode: 0o600 });
  for (const crt of [
    'ca',
    'apiserver',
    'apiserver-kubelet-client',
    'front-proxy-ca',
    'front-proxy-client',
    'apiserver-etcd-client',
  ]) {
    b.file(`/etc/kubernetes/pki/${crt}.crt`, '-----BEGIN CERTIFICATE-----\n', { mode: 0o644 });
    b.file(`/etc/kubernetes/pki/${crt}.key`, '-----BEGIN PRIVATE KEY-----\n', { mode: 0o600 });
  }
  b.file('/etc/kubernetes/pki/sa.key', '-----BEGIN PRIVATE KEY-----\n', { mode: 0o600 });
  b.file('/etc/kubernetes/pki/sa.pub', '-----BEGIN PUBLIC KEY-----\n', { mode: 0o600 });
  for (const crt of ['ca', 'server', 'peer', 'healthcheck-client']) {
    b.file(`/etc/kubernetes/pki/etcd/${crt}.crt`, '-----BEGIN CERTIFICATE-----\n', { mode: 0o644 });
    b.file(`/etc/kubernetes/pki/etcd/${crt}.key`, '-----BEGIN PRIVATE KEY-----\n', { mode: 0o600 });
  }
  // kubeadm leaves the etcd data directory root-owned: the benchmark wants etcd:etcd.
  b.dir('/var/lib/etcd', { mode: 0o700 });
  b.dir('/var/lib/etcd/member', { mode: 0o700 });
  b.file(
    '/etc/cni/net.d/10-calico.conflist',
    '{"name":"k8s-pod-network","cniVersion":"0.3.1","plugins":[{"type":"calico"}]}\n',
    { mode: 0o600 },
  );
}

const BUILDERS: Record<ExampleNode, (b: NodeRootBuilder) => void> = {
  'worker-hardened': buildHardenedWorker,
  'worker-weak': buildWeakWorker,
  'control-plane-1': buildControlPlane,
};

/** Build every example node under `dir`; answers their roots and whether owners had to be faked. */
export function buildExampleNodes(dir: string): { roots: Record<ExampleNode, string>; ownersFaked: boolean } {
  const roots = {} as Record<ExampleNode, string>;
  let ownersFaked = false;
  for (const name of EXAMPLE_NODES) {
    const b = new NodeRootBuilder(join(dir, name));
    BUILDERS[name](b);
    roots[name] = b.root;
    ownersFaked ||= b.ownersFaked;
  }
  return { roots, ownersFaked };
}
