import { chmodSync, chownSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { loadBenchmarks } from '../../../../agent/cis/benchmarks.js';
import { HostView } from '../../../../agent/cis/host.js';
import { scanNode } from '../../../../agent/cis/index.js';
import type { CheckResult } from '../../../../common/scan-report.js';
import { KUBELET_ZERO_MEANS_DEFAULT } from '../../../../agent/cis/kubelet-defaults.js';
import {
  parseNumberish,
  type AuditSpec,
  type CheckSpec,
  type ExpectSpec,
  type LeafAuditSpec,
} from '../../../../agent/cis/schema.js';
import { NodeModel, ReusableModelNode, setPath, yamlValue } from '../../../fixtures/node-model.js';
import { tempDir } from '../../../fixtures/tmp.js';

/*
 * For every check of every bundled benchmark that has an audit, build one node
 * that must PASS it and one that must FAIL it, by changing exactly what the
 * audit reads on an otherwise complete kubeadm control-plane node (which runs
 * the worker components too): real files with real modes and owners, real
 * kubelet and component command lines, real config files. Values are chosen
 * from the check's own expectation; what is asserted is that the engine
 * resolves each audit's evidence on a real node and reaches the right verdict
 * both ways.
 *
 * The checks are split by section over the files of this folder, so tap runs
 * them side by side; each file reuses one node root, changed in place for each
 * case and put back after it (`ReusableModelNode`), instead of building a whole
 * control plane some 200 times.
 */

/** The sections each test file of this folder drives (a check belongs to the group of its leading id). */
export const SECTION_GROUPS = {
  'control-plane-files': ['1.1'],
  'api-server': ['1.2'],
  'control-plane-components': ['1.3', '1.4', '2', '3'],
  'worker-node': ['4'],
} as const;
export type SectionGroup = keyof typeof SECTION_GROUPS;

type Mutation = (m: NodeModel) => void;

/** A value that meets (want=true) or violates (want=false) an expectation; undefined means "unset". */
function valueFor(expect: ExpectSpec, want: boolean, hasDefault: boolean): string | undefined | null {
  const v = expect.value ?? '';
  const n = parseNumberish(v) ?? 0;
  const flip = (x: string) =>
    x === 'true' ? 'false' : x === 'false' ? 'true' : /^-?\d+$/.test(x) ? String(Number(x) + 1) : `not-${x}`;
  switch (expect.op) {
    case 'eq':
      return want ? v : flip(v);
    case 'neq':
      return want ? flip(v) : v;
    case 'gte':
      return String(want ? n : n - 1);
    case 'gt':
      return String(want ? n + 1 : n);
    case 'lte':
      return String(want ? n : n + 1);
    case 'lt':
      return String(want ? n - 1 : n);
    case 'set':
      return want ? '/etc/kubernetes/pki/generated-value' : hasDefault ? null : undefined;
    case 'unset':
      return want ? undefined : 'some-value';
    case 'has':
      return want ? `Other,${v}` : 'Other';
    case 'lacks':
      return want ? 'Other' : `Other,${v}`;
    case 'in':
      return want ? expect.values?.[0] : 'not-in-the-list';
    case 'subsetOf':
      return want ? expect.values?.[0] : `${expect.values?.[0]},TLS_RSA_WITH_RC4_128_SHA`;
    case 'matches': {
      const re = new RegExp(v);
      const candidates = want ? ['127.0.0.1:10249', '127.0.0.1', 'true', 'any'] : ['0.0.0.0:10249', 'zz not matching'];
      return candidates.find((c) => re.test(c) === want) ?? null;
    }
  }
}

function leafMutation(a: LeafAuditSpec, want: boolean, root: () => string): Mutation | string {
  switch (a.type) {
    case 'file-mode':
    case 'file-owner': {
      return (m) => {
        m.fileOverrides.set(
          a.path,
          a.type === 'file-mode'
            ? { mode: want ? parseInt(a.mode, 8) : parseInt(a.mode, 8) | 0o007 }
            : want
              ? ownerIds(a.owner)
              : { uid: 1234, gid: 1234 },
        );
        void root;
      };
    }
    case 'kubelet': {
      const value = valueFor(a.expect, want, false);
      if (value === null) return `kubelet ${a.setting} op ${a.expect.op}: no value`;
      // A zero in the --config file of a field v1beta1 defaults on zero is the default: a zero must come as a flag.
      const zeroDefaulted =
        a.setting !== undefined &&
        a.flag !== undefined &&
        Object.hasOwn(KUBELET_ZERO_MEANS_DEFAULT, a.setting) &&
        value !== undefined &&
        parseNumberish(value) === 0;
      return (m) => {
        if (zeroDefaulted) m.setKubeletFlag(a.flag as string, value);
        else if (a.setting)
          setPath(
            m.kubeletConfig,
            a.setting,
            value === undefined
              ? undefined
              : a.setting === 'tlsCipherSuites'
                ? value.split(',')
                : a.setting.startsWith('featureGates.')
                  ? !value.split(',').some((v) => v.split('=').pop() === 'false')
                  : yamlValue(value),
          );
        else m.setKubeletFlag(a.flag as string, value);
        if (a.setting?.startsWith('featureGates.') && value !== undefined && /=/.test(value)) {
          const [gate, v] = value.split(',').pop()!.split('=');
          setPath(m.kubeletConfig, `featureGates.${gate}`, v === 'true');
        }
      };
    }
    case 'component-flag': {
      const value = valueFor(a.expect, want, a.default !== undefined);
      if (value === null)
        return `${a.component} --${a.flag} op ${a.expect.op} with default ${a.default}: cannot be made to ${want ? 'pass' : 'fail'} by the flag`;
      return (m) => {
        if (a.configField && a.component === 'kube-proxy') setPath(m.kubeProxyConfig, a.configField, value);
        else m.setComponentFlag(a.component, a.flag, value);
      };
    }
    case 'component-file': {
      const file = `/etc/kubernetes/verdict-${a.content}.yaml`;
      const text =
        a.content === 'encryption-config'
          ? `apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n${want ? '      - aescbc: {keys: [{name: k1, secret: c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/}]}\n      - identity: {}\n' : '      - identity: {}\n'}`
          : `apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: ${want ? 'Metadata' : 'RequestResponse'}\n`;
      return (m) => {
        m.extraFiles.set(file, text);
        m.setComponentFlag(a.component, a.flag, file);
      };
    }
    case 'systemd-property': {
      const value = valueFor(a.expect, want, false);
      return (m) => {
        m.kubeletUnitDropIn = value === undefined || value === null ? '' : `[Service]\n${a.property}=${value}\n`;
      };
    }
    case 'manual':
      return 'manual';
  }
}

function ownerIds(owner: string): { uid: number; gid: number } {
  const ids: Record<string, number> = { root: 0, etcd: 997 };
  const [u, g] = owner.split(':');
  return { uid: ids[u as string] ?? Number(u), gid: ids[g as string] ?? Number(g) };
}

function mutations(audit: AuditSpec, want: boolean, root: () => string): Mutation[] | string {
  if (audit.type === 'all' || audit.type === 'any') {
    const leaves = audit.of.filter((x) => x.type !== 'manual');
    // all: pass = every part passes, fail = the first part fails. any: pass = the first passes, fail = every part
    // fails.
    const plan = leaves.map((leaf, i) =>
      leafMutation(leaf, audit.type === 'all' ? (want ? true : i !== 0) : want ? i === 0 : false, root),
    );
    const bad = plan.find((p) => typeof p === 'string');
    return typeof bad === 'string' ? bad : (plan as Mutation[]);
  }
  const one = leafMutation(audit as LeafAuditSpec, want, root);
  return typeof one === 'string' ? one : [one];
}

/**
 * Apply file overrides to every file the (templated or globbed) path names on the built node; returns the undo
 * (each file's mode and owner as they were).
 */
function applyFileOverrides(m: NodeModel, rootDir: string): () => void {
  const host = new HostView(rootDir);
  const resolve = (p: string) =>
    p
      .replace(/\{kubelet-file:config[|}][^}]*\}?/, '/var/lib/kubelet/config.yaml')
      .replace(/\{manifest:([a-z-]+)\}/, '/etc/kubernetes/manifests/$1.yaml')
      .replace('{kubelet-file:kubeconfig}', '/etc/kubernetes/kubelet.conf')
      .replace('{kubelet-file:service}', '/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf')
      .replace('{kubelet:authentication.x509.clientCAFile}', '/etc/kubernetes/pki/ca.crt')
      .replace(/\{flag:kube-proxy:kubeconfig[^}]*\}/, '/var/lib/kube-proxy/kubeconfig.conf')
      .replace(/\{flag:etcd:data-dir[^}]*\}/, '/var/lib/etcd')
      .replace(/\{flag:kube-scheduler:kubeconfig[^}]*\}/, '/etc/kubernetes/scheduler.conf')
      .replace(/\{flag:kube-controller-manager:kubeconfig[^}]*\}/, '/etc/kubernetes/controller-manager.conf');
  const undo: (() => void)[] = [];
  for (const [pattern, spec] of m.fileOverrides) {
    const files = host.glob(resolve(pattern));
    if (files.length === 0) throw new Error(`no file on the model node matches ${pattern}`);
    for (const f of files) {
      const real = `${rootDir}${f}`;
      const was = statSync(real);
      undo.push(() => {
        if (spec.mode !== undefined) chmodSync(real, was.mode & 0o7777);
        if (spec.uid !== undefined) chownSync(real, was.uid, was.gid);
      });
      if (spec.mode !== undefined) chmodSync(real, spec.mode);
      if (spec.uid !== undefined) chownSync(real, spec.uid, spec.gid ?? spec.uid);
    }
  }
  return () => {
    for (const u of undo.reverse()) u();
  };
}

