import { posix } from 'node:path';
import type { ComponentName, ComponentReader } from './components.js';
import { parseYamlDocument } from '../../common/parsed-document.js';
import { describeExpect, meets } from './expect.js';
import { judgeAuditPolicy, judgeEncryptionConfig } from './file-content.js';
import type { HostView } from './host.js';
import { KUBELET_SETTING_FLAGS } from './kubelet-defaults.js';
import { resolveSetting, type KubeletSettings } from './kubelet.js';
import type { NodeAccounts } from './accounts.js';
import type {
  AuditSpec,
  ComponentFileAuditSpec,
  ComponentFlagAuditSpec,
  FileModeAuditSpec,
  FileOwnerAuditSpec,
  KubeletAuditSpec,
  SystemdPropertyAuditSpec,
} from './schema.js';
import { readSystemdService, serviceProperty, SYSTEMD_UNIT_DIRS } from './systemd.js';

/** Everything a check may read, resolved once per scan. */
export interface NodeFacts {
  host: HostView;
  kubelet: KubeletSettings;
  components: ComponentReader;
  accounts: NodeAccounts;
}

/** PASS/FAIL, or NA when what the check audits is not on this node. */
export interface AuditOutcome {
  status: 'PASS' | 'FAIL' | 'NA';
  expected: string;
  actual: string;
  evidence: string;
  /** Why NA (or why FAIL when the evidence could not be read). */
  reason?: string;
}

type LeafAudit = Exclude<AuditSpec, { type: 'all' | 'any' } | { type: 'manual' }>;

export function evaluateAudit(audit: Exclude<AuditSpec, { type: 'manual' }>, facts: NodeFacts): AuditOutcome {
  if (audit.type === 'all' || audit.type === 'any') {
    const parts = audit.of.filter((a): a is LeafAudit => a.type !== 'manual').map((a) => evaluateLeaf(a, facts));
    return combine(audit.type, parts);
  }
  return evaluateLeaf(audit as LeafAudit, facts);
}

function evaluateLeaf(audit: LeafAudit, facts: NodeFacts): AuditOutcome {
  switch (audit.type) {
    case 'file-mode':
    case 'file-owner':
      return fileAudit(audit, facts);
    case 'kubelet':
      return kubeletAudit(audit, facts);
    case 'component-flag':
      return componentAudit(audit, facts);
    case 'systemd-property':
      return systemdAudit(audit, facts);
    case 'component-file':
      return componentFileAudit(audit, facts);
  }
}

/**
 * A file a component's flag names, judged on its contents (1.2.28 the EncryptionConfiguration, 3.2.2 the audit
 * Policy). No flag: nothing to judge but the absence (FAIL); a file that cannot be read or parsed: FAIL with why.
 */
function componentFileAudit(audit: ComponentFileAuditSpec, facts: NodeFacts): AuditOutcome {
  const expected =
    audit.content === 'encryption-config'
      ? 'secrets written first by aescbc, aesgcm, secretbox or kms'
      : 'rules logging secrets, configmaps and tokenreviews at Metadata';
  const c = facts.components.flags(audit.component);
  if (c.kind === 'absent') return { status: 'NA', expected, actual: '', evidence: '', reason: c.reason };
  if (c.kind === 'error') return { status: 'FAIL', expected, actual: 'unknown', evidence: c.reason, reason: c.reason };
  const named = c.flags.get(audit.flag);
  if (!named)
    return {
      status: 'FAIL',
      expected,
      actual: `--${audit.flag} not set`,
      evidence: `not given in ${c.source}`,
      reason: `--${audit.flag} not set`,
    };
  const where = facts.components.hostPath(audit.component, named);
  if (where.kind === 'hidden')
    return { status: 'FAIL', expected, actual: 'unknown', evidence: where.reason, reason: where.reason };
  const at = `--${audit.flag}=${named} in ${c.source}${where.path === posix.resolve('/', named) ? '' : ` (on the host: ${where.path})`}`;
  const file = facts.host.readText(where.path);
  if (file.kind !== 'found') {
    const why = file.kind === 'absent' ? `${where.path} does not exist` : file.reason;
    return {
      status: 'FAIL',
      expected,
      actual: 'unknown',
      evidence: `${at}: ${why}`,
      reason: `cannot read ${named}: ${why}`,
    };
  }
  let doc: unknown;
  try {
    doc = parseYamlDocument(file.text);
  } catch (err) {
    const why = `not valid YAML or JSON: ${(err as Error).message}`;
    return { status: 'FAIL', expected, actual: 'unknown', evidence: `${at}: ${why}`, reason: `${named}: ${why}` };
  }
  const v = audit.content === 'encryption-config' ? judgeEncryptionConfig(doc) : judgeAuditPolicy(doc);
  return {
    status: v.pass ? 'PASS' : 'FAIL',
    expected,
    actual: v.actual,
    evidence: v.reason ? `${at}: ${v.reason}` : at,
  };
}

