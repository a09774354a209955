import { posix } from 'node:path';
import {
  documentField,
  documentPath,
  isDocumentMap,
  parseYamlDocument,
  scalarText,
  toDocumentValue,
  type DocumentMap,
} from '../../common/parsed-document.js';
import type { HostView } from './host.js';
import {
  KUBELET_BOOLEAN_FLAGS,
  KUBELET_CONFIG_DEFAULTS,
  KUBELET_LEGACY_FLAG_DEFAULTS,
  KUBELET_ZERO_MEANS_DEFAULT,
} from './kubelet-defaults.js';
import { parseNumberish } from './numberish.js';
import { findK3sProcess, k3sPassThroughArgs, parseRepeated } from './k3s.js';
import { findProcess, parseFlags, type NodeProcess } from './processes.js';
import { readSystemdService, SYSTEMD_UNIT_DIRS } from './systemd.js';

/** A resolved kubelet setting and where its value came from. */
export interface ResolvedSetting {
  /** The value as a string (booleans "true"/"false", lists comma-joined); undefined when unset with no default. */
  value: string | undefined;
  /** Human-readable origin: "flag --read-only-port (pid 812)", "/var/lib/kubelet/config.yaml", "kubelet default". */
  source: string;
  /** Why the value found cannot be used (a mapping where a value belongs): unknown, never PASS. */
  error?: string;
}

/** Everything the kubelet's settings were resolved from. */
export interface KubeletSettings {
  /** Where the command line came from; "none" when no kubelet was found. */
  origin: 'process' | 'systemd' | 'none';
  /** "pid 812" or the unit file. */
  originDetail: string;
  pid?: number;
  flags: Map<string, string>;
  /** Node path of the --config file, if one is given. */
  configPath?: string;
  /** Why the config file or a drop-in could not be used (never PASS on it). */
  configErrors: string[];
  /** Drop-ins of --config-dir applied, in order. */
  dropIns: string[];
  /** The merged configuration (file, then drop-ins); null-prototype objects throughout. */
  config: DocumentMap;
  /** For each configuration path set by a file, that file. */
  configOrigins: Map<string, string>;
  /** The systemd unit file that starts the kubelet (the one holding ExecStart), if any. */
  serviceFile?: string;
  /** kubelet.service files that exist but cannot be read: which file starts the kubelet, and how, is unknown. */
  serviceErrors: string[];
  /** The kubelet's live configuration from its configz endpoint, when that opt-in is on and answered. */
  live?: { config: DocumentMap; source: string };
}

/** What `GET /api/v1/nodes/NODE/proxy/configz` answered (its `kubeletconfig` object). */
export interface LiveKubeletConfig {
  config: unknown;
  source: string;
}

/**
 * Resolve the kubelet's settings the way the kubelet does: flags over the
 * drop-ins of --config-dir over the --config file over defaults (the v1beta1
 * defaults with a config file, the legacy flag defaults without one).
 */
