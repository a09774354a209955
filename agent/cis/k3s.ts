import { posix } from 'node:path';
import { documentField, isDocumentMap, parseYamlDocument, scalarText } from '../../common/parsed-document.js';
import type { HostView } from './host.js';
import type { NodeProcess } from './processes.js';

/**
 * k3s runs the kubelet, and on servers the API server, controller manager and scheduler, inside its own process
 * ("k3s server" / "k3s agent"): their flags are k3s's built-in arguments followed by what the user passes through
 * `--kubelet-arg`, `--kube-apiserver-arg`, `--kube-controller-manager-arg` and `--kube-scheduler-arg`, on the command
 * line (the systemd unit's ExecStart) or as the same keys in /etc/rancher/k3s/config.yaml and config.yaml.d/*.yaml.
 */

/** The k3s process ("k3s server", "k3s agent"; comm k3s-server / k3s-agent), if any. */
export function findK3sProcess(processes: NodeProcess[], mode?: 'server' | 'agent'): NodeProcess | undefined {
  const modes = mode ? [mode] : ['server', 'agent'];
  return processes.find(
    (p) =>
      modes.some((m) => p.comm === `k3s-${m}`) ||
      (posix.basename(p.argv[0] ?? '') === 'k3s' && modes.includes(p.argv[1] ?? '')),
  );
}

const K3S_CONFIG = '/etc/rancher/k3s/config.yaml';
const K3S_CONFIG_DIR = '/etc/rancher/k3s/config.yaml.d';

/**
 * The values of a list option (`kube-apiserver-arg`) from k3s's config files then its command line, each "flag=value"
 * turned into "--flag=value". config.yaml.d files apply in lexical order after config.yaml; a later file's `key`
 * replaces the list so far, its `key+` appends to it (k3s configuration docs); the command line comes last.
 */
export function k3sPassThroughArgs(host: HostView, proc: NodeProcess, key: string): string[] {
  let fromFiles: string[] = [];
  const files = [
    K3S_CONFIG,
    ...host
      .list(K3S_CONFIG_DIR)
      .filter((n) => /\.ya?ml$/.test(n))
      .map((n) => `${K3S_CONFIG_DIR}/${n}`),
  ];
  for (const file of files) {
    const text = host.readText(file);
    if (text.kind !== 'found') continue;
    try {
      const doc = parseYamlDocument(text.text);
      if (!isDocumentMap(doc)) continue;
      const set = documentField(doc, key);
      const add = documentField(doc, `${key}+`);
      if (set !== undefined && set !== null) fromFiles = listOf(set);
      if (add !== undefined && add !== null) fromFiles.push(...listOf(add));
    } catch {
      // a broken k3s config stops k3s itself; the process's own flags still count
    }
  }
  const cmdline = parseRepeated(proc.argv.slice(1), key);
  return [...fromFiles, ...cmdline].map((kv) => `--${kv.replace(/^--/, '')}`);
}

/** A k3s option as the server resolves it: command line over config files (scalar keys such as secrets-encryption). */
export function k3sOption(host: HostView, proc: NodeProcess, key: string): string | undefined {
  const cmd = parseRepeated(proc.argv.slice(1), key);
  if (cmd.length > 0) return cmd[cmd.length - 1];
  if (proc.argv.includes(`--${key}`)) return 'true';
  let value: string | undefined;
  for (const file of [K3S_CONFIG, ...host.list(K3S_CONFIG_DIR).map((n) => `${K3S_CONFIG_DIR}/${n}`)]) {
    const text = host.readText(file);
    if (text.kind !== 'found') continue;
    try {
      const v = scalarText(documentField(parseYamlDocument(text.text), key));
      if (v !== undefined) value = v;
    } catch {
      // as above
    }
  }
  return value;
}

function listOf(v: unknown): string[] {
  const values = Array.isArray(v) ? v.map(scalarText) : [scalarText(v)];
  return values.filter((x): x is string => x !== undefined);
}

/** Every value of a repeatable flag (`--kubelet-arg=a=b --kubelet-arg c=d`). */
export function parseRepeated(argv: string[], flag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a.startsWith(`--${flag}=`)) out.push(a.slice(flag.length + 3));
    else if (a === `--${flag}` && argv[i + 1] !== undefined && !(argv[i + 1] as string).startsWith('-'))
      out.push(argv[++i] as string);
  }
  return out;
}

const TLS = '/var/lib/rancher/k3s/server/tls';
const CRED = '/var/lib/rancher/k3s/server/cred';

/**
 * The arguments k3s itself gives its embedded control-plane components before the user's pass-through ones, limited
 * to those the benchmarks read. From knowledge of k3s's pkg/daemons/control/server.go (stated as such, not read for
 * this code): certificates under /var/lib/rancher/k3s/server/tls, kubeconfigs under .../server/cred, profiling off,
 * Node,RBAC authorization, NodeRestriction admission, anonymous auth off, loopback bind addresses; the datastore is
 * embedded etcd on 127.0.0.1:2379 with its client certificates (--cluster-init, or a server/db/etcd directory), else
 * kine; --secrets-encryption adds the encryption config k3s writes.
 */