function systemdAudit(audit: SystemdPropertyAuditSpec, facts: NodeFacts): AuditOutcome {
  const expected = `${audit.property}= ${describeExpect(audit.expect)}`;
  const unit = readSystemdService(facts.host, audit.unit, SYSTEMD_UNIT_DIRS);
  if (!unit) return { status: 'NA', expected, actual: '', evidence: '', reason: `no ${audit.unit} unit on this node` };
  if (unit.errors.length > 0)
    return {
      status: 'FAIL',
      expected,
      actual: 'unknown',
      evidence: unit.errors.join('; '),
      reason: `${audit.unit} unreadable`,
    };
  const p = serviceProperty(unit, audit.property);
  return {
    status: meets(p.value, audit.expect) ? 'PASS' : 'FAIL',
    expected,
    actual: p.value ?? '(not set)',
    evidence: p.file
      ? `${audit.property}= in ${p.file}`
      : `${audit.property}= not set in ${[unit.unitFile, ...unit.dropIns].filter(Boolean).join(', ')}`,
  };
}

/** `all`: any FAIL fails, all NA is NA. `any`: any PASS passes, all NA is NA. */
function combine(kind: 'all' | 'any', parts: AuditOutcome[]): AuditOutcome {
  const join = (k: 'expected' | 'actual' | 'evidence') =>
    parts
      .map((p) => p[k])
      .filter(Boolean)
      .join(kind === 'all' ? '; ' : ' | ');
  const merged = { expected: join('expected'), actual: join('actual'), evidence: join('evidence') };
  if (parts.every((p) => p.status === 'NA'))
    return { ...merged, status: 'NA', reason: parts.map((p) => p.reason).join('; ') };
  const decided = parts.filter((p) => p.status !== 'NA');
  const pass = kind === 'all' ? decided.every((p) => p.status === 'PASS') : decided.some((p) => p.status === 'PASS');
  return { ...merged, status: pass ? 'PASS' : 'FAIL' };
}

function kubeletAudit(audit: KubeletAuditSpec, facts: NodeFacts): AuditOutcome {
  const expected = `${audit.setting ?? `--${audit.flag}`} ${describeExpect(audit.expect)}`;
  const k = facts.kubelet;
  // A configz that answered but could not be used is a kubelet, just an unknown one.
  if (k.origin === 'none' && !k.live && k.configErrors.length === 0)
    return { status: 'NA', expected, actual: '', evidence: k.originDetail, reason: 'no kubelet on this node' };
  const r = resolveSetting(k, audit.setting, audit.flag);
  const actual = r.value === undefined ? '(not set)' : r.value;
  // A value that would come from a file we could not read is unknown, never PASS.
  if (!r.source.startsWith('flag ') && !k.live && k.configErrors.length > 0) {
    return {
      status: 'FAIL',
      expected,
      actual: 'unknown',
      evidence: k.configErrors.join('; '),
      reason: 'kubelet config unreadable',
    };
  }
  if (r.error) return { status: 'FAIL', expected, actual: 'unknown', evidence: r.error, reason: r.error };
  return { status: meets(r.value, audit.expect) ? 'PASS' : 'FAIL', expected, actual, evidence: r.source };
}