export function readKubeletSettings(
  host: HostView,
  processes: NodeProcess[],
  live?: LiveKubeletConfig,
): KubeletSettings {
  const service = readSystemdService(host, 'kubelet.service', SYSTEMD_UNIT_DIRS);
  const proc = findProcess(processes, 'kubelet');
  const k3s = proc ? undefined : findK3sProcess(processes);
  let args: string[] = [];
  let origin: KubeletSettings['origin'] = 'none';
  let originDetail = 'no kubelet process and no kubelet.service unit';
  if (proc) {
    args = proc.argv.slice(1);
    origin = 'process';
    originDetail = `pid ${proc.pid}`;
  } else if (k3s) {
    args = k3sKubeletArgs(host, k3s);
    origin = 'process';
    originDetail = `kubelet embedded in k3s pid ${k3s.pid}`;
  } else if (service && service.errors.length > 0) {
    // A kubelet unit is there but cannot be read whole: how the kubelet starts is unknown, never PASS.
    origin = 'systemd';
    originDetail = `${service.unitFile ?? 'kubelet.service'} (kubelet not running; unit unreadable)`;
  } else if (service?.execStart) {
    args = service.execStart.slice(1);
    origin = 'systemd';
    originDetail = `${service.execStartFile} (kubelet not running)`;
  }
  const flags = parseFlags(args, KUBELET_BOOLEAN_FLAGS);
  // --feature-gates is a map flag: each use adds its gates to the ones before (cliflag.MapStringBool), later wins.
  const gates = parseRepeated(args, 'feature-gates');
  if (gates.length > 1) flags.set('feature-gates', gates.join(','));
  const settings: KubeletSettings = {
    origin,
    originDetail,
    pid: proc?.pid,
    flags,
    configErrors: [],
    dropIns: [],
    config: Object.create(null) as DocumentMap,
    configOrigins: new Map(),
    serviceFile: service?.execStartFile,
    serviceErrors: service?.errors ?? [],
    live: undefined,
  };
  if (origin === 'systemd') settings.configErrors.push(...settings.serviceErrors);
  if (live) {
    // configz is JSON from the API server: as untrusted as a file, and read the same way.
    try {
      const config = toDocumentValue(live.config);
      if (!isDocumentMap(config)) throw new Error('kubeletconfig is not an object');
      settings.live = { config, source: live.source };
    } catch (err) {
      settings.configErrors.push(`${live.source}: ${(err as Error).message}`);
    }
  }
  const configFlag = flags.get('config');
  if (configFlag) {
    settings.configPath = posix.resolve('/', configFlag);
    mergeConfigFile(host, settings, settings.configPath, true);
  }
  const dropInDir = flags.get('config-dir');
  if (dropInDir) {
    // KEP-3983: only *.conf files, in lexical order, each merged over the last.
    const dir = host.listDir(dropInDir);
    // Drop-ins that exist but cannot be read could override anything: unknown, never PASS.
    if (dir.kind === 'error') settings.configErrors.push(`--config-dir ${dropInDir}: ${dir.reason}`);
    for (const name of (dir.kind === 'found' ? dir.names : []).filter((n) => n.endsWith('.conf'))) {
      const path = posix.join(posix.resolve('/', dropInDir), name);
      if (mergeConfigFile(host, settings, path, false)) settings.dropIns.push(path);
    }
  }
  return settings;
}

const K3S_AGENT_DIR = '/var/lib/rancher/k3s/agent';

/**
 * The kubelet command line k3s builds, then every --kubelet-arg from /etc/rancher/k3s/config.yaml (and
 * config.yaml.d/*.yaml) and the command line, later ones winning. A k3s that writes its defaults to a --config-dir
 * drop-in (k3s pkg/daemons/agent: kubeletArgsAndConfig passes --config-dir, --kubeconfig and --read-only-port=0 and
 * writes everything else, anonymous auth, webhook authn/authz, client CA, serving certificate, static pod path, to
 * agent/etc/kubelet.conf.d/00-k3s-defaults.conf) is read from those drop-ins, so a later drop-in of the user's counts;
 * an older one, without the directory, passed them all as flags.
 */
function k3sKubeletArgs(host: HostView, proc: NodeProcess): string[] {
  const dropIns = `${K3S_AGENT_DIR}/etc/kubelet.conf.d`;
  const builtIn =
    host.stat(dropIns).kind === 'found'
      ? [`--config-dir=${dropIns}`, `--kubeconfig=${K3S_AGENT_DIR}/kubelet.kubeconfig`, '--read-only-port=0']
      : [
          `--kubeconfig=${K3S_AGENT_DIR}/kubelet.kubeconfig`,
          `--client-ca-file=${K3S_AGENT_DIR}/client-ca.crt`,
          '--anonymous-auth=false',
          '--authorization-mode=Webhook',
          '--authentication-token-webhook=true',
          '--read-only-port=0',
          `--tls-cert-file=${K3S_AGENT_DIR}/serving-kubelet.crt`,
          `--tls-private-key-file=${K3S_AGENT_DIR}/serving-kubelet.key`,
          `--pod-manifest-path=${K3S_AGENT_DIR}/pod-manifests`,
        ];
  return [...builtIn, ...k3sPassThroughArgs(host, proc, 'kubelet-arg')];
}