export function k3sControlPlaneArgs(
  host: HostView,
  proc: NodeProcess,
  component: 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler',
): string[] {
  if (component === 'kube-apiserver') {
    const etcd =
      k3sOption(host, proc, 'cluster-init') === 'true' ||
      host.stat('/var/lib/rancher/k3s/server/db/etcd').kind === 'found';
    const endpoint = k3sOption(host, proc, 'datastore-endpoint');
    const datastore = endpoint
      ? [`--etcd-servers=${endpoint}`]
      : etcd
        ? [
            '--etcd-servers=https://127.0.0.1:2379',
            `--etcd-cafile=${TLS}/etcd/server-ca.crt`,
            `--etcd-certfile=${TLS}/etcd/client.crt`,
            `--etcd-keyfile=${TLS}/etcd/client.key`,
          ]
        : ['--etcd-servers=unix://kine.sock'];
    const encryption =
      k3sOption(host, proc, 'secrets-encryption') === 'true'
        ? [`--encryption-provider-config=${CRED}/encryption-config.json`]
        : [];
    return [
      '--allow-privileged=true',
      '--anonymous-auth=false',
      '--authorization-mode=Node,RBAC',
      '--bind-address=127.0.0.1',
      '--secure-port=6444',
      `--client-ca-file=${TLS}/client-ca.crt`,
      '--enable-admission-plugins=NodeRestriction',
      `--kubelet-certificate-authority=${TLS}/server-ca.crt`,
      `--kubelet-client-certificate=${TLS}/client-kube-apiserver.crt`,
      `--kubelet-client-key=${TLS}/client-kube-apiserver.key`,
      '--profiling=false',
      `--service-account-key-file=${TLS}/service.key`,
      `--service-account-signing-key-file=${TLS}/service.current.key`,
      `--tls-cert-file=${TLS}/serving-kube-apiserver.crt`,
      `--tls-private-key-file=${TLS}/serving-kube-apiserver.key`,
      ...datastore,
      ...encryption,
    ];
  }
  if (component === 'kube-controller-manager')
    return [
      '--bind-address=127.0.0.1',
      `--kubeconfig=${CRED}/controller.kubeconfig`,
      '--profiling=false',
      `--root-ca-file=${TLS}/server-ca.crt`,
      `--service-account-private-key-file=${TLS}/service.current.key`,
      '--use-service-account-credentials=true',
    ];
  return ['--bind-address=127.0.0.1', `--kubeconfig=${CRED}/scheduler.kubeconfig`, '--profiling=false'];
}

/** Where k3s keeps its embedded etcd: the data directory, and the etcd config file k3s writes into it. */
export const K3S_ETCD_DATA_DIR = '/var/lib/rancher/k3s/server/db/etcd';
export const K3S_ETCD_CONFIG = `${K3S_ETCD_DATA_DIR}/config`;

/**
 * The flags of the etcd a k3s server embeds, or why there is none. k3s does not run an etcd process: with embedded etcd
 * (--cluster-init, or a server that joined one) it writes etcd's configuration to <data dir>/config and starts etcd in
 * its own process from that file (k3s pkg/daemons/executor: ETCDConfig.ToConfigFile writes
 * /var/lib/rancher/k3s/server/db/etcd/config, mode 0600, then embed.ConfigFromFile; kube-bench's cfg/k3s-cis-*
 * etcd checks read the same file). Without it k3s keeps its data in SQLite through kine, or in the external datastore
 * --datastore-endpoint names: there is no etcd on the node to assess.
 */
export function k3sEmbeddedEtcd(
  host: HostView,
  proc: NodeProcess,
): { kind: 'found'; flags: Map<string, string>; source: string } | { kind: 'absent' | 'error'; reason: string } {
  const file = host.readText(K3S_ETCD_CONFIG);
  if (file.kind === 'error') return { kind: 'error', reason: `${K3S_ETCD_CONFIG}: ${file.reason}` };
  if (file.kind === 'absent') {
    const endpoint = k3sOption(host, proc, 'datastore-endpoint');
    return {
      kind: 'absent',
      reason: endpoint
        ? `k3s server pid ${proc.pid} keeps its data in the external datastore --datastore-endpoint names, not in an etcd on this node`
        : `k3s server pid ${proc.pid} runs without embedded etcd (no ${K3S_ETCD_CONFIG}; its datastore is SQLite through kine)`,
    };
  }
  let doc: unknown;
  try {
    doc = parseYamlDocument(file.text);
  } catch (err) {
    return { kind: 'error', reason: `${K3S_ETCD_CONFIG}: not valid YAML: ${(err as Error).message}` };
  }
  if (!isDocumentMap(doc)) return { kind: 'error', reason: `${K3S_ETCD_CONFIG}: not a mapping of etcd settings` };
  return {
    kind: 'found',
    flags: etcdConfigFileFlags(doc),
    source: `${K3S_ETCD_CONFIG} (etcd embedded in k3s server pid ${proc.pid})`,
  };
}

/**
 * An etcd configuration file (etcd --config-file) as the flags it stands for: top-level keys are flag names; the
 * client-transport-security and peer-transport-security sections hold the client TLS flags (cert-file, key-file,
 * client-cert-auth, trusted-ca-file, auto-tls, ...) and the same flags with a peer- prefix (etcd's configuration-file
 * documentation, etcd.io/docs/v3.5/op-guide/configuration/). Lists become comma-separated values.
 */
export function etcdConfigFileFlags(doc: unknown): Map<string, string> {
  const flags = new Map<string, string>();
  const put = (name: string, v: unknown) => {
    const items = Array.isArray(v) ? v.map(scalarText) : [scalarText(v)];
    if (items.every((x) => x !== undefined)) flags.set(name, items.join(','));
  };
  for (const key of Object.keys(doc as object)) {
    const v = documentField(doc, key);
    const prefix = key === 'client-transport-security' ? '' : key === 'peer-transport-security' ? 'peer-' : undefined;
    if (prefix !== undefined && isDocumentMap(v)) {
      for (const k of Object.keys(v as object)) put(`${prefix}${k}`, documentField(v, k));
    } else put(key, v);
  }
  return flags;
}