function componentAudit(audit: ComponentFlagAuditSpec, facts: NodeFacts): AuditOutcome {
  const expected = `--${audit.flag} ${describeExpect(audit.expect)}`;
  const c = facts.components.flags(audit.component);
  if (c.kind === 'absent') return { status: 'NA', expected, actual: '', evidence: '', reason: c.reason };
  if (c.kind === 'error') return { status: 'FAIL', expected, actual: 'unknown', evidence: c.reason, reason: c.reason };
  // kube-proxy (and components like it) take a --config file that replaces the flags.
  if (audit.configField) {
    const cfg = facts.components.configValue(audit.component, audit.configField);
    // The config is where the host cannot see it (a pod's ConfigMap): unknown here, which is never a FAIL.
    if (cfg.kind === 'hidden') return { status: 'NA', expected, actual: '', evidence: cfg.reason, reason: cfg.reason };
    if (cfg.kind === 'error')
      return { status: 'FAIL', expected, actual: 'unknown', evidence: cfg.reason, reason: cfg.reason };
    if (cfg.kind === 'value') {
      const value = cfg.value ?? audit.default;
      const evidence =
        cfg.value !== undefined
          ? cfg.source
          : `${audit.component} default (${audit.configField} not set in its --config file)`;
      return { status: meets(value, audit.expect) ? 'PASS' : 'FAIL', expected, actual: value ?? '(not set)', evidence };
    }
  }
  // The API server's etcd client TLS flags apply to etcd over the network; a datastore on a local socket (k3s's kine,
  // unix://kine.sock) has no etcd TLS to configure.
  const servers = c.flags.get('etcd-servers');
  if (
    audit.component === 'kube-apiserver' &&
    /^etcd-(certfile|keyfile|cafile)$/.test(audit.flag) &&
    servers !== undefined &&
    servers.split(',').every((u) => u.trim().startsWith('unix://'))
  ) {
    const reason = `the API server reaches its datastore over the local socket --etcd-servers=${servers} (${c.source}), not an etcd over TLS`;
    return { status: 'NA', expected, actual: '', evidence: reason, reason };
  }
  // etcd reads every flag from an ETCD_* environment variable too; a flag wins over it.
  const envName = audit.component === 'etcd' ? `ETCD_${audit.flag.toUpperCase().replace(/-/g, '_')}` : undefined;
  const given = c.flags.get(audit.flag);
  const fromEnv = given === undefined && envName ? c.env.get(envName) : undefined;
  const value = given ?? fromEnv ?? audit.default;
  const actual = value === undefined ? '(not set)' : value;
  const evidence =
    given !== undefined
      ? `--${audit.flag} in ${c.source}`
      : fromEnv !== undefined
        ? `${envName} in the environment of ${c.source}`
        : audit.default !== undefined
          ? `${audit.component} default (flag not given in ${c.source})`
          : `not given in ${c.source}`;
  return { status: meets(value, audit.expect) ? 'PASS' : 'FAIL', expected, actual, evidence };
}