function mergeConfigFile(host: HostView, settings: KubeletSettings, path: string, required: boolean): boolean {
  const file = host.readText(path);
  if (file.kind === 'absent') {
    if (required) settings.configErrors.push(`${path}: the --config file does not exist`);
    return false;
  }
  if (file.kind === 'error') {
    settings.configErrors.push(`${path}: ${file.reason}`);
    return false;
  }
  let doc: unknown;
  try {
    doc = parseYamlDocument(file.text);
  } catch (err) {
    settings.configErrors.push(`${path}: not valid YAML or JSON: ${(err as Error).message}`);
    return false;
  }
  if (doc === null || doc === undefined) return true; // an empty drop-in changes nothing
  if (!isDocumentMap(doc)) {
    settings.configErrors.push(`${path}: expected a KubeletConfiguration object`);
    return false;
  }
  mergeInto(settings.config, doc, '', path, settings.configOrigins);
  return true;
}

/**
 * Objects merge key by key; scalars and lists replace (a drop-in's list is the
 * new list). Both sides are null-prototype document maps, so a key such as
 * `__proto__` is an unknown field like any other (the kubelet ignores it) and
 * never reaches Object.prototype.
 */
function mergeInto(
  target: DocumentMap,
  source: DocumentMap,
  prefix: string,
  file: string,
  origins: Map<string, string>,
): void {
  for (const [key, value] of Object.entries(source)) {
    if (key === 'apiVersion' || key === 'kind') continue;
    const path = prefix ? `${prefix}.${key}` : key;
    const current = documentField(target, key);
    if (isDocumentMap(value)) {
      const next = isDocumentMap(current) ? current : (Object.create(null) as DocumentMap);
      target[key] = next;
      origins.set(path, file);
      mergeInto(next, value, path, file, origins);
    } else {
      target[key] = value;
      origins.set(path, file);
    }
  }
}

/**
 * The value of one setting: the flag when given on the command line, else the
 * merged config files, else the kubelet's default for how it was started.
 */
export function resolveSetting(settings: KubeletSettings, setting: string | undefined, flag?: string): ResolvedSetting {
  if (flag) {
    const fromFlag = flagValue(settings.flags, setting ?? '', flag);
    if (fromFlag !== undefined) return { value: fromFlag, source: `flag --${flag} (${settings.originDetail})` };
  }
  // A flag-only setting (no KubeletConfiguration field) is unset when the flag is absent.
  if (setting === undefined) return { value: undefined, source: `flag --${flag} not given (${settings.originDetail})` };
  if (settings.live) {
    // configz is the running kubelet's effective configuration, flags included.
    // It is Go JSON with omitempty: a missing field holds its type's zero value.
    const v = lookupPath(settings.live.config, setting);
    const dflt = ownValue(KUBELET_CONFIG_DEFAULTS, setting);
    // configz lists only the gates set; an absent gate has its default, not a zero value.
    if (v === undefined && setting.startsWith('featureGates.') && dflt !== undefined)
      return { value: dflt, source: `${settings.live.source} (gate not set: its default)` };
    const zero =
      dflt === 'true' || dflt === 'false' ? 'false' : dflt !== undefined && /^-?\d+$/.test(dflt) ? '0' : undefined;
    return v !== undefined
      ? settingValue(setting, v, settings.live.source)
      : { value: zero, source: settings.live.source };
  }
  const fromConfig = lookupPath(settings.config, setting);
  if (fromConfig !== undefined) {
    const origin = settings.configOrigins.get(setting) ?? settings.configPath ?? 'config';
    const r = settingValue(setting, fromConfig, origin);
    if (setting.startsWith('featureGates.') && r.value !== undefined) return { ...r, value: goBool(r.value) };
    return origin === settings.configPath ? defaultedZero(setting, r) : r;
  }
  const legacy = settings.configPath === undefined ? ownValue(KUBELET_LEGACY_FLAG_DEFAULTS, setting) : undefined;
  if (legacy !== undefined) return { value: legacy, source: 'kubelet default without a --config file' };
  const dflt = ownValue(KUBELET_CONFIG_DEFAULTS, setting);
  if (dflt !== undefined) {
    return {
      value: dflt === '' ? undefined : dflt,
      source: setting.startsWith('featureGates.')
        ? 'feature gate default (not set by --feature-gates or featureGates)'
        : settings.configPath
          ? 'KubeletConfiguration v1beta1 default'
          : 'kubelet flag default',
    };
  }
  return { value: undefined, source: 'not set' };
}