const benchmarks = loadBenchmarks();
const isRoot = process.getuid?.() === 0;

function groupOf(checkId: string): SectionGroup[] {
  return (Object.keys(SECTION_GROUPS) as SectionGroup[]).filter((g) =>
    SECTION_GROUPS[g].some((s) => checkId === s || checkId.startsWith(`${s}.`)),
  );
}

const audited = (check: CheckSpec) => check.audit !== undefined && check.audit.type !== 'manual';

/**
 * The test of one file of this folder: for every bundled benchmark, every audited check of `group`'s sections
 * PASSes on a node changed to meet it and FAILs on one changed to violate it, in a full scan of that node.
 */
export function driveEveryCheck(t: Test, group: SectionGroup): void {
  t.test('every audited check of every benchmark is driven by exactly one file of this folder', async (t) => {
    const stray = benchmarks.flatMap((b) =>
      b.checks.filter(audited).flatMap((c) => (groupOf(c.id).length === 1 ? [] : [`${b.id} ${c.id}`])),
    );
    t.same(stray, []);
  });
  for (const bench of benchmarks) {
    t.test(
      `${bench.id} ${SECTION_GROUPS[group].join(', ')}: every check with an audit passes on a compliant node and ` +
        'fails on a non-compliant one',
      async (t) => {
        const node = new ReusableModelNode(`${tempDir(t)}/node`);
        const checks = (bench.checks as CheckSpec[]).filter((c) => audited(c) && groupOf(c.id)[0] === group);
        t.ok(checks.length > 0, `${bench.id} has audited checks in ${SECTION_GROUPS[group].join(', ')}`);
        const unsupported: string[] = [];
        let evaluated = 0;
        let driven = 0;
        for (const check of checks) {
          if (!isRoot && JSON.stringify(check.audit).includes('file-owner')) continue; // owners need root
          driven++;
          for (const want of [true, false]) {
            const plan = mutations(check.audit as AuditSpec, want, () => node.root);
            if (typeof plan === 'string') {
              unsupported.push(`${check.id}: ${plan}`);
              continue;
            }
            const model = new NodeModel();
            for (const mutate of plan) mutate(model);
            const undoModel = node.apply(model);
            const undoFiles = applyFileOverrides(model, node.root);
            let result: CheckResult | undefined;
            try {
              const report = scanNode({
                hostRoot: node.root,
                nodeName: 'n',
                benchmark: bench.id,
                role: 'control-plane',
                level: 2,
                exclude: [],
                benchmarks: [bench],
              }).report;
              result = report.checks.find((c) => c.id === check.id);
            } finally {
              undoFiles();
              undoModel();
            }
            t.equal(
              result?.status,
              want ? 'PASS' : 'FAIL',
              `${bench.id} ${check.id} ${want ? 'passes' : 'fails'}: ${check.title} — actual ${result?.actual}; ${result?.skipReason ?? result?.evidence}`,
            );
            evaluated++;
          }
        }
        t.same(unsupported, [], 'every audited check could be driven both ways');
        t.equal(evaluated, 2 * driven, `${evaluated} verdicts checked, two for each of ${driven} checks`);
        t.same(
          nodeTree(node.root),
          nodeTree(new NodeModel().build(`${tempDir(t)}/fresh`).root),
          'after every case the reused node is again the node a fresh build writes',
        );
      },
    );
  }
}

/** Every path under a node root with its type, mode, owner and content: what a scan could tell apart. */
function nodeTree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = lstatSync(p);
      const what = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? `-> ${readlinkSync(p)}` : readFileSync(p, 'utf8');
      out.push(`${p.slice(root.length)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${what}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}