function fileAudit(audit: FileModeAuditSpec | FileOwnerAuditSpec, facts: NodeFacts): AuditOutcome {
  const expected = audit.type === 'file-mode' ? `${audit.mode} or more restrictive` : audit.owner;
  const path = resolvePathTemplate(audit.path, facts);
  if (path.kind === 'unresolved')
    return { status: 'NA', expected, actual: '', evidence: path.reason, reason: path.reason };
  if (path.kind === 'error')
    return { status: 'FAIL', expected, actual: 'unknown', evidence: path.reason, reason: path.reason };
  const globError = /[*?]/.test(path.path) ? facts.host.globError(path.path) : undefined;
  if (globError) return { status: 'FAIL', expected, actual: 'unknown', evidence: globError, reason: globError };
  const files = facts.host.glob(path.path);
  if (files.length === 0)
    return {
      status: 'NA',
      expected,
      actual: '',
      evidence: `${path.path} matches nothing`,
      reason: facts.components.embeddedInstead(path.path) ?? `no file matches ${path.path}`,
    };
  const want = audit.type === 'file-owner' ? facts.accounts.resolveOwner(audit.owner) : undefined;
  const findings: string[] = [];
  let failed = false;
  let found = 0;
  for (const file of files) {
    const st = facts.host.stat(file);
    if (st.kind === 'absent') continue;
    found++;
    if (st.kind === 'error') {
      failed = true;
      findings.push(`${file}: ${st.reason}`);
      continue;
    }
    // No check's path is a FIFO, a socket or a device: one there is no file the component can use, whatever its mode.
    if (st.facts.type === 'other') {
      failed = true;
      findings.push(`${file}: ${st.facts.special ?? 'a special file'}, not a file or directory`);
      continue;
    }
    if (audit.type === 'file-mode') {
      const allowed = parseInt(audit.mode, 8);
      const ok = (st.facts.mode & ~allowed) === 0;
      failed ||= !ok;
      findings.push(`${file}: ${st.facts.mode.toString(8).padStart(3, '0')}`);
    } else {
      const ok = want !== undefined && want.uid === st.facts.uid && want.gid === st.facts.gid;
      failed ||= !ok;
      findings.push(`${file}: ${facts.accounts.describeOwner(st.facts.uid, st.facts.gid)}`);
    }
  }
  if (found === 0)
    return {
      status: 'NA',
      expected,
      actual: '',
      evidence: `${path.path} does not exist`,
      reason:
        facts.components.embeddedInstead(path.path) ??
        (path.fallbackAfter
          ? `${path.fallbackAfter}; ${path.path} does not exist on this node`
          : `${path.path} does not exist on this node`),
    };
  // A component embedded in another process (etcd in k3s) runs as that process's user, root: an owner like etcd:etcd
  // names a user it does not have. Its files owned by root:root are not applicable (k3s's own CIS self-assessment says
  // so); owned by anyone else they are judged as usual.
  if (audit.type === 'file-owner' && path.embeddedIn && want && (want.uid !== 0 || want.gid !== 0)) {
    const owners = files.map((f) => facts.host.stat(f)).filter((st) => st.kind === 'found');
    if (owners.length > 0 && owners.every((st) => st.facts.uid === 0 && st.facts.gid === 0))
      return {
        status: 'NA',
        expected,
        actual: 'root:root',
        evidence: path.source,
        reason: `${path.path} is owned by root:root: the component runs inside ${path.embeddedIn} as root, with no ${audit.owner.split(':')[0]} user of its own`,
      };
  }
  const evidence = [
    path.source,
    want === undefined && audit.type === 'file-owner' ? `owner ${audit.owner} does not exist on this node` : '',
  ]
    .filter(Boolean)
    .join('; ');
  return { status: failed ? 'FAIL' : 'PASS', expected, actual: findings.join(', '), evidence };
}

type ResolvedPath =
  | { kind: 'path'; path: string; source: string; embeddedIn?: string; fallbackAfter?: string }
  | { kind: 'unresolved'; reason: string }
  | { kind: 'error'; reason: string };

/** Expand `{kubelet:...}`, `{kubelet-file:...}`, `{flag:component:name}` and `{a|b}` alternatives. */
function resolvePathTemplate(template: string, facts: NodeFacts): ResolvedPath {
  const m = /^\{([^}]+)\}(.*)$/.exec(template);
  if (!m) return { kind: 'path', path: template, source: '' };
  const rest = m[2] as string;
  const reasons: string[] = [];
  for (const alt of (m[1] as string).split('|')) {
    const r = resolveVariable(alt.trim(), facts);
    // A default path after alternatives that did not resolve keeps why they did not (the reason a SKIP gives).
    if (r.kind === 'path')
      return { ...r, path: r.path + rest, ...(reasons.length > 0 ? { fallbackAfter: reasons.join('; ') } : {}) };
    if (r.kind === 'error') return r;
    reasons.push(r.reason);
  }
  return { kind: 'unresolved', reason: reasons.join('; ') };
}