/**
 * The --config file is decoded with v1beta1 defaulting: a zero in a field that
 * SetDefaults_KubeletConfiguration defaults on zero is the default (kubeadm
 * writes `streamingConnectionIdleTimeout: 0s`; the kubelet runs with 4h0m0s),
 * and a negative podPidsLimit is -1. Flags and drop-ins are not defaulted.
 */
function defaultedZero(setting: string, r: ResolvedSetting): ResolvedSetting {
  if (r.error || r.value === undefined) return r;
  if (setting === 'podPidsLimit' && (parseNumberish(r.value) ?? 0) < 0)
    return {
      value: '-1',
      source: `${r.source} sets podPidsLimit: ${r.value}; v1beta1 defaulting makes a negative limit -1`,
    };
  const dflt = ownValue(KUBELET_ZERO_MEANS_DEFAULT, setting);
  if (dflt === undefined) return r;
  if (r.value.trim() !== '' && parseNumberish(r.value) !== 0) return r;
  const shown = r.value === '' ? '""' : r.value;
  return {
    value: dflt,
    source: `${r.source} sets ${setting}: ${shown}, a zero value KubeletConfiguration v1beta1 defaulting replaces with ${dflt}`,
  };
}

/** `--feature-gates=A=true,B=false` answers `featureGates.A`; other flags answer themselves. */
function flagValue(flags: Map<string, string>, setting: string, flag: string): string | undefined {
  const raw = flags.get(flag);
  if (raw === undefined) return undefined;
  if (flag === 'feature-gates' && setting.startsWith('featureGates.')) {
    const gate = setting.slice('featureGates.'.length);
    let found: string | undefined;
    for (const pair of raw.split(',')) {
      const [k, v] = pair.split('=');
      if (k?.trim() === gate) found = goBool((v ?? 'true').trim());
    }
    return found;
  }
  return raw;
}

/** A gate value as Go's strconv.ParseBool reads it ("True", "F", "0" ...); anything else as written. */
function goBool(v: string): string {
  if (/^(1|t|T|TRUE|true|True)$/.test(v)) return 'true';
  if (/^(0|f|F|FALSE|false|False)$/.test(v)) return 'false';
  return v;
}

/** The setting path comes from a benchmark; only the document's own keys answer it. */
function lookupPath(obj: DocumentMap, path: string): unknown {
  const cur = documentPath(obj, path);
  return cur === null ? undefined : cur;
}

/** A defaults table answers only for its own keys ("constructor" is not a kubelet setting). */
function ownValue(table: Readonly<Record<string, string>>, key: string): string | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

/**
 * A setting's value as text: scalars as written, lists of scalars comma-joined.
 * Every setting a benchmark reads is one of those; a mapping (or a list holding
 * one) is a config the kubelet would refuse to load, so the value is unknown.
 */
function settingValue(setting: string, v: unknown, source: string): ResolvedSetting {
  const items = Array.isArray(v) ? v.map(scalarText) : [scalarText(v)];
  if (items.every((x): x is string => x !== undefined)) return { value: items.join(','), source };
  const shape = Array.isArray(v) ? 'a list holding more than plain values' : 'a mapping';
  return { value: undefined, source, error: `${setting} in ${source} is ${shape}, not a value` };
}