function resolveVariable(v: string, facts: NodeFacts): ResolvedPath {
  if (v.startsWith('/')) return { kind: 'path', path: v, source: 'default path' };
  const [kind, a, b] = v.split(':');
  const k = facts.kubelet;
  if (kind === 'kubelet-file' || kind === 'kubelet') {
    if (k.origin === 'none') return { kind: 'unresolved', reason: 'no kubelet on this node' };
    if (kind === 'kubelet') {
      if (k.configErrors.length > 0)
        return { kind: 'error', reason: `kubelet config unreadable: ${k.configErrors.join('; ')}` };
      // The field's flag wins over the config files, as it does for the kubelet (4.1.7/4.1.8 used to read only the
      // files).
      const flag =
        b ?? (Object.hasOwn(KUBELET_SETTING_FLAGS, a as string) ? KUBELET_SETTING_FLAGS[a as string] : undefined);
      const r = resolveSetting(k, a as string, flag);
      if (r.error) return { kind: 'error', reason: r.error };
      return r.value
        ? { kind: 'path', path: r.value, source: `${a} from ${r.source}` }
        : { kind: 'unresolved', reason: `kubelet ${a} is not set` };
    }
    if (a === 'config')
      return k.configPath
        ? { kind: 'path', path: k.configPath, source: `--config (${k.originDetail})` }
        : { kind: 'unresolved', reason: 'the kubelet runs without --config' };
    if (a === 'dropins') {
      // The drop-ins of --config-dir are the kubelet's config files when it runs without --config (RKE2, k3s); the
      // kubelet reads only *.conf there.
      const dir = k.flags.get('config-dir');
      return dir
        ? {
            kind: 'path',
            path: posix.join(posix.resolve('/', dir), '*.conf'),
            source: `--config-dir (${k.originDetail})`,
          }
        : { kind: 'unresolved', reason: 'the kubelet runs without --config or --config-dir' };
    }
    if (a === 'kubeconfig') {
      const p = k.flags.get('kubeconfig');
      return p
        ? { kind: 'path', path: p, source: `--kubeconfig (${k.originDetail})` }
        : { kind: 'unresolved', reason: 'the kubelet runs without --kubeconfig' };
    }
    if (a === 'service' && k.serviceErrors.length > 0)
      return { kind: 'error', reason: `kubelet unit unreadable: ${k.serviceErrors.join('; ')}` };
    if (a === 'service')
      return k.serviceFile
        ? { kind: 'path', path: k.serviceFile, source: 'the unit holding the kubelet ExecStart' }
        : { kind: 'unresolved', reason: 'no kubelet systemd unit' };
    return { kind: 'unresolved', reason: `unknown kubelet file ${a}` };
  }
  if (kind === 'config') {
    const cfg = facts.components.configValue(a as ComponentName, b as string);
    if (cfg.kind === 'error') return { kind: 'error', reason: cfg.reason };
    if (cfg.kind === 'hidden') return { kind: 'unresolved', reason: cfg.reason };
    if (cfg.kind === 'absent') return { kind: 'unresolved', reason: `${a} runs without a --config file` };
    return cfg.value
      ? onHost(facts, a as ComponentName, cfg.value, cfg.source)
      : { kind: 'unresolved', reason: `${b} is not set in ${a}'s --config file` };
  }
  if (kind === 'manifest') {
    // A static pod manifest in the kubelet's staticPodPath (kubeadm: /etc/kubernetes/manifests; RKE2:
    // /var/lib/rancher/rke2/agent/pod-manifests).
    const path = facts.components.manifestPath(a as ComponentName);
    return path
      ? { kind: 'path', path, source: `the kubelet's static pod directory ${facts.components.manifestDir}` }
      : { kind: 'unresolved', reason: `${a} has no static pod manifest` };
  }
  if (kind === 'flag') {
    const c = facts.components.flags(a as ComponentName);
    if (c.kind === 'absent') return { kind: 'unresolved', reason: c.reason };
    if (c.kind === 'error') return { kind: 'error', reason: c.reason };
    const p = c.flags.get(b as string);
    if (!p) return { kind: 'unresolved', reason: `--${b} not given in ${c.source}` };
    const r = onHost(facts, a as ComponentName, p, `--${b} in ${c.source}`);
    return r.kind === 'path' && c.embeddedIn ? { ...r, embeddedIn: c.embeddedIn } : r;
  }
  return { kind: 'unresolved', reason: `unknown path variable ${v}` };
}

/** A path a component names, as the host sees it (a pod's volume under /var/lib/kubelet/pods), or why it cannot. */
function onHost(facts: NodeFacts, component: ComponentName, path: string, source: string): ResolvedPath {
  if (/[*?]/.test(path)) return { kind: 'path', path, source };
  const where = facts.components.hostPath(component, path);
  if (where.kind === 'hidden') return { kind: 'unresolved', reason: where.reason };
  const named = posix.resolve('/', path);
  return {
    kind: 'path',
    path: where.path,
    source: where.path === named ? source : `${source}; ${named} in ${component}'s pod is ${where.path} on the host`,
  };
}
