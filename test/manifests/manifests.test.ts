import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import t, { type Test } from 'tap';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { Ajv, type ValidateFunction } from 'ajv';
import ajvFormats from 'ajv-formats';
import * as k8sCore from 'kubernetes-models/v1';
import * as k8sApps from 'kubernetes-models/apps/v1';
import * as k8sRbac from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as k8sApiext from 'kubernetes-models/apiextensions.k8s.io/v1';
import * as k8sScheduling from 'kubernetes-models/scheduling.k8s.io/v1';
import * as k8sPolicy from 'kubernetes-models/policy/v1';
import * as promOperator from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { packageRoot } from '../../common/package-root.js';
import { findTool, skipUnlessFound } from '../fixtures/tools.js';
import { parseRunArgs } from '../../agent/run.js';
import { parseAggregatorArgs } from '../../aggregator/config.js';
import { AGENT_AUDIENCE } from '../../aggregator/kube/auth.js';
import { isValid, toDefinition } from '../../aggregator/reports/globalreport.js';
import { POLICY_RESOURCES } from '../../aggregator/reports/policy-resources.js';
import { reportStatus } from '../../aggregator/reports/scheduler.js';
import type { ReportRunRecord } from '../../aggregator/store/index.js';

// The install manifests (manifests/), checked without a cluster:
// - every kustomization is rendered by the real `kubectl kustomize` (kubectl
//   1.21 or later on PATH; without it the tests on renderings are skipped,
//   naming what to install, and CI reruns them where kubectl is installed);
// - every object is validated against the Kubernetes OpenAPI schemas with
//   kubernetes-models (and @kubernetes-models/prometheus-operator for
//   ServiceMonitor/PrometheusRule), and type-checked against the same models'
//   TypeScript interfaces, which rejects unknown fields as the API server's
//   strict field validation does (the models' validate() ignores them);
// - GlobalReports are validated against the CRD's openAPIV3Schema (ajv) and
//   by the aggregator's own parser, which must agree;
// - the security properties docs/DESIGN.md ("Trust") promises are asserted on the rendered
//   objects, and every flag the manifests pass is parsed by the programs' own
//   argument parsers.
// VERDICT_MANIFESTS_DIR points the test at another copy of manifests/.

const root = packageRoot();
const MANIFESTS = resolve(process.env.VERDICT_MANIFESTS_DIR ?? join(root, 'manifests'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
  files: string[];
  dependencies: Record<string, string>;
};
const IMAGE = `ghcr.io/verdict-dev/verdict:${pkg.version}`;
const NAMESPACE = 'verdict';

/** The scheduler's Lease, as aggregator/main.ts names it. */
const LEASE = 'verdict-report-scheduler';

/**
 * Every (API group, resource) the aggregator's Kubernetes code (aggregator/kube/)
 * calls: REST paths in its string literals, and the [group, version, resource]
 * tables of what it watches.
 */
const AGGREGATOR_APIS: [string, string][] = (() => {
  const out = new Map<string, [string, string]>();
  for (const f of allFiles(join(root, 'aggregator', 'kube')).filter((x) => x.endsWith('.ts'))) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/[`'](\/apis?\/[^`'\s]+)[`']/g)) {
      const parts = (m[1] as string).split('/').slice(1);
      const [g, rest] = parts[0] === 'api' ? ['', parts.slice(2)] : [parts[1] as string, parts.slice(3)];
      const segs = rest[0] === 'namespaces' && rest.length > 2 ? rest.slice(2) : rest;
      const resource = segs[0];
      if (!resource || resource.includes('$')) continue;
      const sub = segs[2] !== undefined && !segs[2].includes('$') ? `/${segs[2]}` : '';
      out.set(`${g}|${resource}${sub}`, [g, `${resource}${sub}`]);
    }
    for (const m of text.matchAll(/\[\s*'([a-z0-9.]*)',\s*'v[0-9a-z]+',\s*'([a-z]+)'\s*\]/g))
      out.set(`${m[1]}|${m[2]}`, [m[1] as string, m[2] as string]);
  }
  // kube/policy-history.ts builds its watch paths from POLICY_RESOURCES (each with a watchVersion), which no path
  // literal shows: every one of them is read (list and watch) too.
  for (const r of POLICY_RESOURCES)
    if (r.watchVersion !== undefined) out.set(`${r.group}|${r.resource}`, [r.group, r.resource]);
  return [...out.values()];
})();

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
}

const id = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
const clone = <T>(v: T): T => structuredClone(v);
const groupOf = (apiVersion: string) => (apiVersion.includes('/') ? apiVersion.split('/')[0] : '');

// ---------------------------------------------------------------- rendering

const KUSTOMIZATION_NAMES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
  'PriorityClass',
]);

function kustomizationFile(dir: string): string | undefined {
  const found = KUSTOMIZATION_NAMES.filter((n) => existsSync(join(dir, n)));
  if (found.length > 1) throw new Error(`${dir} has more than one kustomization file: ${found.join(', ')}`);
  return found[0] === undefined ? undefined : join(dir, found[0]);
}

function readDocs(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  const out: unknown[] = [];
  for (const d of Array.isArray(docs) ? docs : [docs]) {
    if (d.errors.length > 0) throw new Error(`${relative(MANIFESTS, file)}: ${d.errors[0]?.message}`);
    if (d.warnings.length > 0) throw new Error(`${relative(MANIFESTS, file)}: ${d.warnings[0]?.message}`);
    const v = d.toJS() as unknown;
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

function readObjects(file: string): K8sObject[] {
  return readDocs(file).map((v, i) => {
    const o = v as K8sObject;
    if (typeof o?.apiVersion !== 'string' || typeof o.kind !== 'string' || typeof o.metadata?.name !== 'string') {
      throw new Error(
        `${relative(MANIFESTS, file)} document ${i + 1} is not a Kubernetes object (apiVersion, kind, metadata.name)`,
      );
    }
    return o;
  });
}

/**
 * Why kubectl cannot render here, or false. kubectl before 1.21 embeds
 * kustomize v2, which knows neither components nor the patches field the
 * overlays use; Debian 12's kubernetes-client package (the only kubectl in
 * Debian's archive) is 1.20, so the kubectl this needs comes from elsewhere.
 */
function kubectlSkipReason(kubectl: string | undefined): string | false {
  const install =
    "install kubectl 1.21 or later (Debian 12's kubernetes-client is 1.20, too old: its kustomize knows no components)";
  if (kubectl === undefined) return skipUnlessFound({ kubectl }, install);
  const v = spawnSync(kubectl, ['version', '--client', '-o', 'json'], { encoding: 'utf8' });
  const minor = Number(/"minor":\s*"(\d+)/.exec(v.stdout ?? '')?.[1]);
  if (v.status === 0 && minor >= 21) return false;
  const found =
    /"gitVersion":\s*"([^"]+)/.exec(v.stdout ?? '')?.[1] ?? 'a kubectl that does not answer `version --client -o json`';
  return `needs kubectl 1.21 or later, found ${found} at ${kubectl}: ${install}`;
}

const KUBECTL = findTool('kubectl');
const KUBECTL_SKIP = kubectlSkipReason(KUBECTL);

/** What `kubectl kustomize DIR` prints, as objects; throws with kubectl's error when it refuses. */
function render(dir: string): K8sObject[] {
  if (KUBECTL === undefined || KUBECTL_SKIP !== false) throw new Error(`cannot render: ${KUBECTL_SKIP}`);
  const r = spawnSync(KUBECTL, ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`kubectl kustomize ${relative(MANIFESTS, dir) || '.'}: ${r.stderr.trim()}`);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

/** A kustomization's (or component's) fields that name files and directories. */
interface KustomizationRefs {
  resources?: string[];
  components?: string[];
  patches?: { path?: string }[];
  patchesStrategicMerge?: string[];
  patchesJson6902?: { path?: string }[];
}

/**
 * Every file the kustomization in `dir` names, directly or through the
 * directories and components it names, with the kustomization files themselves
 * (so that none in manifests/ is left unused). This only follows references;
 * the rendering is kubectl's.
 */
function referencedFiles(dir: string, out = new Set<string>()): Set<string> {
  const file = kustomizationFile(dir);
  if (!file) throw new Error(`${relative(MANIFESTS, dir) || '.'} has no kustomization file`);
  if (out.has(file)) return out;
  out.add(file);
  const k = (readDocs(file)[0] ?? {}) as KustomizationRefs;
  const paths = [
    ...(k.resources ?? []),
    ...(k.components ?? []),
    ...(k.patches ?? []).flatMap((p) => (p.path === undefined ? [] : [p.path])),
    ...(k.patchesStrategicMerge ?? []),
    ...(k.patchesJson6902 ?? []).flatMap((p) => (p.path === undefined ? [] : [p.path])),
  ];
  for (const r of paths) {
    const p = resolve(dir, r);
    if (!existsSync(p)) continue; // a remote resource, or a missing file kubectl reports
    if (statSync(p).isDirectory()) referencedFiles(p, out);
    else out.add(p);
  }
  return out;
}

function findKustomizationDirs(dir: string): string[] {
  const out: string[] = [];
  const file = kustomizationFile(dir);
  if (file && (readDocs(file)[0] as { kind?: string } | undefined)?.kind === 'Kustomization') out.push(dir);
  for (const e of readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) out.push(...findKustomizationDirs(join(dir, e.name)));
  return out;
}

function allFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? allFiles(join(dir, e.name)) : [join(dir, e.name)],
  );
}

const sortObjects = (objs: K8sObject[]) =>
  [...objs].sort((a, b) => `${a.apiVersion}|${id(a)}`.localeCompare(`${b.apiVersion}|${id(b)}`));

// ---------------------------------------------------------------- helpers on rendered objects

type Container = {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: {
    name: string;
    value?: string;
    valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
  }[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  securityContext?: {
    runAsUser?: number;
    runAsNonRoot?: boolean;
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
    seccompProfile?: { type: string };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; mountPropagation?: string }[];
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
};
type Volume = {
  name: string;
  hostPath?: { path: string; type?: string };
  persistentVolumeClaim?: { claimName: string };
  projected?: { sources: { serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string } }[] };
};
type PodSpec = {
  serviceAccountName?: string;
  hostPID?: boolean;
  hostNetwork?: boolean;
  hostIPC?: boolean;
  priorityClassName?: string;
  tolerations?: { key?: string; operator?: string; value?: string; effect?: string }[];
  securityContext?: { runAsUser?: number; runAsNonRoot?: boolean; seccompProfile?: { type: string } };
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
};
type Workload = K8sObject & {
  spec: {
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
  };
};
type Rule = {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
};

const workloads = (objs: K8sObject[]) =>
  objs.filter((o): o is Workload =>
    ['DaemonSet', 'Deployment', 'StatefulSet', 'Job', 'CronJob', 'Pod'].includes(o.kind),
  );
const byKind = <T extends K8sObject = K8sObject>(objs: K8sObject[], kind: string, name?: string) =>
  objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name)) as T[];
const one = <T extends K8sObject = K8sObject>(objs: K8sObject[], kind: string, name: string): T => {
  const found = byKind<T>(objs, kind, name);
  if (found.length !== 1) throw new Error(`expected one ${kind}/${name}, found ${found.length}`);
  return found[0] as T;
};
const containersOf = (w: Workload) => [
  ...(w.spec.template.spec.initContainers ?? []),
  ...w.spec.template.spec.containers,
];

/** The rules bound to a service account (ClusterRoleBindings and RoleBindings). */
function rulesOf(objs: K8sObject[], sa: string): { role: string; rules: Rule[]; namespace?: string }[] {
  const out: { role: string; rules: Rule[]; namespace?: string }[] = [];
  for (const b of objs.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') as (K8sObject & {
    roleRef: { kind: string; name: string };
    subjects?: { kind: string; name: string; namespace?: string }[];
  })[]) {
    const bound = (b.subjects ?? []).some(
      (s) => s.kind === 'ServiceAccount' && s.name === sa && (s.namespace ?? b.metadata.namespace) === NAMESPACE,
    );
    if (!bound) continue;
    const role = objs.find(
      (o) =>
        o.kind === b.roleRef.kind &&
        o.metadata.name === b.roleRef.name &&
        (o.kind === 'ClusterRole' || o.metadata.namespace === b.metadata.namespace),
    ) as (K8sObject & { rules?: Rule[] }) | undefined;
    if (!role) throw new Error(`${id(b)} refers to a missing ${b.roleRef.kind} ${b.roleRef.name}`);
    out.push({
      role: id(role),
      rules: role.rules ?? [],
      namespace: b.kind === 'RoleBinding' ? b.metadata.namespace : undefined,
    });
  }
  return out;
}

/** Whether the rules allow a verb on a resource: on every object of it, or (with name) on that one. */
const allows = (rules: Rule[], group: string, resource: string, verb: string, name?: string) =>
  rules.some(
    (r) =>
      (r.apiGroups ?? []).includes(group) &&
      (r.resources ?? []).includes(resource) &&
      r.verbs.includes(verb) &&
      (r.resourceNames === undefined || (name !== undefined && r.resourceNames.includes(name))),
  );

/** Kubernetes' toleration matching (k8s.io/api core/v1 toleration.go ToleratesTaint). */
function tolerates(tols: PodSpec['tolerations'], taint: { key: string; value?: string; effect: string }): boolean {
  return (tols ?? []).some((tol) => {
    if (tol.effect && tol.effect !== taint.effect) return false;
    if (tol.key && tol.key !== taint.key) return false;
    if (tol.operator === 'Exists') return true;
    return (tol.operator ?? 'Equal') === 'Equal' && (tol.value ?? '') === (taint.value ?? '');
  });
}

/** Container args with $(VAR) expanded as the kubelet does, from the container's env. */
function expandedArgs(c: Container): string[] {
  const env = new Map<string, string>();
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env.set(e.name, e.value);
    else if (e.valueFrom?.secretKeyRef) env.set(e.name, 'postgres://verdict:secret@postgres.example:5432/verdict');
    else if (e.valueFrom?.fieldRef) env.set(e.name, 'node-1');
  }
  return (c.args ?? []).map((a) =>
    a.replace(/\$\((\w+)\)/g, (_m, name: string) => {
      const v = env.get(name);
      if (v === undefined)
        throw new Error(`${c.name}: $(${name}) is not set in the container's env, so it would be passed literally`);
      return v;
    }),
  );
}

const flag = (args: string[], name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

// ---------------------------------------------------------------- schemas

type ModelClass = { apiVersion: string; kind: string; new (data: unknown): { validate(): void } };
const MODELS = new Map<string, ModelClass>();
for (const mod of [k8sCore, k8sApps, k8sRbac, k8sApiext, k8sScheduling, k8sPolicy, promOperator] as Record<
  string,
  unknown
>[]) {
  for (const v of Object.values(mod)) {
    const c = v as { apiVersion?: unknown; kind?: unknown };
    if (typeof v === 'function' && typeof c.apiVersion === 'string' && typeof c.kind === 'string')
      MODELS.set(`${c.apiVersion}/${c.kind}`, v as ModelClass);
  }
}

/** The TypeScript interface that describes a kind (for the unknown-field check). */
function typeImport(o: K8sObject): string {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  if (group === 'monitoring.coreos.com')
    return `import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${o.kind}').I${o.kind}`;
  return `import('kubernetes-models/${group ? `${group}/` : ''}${version}/${o.kind}').I${o.kind}`;
}

/**
 * Type-checks each object literal against its kubernetes-models interface:
 * TypeScript's excess-property check rejects an unknown or misspelt field at
 * any depth, which the models' validate() does not. Answers the diagnostics
 * per object.
 */
function unknownFields(objs: K8sObject[]): Map<K8sObject, string[]> {
  const file = join(root, 'test', 'manifests', '__manifest_types__.ts');
  const lines = objs.map((o, i) => `export const o${i}: ${typeImport(o)} = ${JSON.stringify(o)};`);
  const text = lines.join('\n') + '\n';
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (f, lang, ...rest) =>
    f === file ? ts.createSourceFile(f, text, lang) : getSourceFile.call(host, f, lang, ...rest);
  host.fileExists = (f) => f === file || fileExists.call(host, f);
  host.readFile = (f) => (f === file ? text : readFile.call(host, f));
  const program = ts.createProgram([file], options, host);
  const out = new Map<K8sObject, string[]>(objs.map((o) => [o, []]));
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    if (d.file?.fileName !== file || d.start === undefined)
      throw new Error(`type check of the manifests failed outside them: ${message}`);
    const line = d.file.getLineAndCharacterOfPosition(d.start).line;
    const near = text.slice(Math.max(0, d.start - 60), d.start + 40);
    out.get(objs[line] as K8sObject)?.push(`${message} (near …${near}…)`);
  }
  return out;
}

type Schema = { [k: string]: unknown };

/** Structural schema rules (apiextensions v1): a type everywhere, no $ref, properties xor additionalProperties. */
function structuralProblems(s: Schema, path: string): string[] {
  const out: string[] = [];
  const lax = s['x-kubernetes-int-or-string'] === true || s['x-kubernetes-preserve-unknown-fields'] === true;
  if (typeof s.type !== 'string' && !lax) out.push(`${path}: no type`);
  if ('$ref' in s) out.push(`${path}: $ref is not allowed`);
  if (s.properties && s.additionalProperties !== undefined && s.additionalProperties !== false)
    out.push(`${path}: both properties and additionalProperties`);
  for (const [k, v] of Object.entries((s.properties as Record<string, Schema>) ?? {}))
    out.push(...structuralProblems(v, `${path}.${k}`));
  if (s.items) out.push(...structuralProblems(s.items as Schema, `${path}[]`));
  if (s.additionalProperties && typeof s.additionalProperties === 'object')
    out.push(...structuralProblems(s.additionalProperties as Schema, `${path}{}`));
  return out;
}

/**
 * The CRD schema as the API server applies it: unknown fields are rejected (strict field validation) unless preserved.
 */
function strictSchema(s: Schema): Schema {
  const c: Schema = { ...s };
  for (const k of Object.keys(c)) if (k.startsWith('x-kubernetes-')) delete c[k];
  if (c.properties) {
    c.properties = Object.fromEntries(
      Object.entries(c.properties as Record<string, Schema>).map(([k, v]) => [k, strictSchema(v)]),
    );
    if (s['x-kubernetes-preserve-unknown-fields'] !== true && c.additionalProperties === undefined)
      c.additionalProperties = false;
  }
  if (c.items) c.items = strictSchema(c.items as Schema);
  if (c.additionalProperties && typeof c.additionalProperties === 'object')
    c.additionalProperties = strictSchema(c.additionalProperties as Schema);
  return c;
}

function compile(schema: Schema): ValidateFunction {
  const ajv = new Ajv({ strict: false, allErrors: true });
  (ajvFormats as unknown as (a: Ajv) => void)(ajv);
  return ajv.compile(schema);
}

// ---------------------------------------------------------------- the renderings

const TARGETS = findKustomizationDirs(MANIFESTS).map((d) => relative(MANIFESTS, d) || '.');
const rendered = new Map<string, K8sObject[]>();
const renderErrors = new Map<string, string>();
const used = new Set<string>();
if (KUBECTL_SKIP === false)
  for (const target of TARGETS) {
    try {
      rendered.set(target, render(join(MANIFESTS, target)));
    } catch (err) {
      renderErrors.set(target, (err as Error).message);
    }
    for (const f of referencedFiles(join(MANIFESTS, target))) used.add(f);
  }
/** A test on the renderings: skipped, naming what to install, without a kubectl that can render. */
const renderedTest = (name: string, fn: (t: Test) => Promise<void>) => t.test(name, { skip: KUBECTL_SKIP }, fn);
const get = (target: string): K8sObject[] => {
  const objs = rendered.get(target);
  if (!objs) throw new Error(`${target} did not render: ${renderErrors.get(target) ?? 'not a kustomization'}`);
  return objs;
};
const distinct: K8sObject[] = [];
{
  const seen = new Set<string>();
  for (const objs of rendered.values())
    for (const o of objs) {
      const key = JSON.stringify(o);
      if (!seen.has(key)) {
        seen.add(key);
        distinct.push(o);
      }
    }
}

// ---------------------------------------------------------------- tests

renderedTest('the kustomizations render, and every file in manifests/ is used', async (t) => {
  t.same(
    TARGETS.filter((x) =>
      ['.', 'base', 'monitoring', 'overlays/postgres', 'overlays/kubelet-configz'].includes(x),
    ).sort(),
    ['.', 'base', 'monitoring', 'overlays/kubelet-configz', 'overlays/postgres'],
    'the install, its parts and both overlays are kustomizations',
  );
  for (const target of TARGETS) t.notOk(renderErrors.get(target), `${target} renders`);
  // Data files (a Prometheus rules file, dashboard JSON) may lie beside them;
  // a Kubernetes object no kustomization lists would never be applied.
  const isObjectFile = (f: string) => {
    if (!/\.(ya?ml|json)$/.test(f) && !KUSTOMIZATION_NAMES.includes(basename(f))) return false;
    try {
      return readDocs(f).some(
        (d) => typeof (d as K8sObject | null)?.apiVersion === 'string' && typeof (d as K8sObject).kind === 'string',
      );
    } catch {
      return true;
    }
  };
  const unused = allFiles(MANIFESTS).filter((f) => !used.has(f) && isObjectFile(f));
  t.same(
    unused.map((f) => relative(MANIFESTS, f)),
    [],
    'no Kubernetes object file lies unused (one the kustomizations do not list is never applied)',
  );
});

renderedTest('kubectl apply -f manifests/base/ applies the same objects as -k, namespace first', async (t) => {
  const files = readdirSync(join(MANIFESTS, 'base'))
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .sort();
  t.notOk(
    files.some((f) => /^kustomization\.ya?ml$/.test(f)),
    'no kustomization.yaml that kubectl apply -f would try to create',
  );
  const plain = files.flatMap((f) => readObjects(join(MANIFESTS, 'base', f)));
  t.same(sortObjects(plain), sortObjects(get('base')), 'the files already carry the namespace kustomize sets');
  t.equal(plain[0]?.kind, 'Namespace', 'the first file applied creates the namespace');
  const crdIndex = plain.findIndex((o) => o.kind === 'CustomResourceDefinition');
  t.ok(
    crdIndex >= 0 && plain.every((o, i) => groupOf(o.apiVersion) !== 'compliance.verdict.dev' || i > crdIndex),
    'the CRD comes before any object of its kind',
  );
  for (const o of plain)
    if (!CLUSTER_SCOPED.has(o.kind)) t.equal(o.metadata.namespace, NAMESPACE, `${id(o)} names its namespace`);
});

renderedTest('every object validates against the Kubernetes OpenAPI schemas (kubernetes-models)', async (t) => {
  for (const o of distinct) {
    const Model = MODELS.get(`${o.apiVersion}/${o.kind}`);
    if (!Model) {
      t.fail(`${o.apiVersion} ${o.kind} (${id(o)}) has no schema to validate against`);
      continue;
    }
    t.doesNotThrow(() => new Model(clone(o)).validate(), `${o.apiVersion} ${id(o)}`);
  }
});

renderedTest('no object has an unknown or misspelt field (type-checked against the models)', async (t) => {
  const problems = unknownFields(distinct);
  for (const [o, messages] of problems) t.same(messages, [], `${o.apiVersion} ${id(o)}`);
});

renderedTest('the schema checks do catch mistakes', async (t) => {
  const ds = clone(one<Workload>(get('base'), 'DaemonSet', 'verdict-agent'));
  (ds.spec.template.spec.containers[0] as unknown as Obj).readOnlyRootFileSystem = true; // misspelt
  (ds.spec.template.spec as unknown as Obj).hostPid = true; // misspelt
  const messages = unknownFields([ds]).get(ds) ?? [];
  t.match(messages.join('\n'), /readOnlyRootFileSystem/, 'a misspelt container field');
  const bad = clone(ds);
  (bad.spec.template.spec.containers[0] as unknown as Obj).ports = [{ containerPort: 'http' }];
  t.throws(() => new k8sApps.DaemonSet(bad as never).validate(), 'a wrongly typed field');
});

renderedTest('GlobalReport CRD: v1, structural, status subresource, printer columns', async (t) => {
  const crd = one<
    K8sObject & {
      spec: {
        group: string;
        scope: string;
        names: { kind: string; plural: string; shortNames?: string[] };
        versions: {
          name: string;
          served: boolean;
          storage: boolean;
          subresources?: { status?: object };
          additionalPrinterColumns?: { name: string; type: string; jsonPath: string }[];
          schema: { openAPIV3Schema: Schema };
        }[];
      };
    }
  >(get('base'), 'CustomResourceDefinition', 'globalreports.compliance.verdict.dev');
  t.doesNotThrow(() => new k8sApiext.CustomResourceDefinition(clone(crd) as never).validate());
  t.equal(crd.spec.group, 'compliance.verdict.dev');
  t.equal(crd.spec.scope, 'Cluster');
  t.equal(crd.spec.names.kind, 'GlobalReport');
  t.ok(crd.spec.names.shortNames?.includes('greport'), 'short name greport');
  t.equal(crd.spec.versions.length, 1);
  const v = crd.spec.versions[0]!;
  t.match(v, { name: 'v1', served: true, storage: true, subresources: { status: {} } });
  t.same(structuralProblems(v.schema.openAPIV3Schema, '$'), [], 'structural schema');
  t.same(
    v.additionalPrinterColumns?.map((c) => c.name).filter((n) => n !== 'Age'),
    ['Type', 'Schedule', 'Suspended', 'Last Success'],
  );
  // Every printer column's path exists in the schema.
  for (const c of v.additionalPrinterColumns ?? []) {
    if (c.jsonPath.startsWith('.metadata.')) continue;
    let s: Schema | undefined = v.schema.openAPIV3Schema;
    for (const part of c.jsonPath.slice(1).split('.')) {
      const [field, index] = part.split('[') as [string, string | undefined];
      s = (s?.properties as Record<string, Schema> | undefined)?.[field];
      if (index !== undefined) s = s?.items as Schema | undefined;
    }
    t.ok(s, `printer column ${c.name}: ${c.jsonPath} is in the schema`);
  }
  const spec = (v.schema.openAPIV3Schema.properties as Record<string, Schema>).spec as Schema;
  t.same(
    (spec.properties as Record<string, Schema>).reportType?.enum,
    ['cis-benchmark', 'network-access', 'inventory', 'policy-audit'],
    'report types as the aggregator knows them',
  );
  t.match(
    JSON.stringify(spec['x-kubernetes-validations']),
    /medThreshold.*highThreshold/,
    'a CEL rule keeps medThreshold at or below highThreshold',
  );
});

renderedTest('GlobalReports: the CRD schema and the aggregator accept and refuse the same definitions', async (t) => {
  const crd = one<K8sObject & { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } }>(
    get('base'),
    'CustomResourceDefinition',
    'globalreports.compliance.verdict.dev',
  );
  const schema = crd.spec.versions[0]!.schema.openAPIV3Schema;
  const validate = compile(strictSchema(schema));
  const report = (spec: unknown, name = 'r') => ({
    apiVersion: 'compliance.verdict.dev/v1',
    kind: 'GlobalReport',
    metadata: { name },
    spec,
  });
  const good: [string, unknown][] = [
    [
      'hourly CIS report with every option',
      report({
        reportType: 'cis-benchmark',
        schedule: '0 * * * *',
        suspend: false,
        jobNodeSelector: { 'kubernetes.io/os': 'linux' },
        cis: {
          highThreshold: 90,
          medThreshold: 60,
          includeUnscoredTests: false,
          numFailedTests: 10,
          resultsFilters: [
            { benchmarkSelection: { kubernetesVersion: '1.32' }, exclude: ['4.2.6'] },
            { include: ['1.1.1', '1.1.2'] },
          ],
        },
      }),
    ],
    [
      'network access of two namespaces',
      report({
        reportType: 'network-access',
        schedule: '0 0 * * *',
        endpoints: {
          selector: "app == 'web'",
          namespaces: { names: ['shop', 'payments'] },
          serviceAccounts: { selector: 'has(team)' },
        },
      }),
    ],
    ['on-demand inventory', report({ reportType: 'inventory' })],
    [
      'suspended policy audit',
      report({
        reportType: 'policy-audit',
        schedule: '*/30 * * * *',
        suspend: true,
        endpoints: { namespaces: { selector: "env == 'prod'" } },
      }),
    ],
  ];
  const examplesDir = join(root, 'examples', 'reports');
  if (existsSync(examplesDir)) {
    for (const f of readdirSync(examplesDir).filter((x) => /\.ya?ml$/.test(x))) {
      for (const d of readDocs(join(examplesDir, f)) as K8sObject[]) {
        if (d.kind !== 'GlobalReport') continue;
        // A Calico Enterprise definition carries over by changing its apiVersion.
        good.push([`examples/reports/${f}: ${d.metadata.name}`, { ...d, apiVersion: 'compliance.verdict.dev/v1' }]);
      }
    }
  }
  for (const [what, doc] of good) {
    t.ok(validate(doc), `CRD schema accepts: ${what} ${JSON.stringify(validate.errors ?? [])}`);
    const def = toDefinition(clone(doc), 'test');
    t.ok(isValid(def), `the aggregator accepts: ${what} ${isValid(def) ? '' : def.error}`);
  }
  const bad: [string, unknown][] = [
    ['an unknown report type', report({ reportType: 'pci-dss' })],
    ['no report type', report({ schedule: '0 * * * *' })],
    ['a misspelt field', report({ reportType: 'inventory', suspended: true })],
    ['a threshold above 100', report({ reportType: 'cis-benchmark', cis: { highThreshold: 101 } })],
    ['a fractional threshold', report({ reportType: 'cis-benchmark', cis: { medThreshold: 50.5 } })],
    ['a negative numFailedTests', report({ reportType: 'cis-benchmark', cis: { numFailedTests: -1 } })],
    [
      'an unknown namespaces field',
      report({ reportType: 'network-access', endpoints: { namespaces: { labels: { a: 'b' } } } }),
    ],
    ['a non-string node selector value', report({ reportType: 'inventory', jobNodeSelector: { a: 1 } })],
    [
      'names that are not a list',
      report({ reportType: 'network-access', endpoints: { serviceAccounts: { names: 'default' } } }),
    ],
  ];
  for (const [what, doc] of bad) {
    t.notOk(validate(doc), `CRD schema refuses ${what}`);
    t.notOk(isValid(toDefinition(clone(doc), 'test')), `the aggregator refuses ${what}`);
  }
  t.notOk(
    validate({ apiVersion: 'compliance.verdict.dev/v1', kind: 'GlobalReport', metadata: { name: 'x' } }),
    'spec is required',
  );
});

renderedTest('GlobalReport status written by the aggregator fits the CRD status schema', async (t) => {
  const crd = one<K8sObject & { spec: { versions: { schema: { openAPIV3Schema: Schema } }[] } }>(
    get('base'),
    'CustomResourceDefinition',
    'globalreports.compliance.verdict.dev',
  );
  const statusSchema = (crd.spec.versions[0]!.schema.openAPIV3Schema.properties as Record<string, Schema>)
    .status as Schema;
  const validate = compile(strictSchema(statusSchema));
  const run = (
    id: string,
    status: ReportRunRecord['status'],
    extra: Partial<ReportRunRecord> = {},
  ): ReportRunRecord => ({
    id,
    report: 'hourly',
    reportType: 'cis-benchmark',
    trigger: 'scheduled',
    status,
    attempts: 1,
    intervalStartMs: Date.parse('2026-11-20T09:00:00Z'),
    intervalEndMs: Date.parse('2026-11-20T10:00:00Z'),
    notBeforeMs: Date.parse('2026-11-20T10:30:00Z'),
    createdMs: Date.parse('2026-11-20T10:00:01Z'),
    inputs: {},
    ...extra,
  });
  const status = reportStatus([
    run('r1', 'succeeded', { finishedMs: Date.parse('2026-11-20T10:31:00Z') }),
    run('r2', 'failed', {
      finishedMs: Date.parse('2026-11-20T11:31:00Z'),
      error: 'store unavailable',
      intervalEndMs: Date.parse('2026-11-20T11:00:00Z'),
    }),
    run('r3', 'queued', { trigger: 'on-demand' }),
  ]);
  t.ok(validate(status), `status validates ${JSON.stringify(validate.errors ?? [])}`);
  t.ok(validate(reportStatus([])), 'the status of a report that never ran validates (lastScheduledReportJob: null)');
  t.ok(
    validate({ error: 'VERDICT_REPORT_INVALID: spec.schedule: invalid' }),
    'the status of an invalid definition validates',
  );
  t.notOk(validate({ ...status, lastRun: 'x' }), 'an unknown status field would be refused');
});

renderedTest('host access: read-only host mounts, host PID only for the agent, no privileged container', async (t) => {
  for (const [target, objs] of rendered) {
    for (const w of workloads(objs)) {
      const pod = w.spec.template.spec;
      const isAgent = w.metadata.name === 'verdict-agent';
      t.equal(
        Boolean(pod.hostPID),
        isAgent,
        `${target} ${id(w)}: hostPID ${isAgent ? 'on (the agent reads the host processes)' : 'off'}`,
      );
      t.notOk(pod.hostNetwork, `${target} ${id(w)}: no hostNetwork`);
      t.notOk(pod.hostIPC, `${target} ${id(w)}: no hostIPC`);
      const hostPaths = new Map((pod.volumes ?? []).filter((v) => v.hostPath).map((v) => [v.name, v.hostPath!.path]));
      if (!isAgent) t.equal(hostPaths.size, 0, `${target} ${id(w)}: no hostPath volume`);
      for (const c of containersOf(w)) {
        t.not(c.securityContext?.privileged, true, `${target} ${id(w)}/${c.name}: not privileged`);
        for (const m of c.volumeMounts ?? []) {
          const path = hostPaths.get(m.name);
          if (path === undefined) continue;
          if (path === '/var/lib/verdict/spool')
            t.notOk(m.readOnly, `${target} ${id(w)}/${c.name}: the spool is the one writable host path`);
          else t.equal(m.readOnly, true, `${target} ${id(w)}/${c.name}: host path ${path} mounted read-only`);
          t.not(
            m.mountPropagation,
            'Bidirectional',
            `${target} ${id(w)}/${c.name}: no bidirectional propagation from ${path}`,
          );
        }
      }
    }
  }
});

renderedTest(
  'every container: read-only root, no privilege escalation, seccomp, resources, the release image',
  async (t) => {
    for (const [target, objs] of rendered) {
      for (const w of workloads(objs)) {
        const pod = w.spec.template.spec;
        for (const c of containersOf(w)) {
          const where = `${target} ${id(w)}/${c.name}`;
          const sc = c.securityContext ?? {};
          t.equal(sc.readOnlyRootFilesystem, true, `${where}: readOnlyRootFilesystem`);
          t.equal(sc.allowPrivilegeEscalation, false, `${where}: allowPrivilegeEscalation false`);
          t.equal(
            (sc.seccompProfile ?? pod.securityContext?.seccompProfile)?.type,
            'RuntimeDefault',
            `${where}: seccomp RuntimeDefault`,
          );
          t.same(sc.capabilities?.drop, ['ALL'], `${where}: drops every capability`);
          for (const kind of ['requests', 'limits'] as const)
            for (const r of ['cpu', 'memory'])
              t.ok(c.resources?.[kind]?.[r] !== undefined, `${where}: ${kind}.${r} set`);
          t.equal(c.image, IMAGE, `${where}: image is the package version ${pkg.version}`);
        }
      }
    }
  },
);

renderedTest('the agent: uid 0 with DAC_READ_SEARCH only, every node, projected token, node name', async (t) => {
  for (const [target, objs] of rendered) {
    const agents = byKind<Workload>(objs, 'DaemonSet', 'verdict-agent');
    if (agents.length === 0) continue;
    const ds = agents[0]!;
    const pod = ds.spec.template.spec;
    const c = pod.containers.find((x) => x.name === 'agent')!;
    t.ok(c, `${target}: the agent container`);
    const sc = c.securityContext ?? {};
    t.equal(
      sc.runAsUser ?? pod.securityContext?.runAsUser,
      0,
      `${target}: runs as uid 0 (capabilities of a non-root user do nothing)`,
    );
    t.not(sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, true, `${target}: runAsNonRoot is not set to true`);
    t.same(
      sc.capabilities,
      { drop: ['ALL'], add: ['DAC_READ_SEARCH'] },
      `${target}: drop ALL, add DAC_READ_SEARCH only`,
    );
    for (const taint of [
      { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' },
      { key: 'node-role.kubernetes.io/master', effect: 'NoSchedule' },
      { key: 'node.kubernetes.io/not-ready', effect: 'NoExecute' },
      { key: 'dedicated', value: 'gpu', effect: 'NoSchedule' },
    ]) {
      t.ok(tolerates(pod.tolerations, taint), `${target}: tolerates ${taint.key}:${taint.effect}`);
    }
    t.equal(
      (ds.spec as { updateStrategy?: { rollingUpdate?: { maxUnavailable?: string } } }).updateStrategy?.rollingUpdate
        ?.maxUnavailable,
      '10%',
      `${target}: rolls 10% of nodes at a time`,
    );
    const pc = pod.priorityClassName;
    t.ok(pc && byKind(objs, 'PriorityClass', pc).length === 1, `${target}: its PriorityClass ${pc} is shipped`);
    t.same(
      c.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom,
      { fieldRef: { fieldPath: 'spec.nodeName' } },
      `${target}: NODE_NAME from the downward API`,
    );
    const args = expandedArgs(c);
    t.equal(args[0], 'run');
    const tokenVolume = (pod.volumes ?? []).find((v) => v.projected?.sources.some((s) => s.serviceAccountToken));
    const token = tokenVolume?.projected?.sources.find((s) => s.serviceAccountToken)?.serviceAccountToken;
    t.equal(token?.audience, 'verdict', `${target}: projected token for the audience verdict`);
    t.equal(token?.audience, AGENT_AUDIENCE, `${target}: the audience the aggregator's TokenReview asks for`);
    const aggregator = byKind<Workload>(objs, 'Deployment', 'verdict-aggregator')[0]?.spec.template.spec.containers[0];
    const aggConfig = aggregator ? parseAggregatorArgs(expandedArgs(aggregator)) : undefined;
    if (aggConfig && aggConfig !== 'help') {
      t.equal(
        aggConfig.agentServiceAccount,
        `system:serviceaccount:${ds.metadata.namespace}:${pod.serviceAccountName}`,
        `${target}: the aggregator accepts the agent's service account`,
      );
      t.notOk(
        aggConfig.agentTokenFile ?? aggConfig.tls,
        `${target}: the aggregator authenticates agents by TokenReview (no shared token, no mutual TLS)`,
      );
    }
    t.ok(token?.expirationSeconds !== undefined && token.expirationSeconds <= 3600, `${target}: short-lived token`);
    const tokenMount = c.volumeMounts?.find((m) => m.name === tokenVolume?.name);
    t.equal(
      flag(args, 'token-file'),
      `${tokenMount?.mountPath}/${token?.path}`,
      `${target}: --token-file is the projected token`,
    );
    const mountOf = (hostPath: string) =>
      c.volumeMounts?.find((m) => (pod.volumes ?? []).find((v) => v.name === m.name)?.hostPath?.path === hostPath);
    const hostRoot = mountOf('/');
    t.match(
      hostRoot,
      { mountPath: '/host', readOnly: true, mountPropagation: 'HostToContainer' },
      `${target}: host root read-only at /host`,
    );
    t.equal(flag(args, 'host-root'), hostRoot?.mountPath, `${target}: --host-root is the host mount`);
    t.equal(flag(args, 'spool'), mountOf('/var/lib/verdict/spool')?.mountPath, `${target}: --spool is the spool mount`);
    t.equal(
      (pod.volumes ?? []).find((v) => v.hostPath?.path === '/var/lib/verdict/spool')?.hostPath?.type,
      'DirectoryOrCreate',
    );
    for (const f of args.filter((a) => a.startsWith('--flows=')))
      t.ok(
        f.includes(':/host/') || f.includes(':unix:///host/'),
        `${target}: flow source ${f} is read through the host mount`,
      );
    const svc = one<K8sObject & { spec: { ports: { name: string; port: number }[] } }>(
      objs,
      'Service',
      'verdict-aggregator',
    );
    t.equal(
      flag(args, 'aggregator'),
      `${svc.metadata.name}.${svc.metadata.namespace}.svc:${svc.spec.ports.find((p) => p.name === 'grpc')?.port}`,
      `${target}: --aggregator is the Service's grpc port`,
    );
  }
});

renderedTest(
  'the aggregator: non-root, probes, scrape annotations, a Service and ServiceMonitor that find it',
  async (t) => {
    for (const [target, objs] of rendered) {
      const deploys = byKind<Workload>(objs, 'Deployment', 'verdict-aggregator');
      if (deploys.length === 0) continue;
      const d = deploys[0]!;
      const pod = d.spec.template.spec;
      const c = pod.containers.find((x) => x.name === 'aggregator')!;
      const sc = c.securityContext ?? {};
      t.equal(sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot, true, `${target}: runAsNonRoot`);
      t.ok((sc.runAsUser ?? pod.securityContext?.runAsUser ?? 0) > 0, `${target}: a non-zero uid`);
      t.same(sc.capabilities, { drop: ['ALL'] }, `${target}: no capability at all`);
      t.equal(c.readinessProbe?.httpGet?.path, '/readyz', `${target}: readiness is /readyz`);
      t.equal(c.livenessProbe?.httpGet?.path, '/healthz', `${target}: liveness is /healthz`);
      const ports = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
      t.equal(ports.get(String(c.readinessProbe?.httpGet?.port)), 8080, `${target}: probes hit the http port`);
      t.match(
        d.spec.template.metadata.annotations,
        {
          'prometheus.io/scrape': 'true',
          'prometheus.io/port': String(ports.get('http')),
          'prometheus.io/path': '/metrics',
        },
        `${target}: scrape annotations`,
      );
      const args = expandedArgs(c);
      t.equal(flag(args, 'http'), `:${ports.get('http')}`, `${target}: --http is the http container port`);
      t.equal(flag(args, 'grpc'), `:${ports.get('grpc')}`, `${target}: --grpc is the grpc container port`);
      const svc = one<
        K8sObject & {
          spec: {
            selector: Record<string, string>;
            ports: { name: string; port: number; targetPort: string | number }[];
          };
        }
      >(objs, 'Service', 'verdict-aggregator');
      t.match(d.spec.template.metadata.labels, svc.spec.selector, `${target}: the Service selects the aggregator pods`);
      for (const p of svc.spec.ports)
        t.ok(ports.has(String(p.targetPort)), `${target}: Service port ${p.name} targets a container port`);
      const claims = (pod.volumes ?? []).flatMap((v) =>
        v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : [],
      );
      for (const claim of claims)
        t.equal(byKind(objs, 'PersistentVolumeClaim', claim).length, 1, `${target}: claim ${claim} is shipped`);
      const db = flag(args, 'db') ?? '';
      if (db.startsWith('sqlite:')) {
        t.equal(d.spec.replicas, 1, `${target}: SQLite means one replica`);
        t.equal(
          (d.spec as { strategy?: { type: string } }).strategy?.type,
          'Recreate',
          `${target}: the old SQLite writer stops before the new one starts`,
        );
        const dataMount = c.volumeMounts?.find(
          (m) => (pod.volumes ?? []).find((v) => v.name === m.name)?.persistentVolumeClaim,
        );
        t.ok(
          dataMount && db.slice('sqlite:'.length).startsWith(`${dataMount.mountPath}/`),
          `${target}: the database is on the persistent volume`,
        );
        t.match(one(objs, 'PersistentVolumeClaim', 'verdict-data'), {
          spec: { resources: { requests: { storage: '5Gi' } } },
        });
      }
      for (const sm of byKind<
        K8sObject & {
          spec: {
            selector: { matchLabels: Record<string, string> };
            namespaceSelector?: { matchNames?: string[] };
            endpoints: { port: string; path?: string }[];
          };
        }
      >(objs, 'ServiceMonitor')) {
        t.match(svc.metadata.labels, sm.spec.selector.matchLabels, `${target}: the ServiceMonitor selects the Service`);
        t.ok(
          sm.spec.namespaceSelector?.matchNames?.includes(svc.metadata.namespace ?? ''),
          `${target}: in its namespace`,
        );
        for (const e of sm.spec.endpoints) {
          t.ok(
            svc.spec.ports.some((p) => p.name === e.port),
            `${target}: ServiceMonitor port ${e.port} is a Service port`,
          );
          t.equal(e.path ?? '/metrics', '/metrics');
        }
      }
    }
  },
);

renderedTest('RBAC: least privilege, no wildcards, nodes/proxy only in the configz variant', async (t) => {
  for (const [target, objs] of rendered) {
    for (const role of objs.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role') as (K8sObject & {
      rules?: Rule[];
    })[]) {
      for (const r of role.rules ?? []) {
        for (const field of ['apiGroups', 'resources', 'verbs', 'nonResourceURLs'] as const)
          t.notOk(
            (r[field] ?? []).some((x) => x.includes('*')),
            `${target} ${id(role)}: no wildcard in ${field}`,
          );
        t.notOk(
          r.verbs.some((v) => ['escalate', 'bind', 'impersonate'].includes(v)),
          `${target} ${id(role)}: no escalate/bind/impersonate`,
        );
        t.notOk(
          (r.resources ?? []).some((x) => x === 'secrets' || x.startsWith('secrets/')),
          `${target} ${id(role)}: no access to secrets`,
        );
      }
    }
    for (const sa of ['verdict-agent', 'verdict-aggregator'])
      t.equal(
        byKind(objs, 'ServiceAccount', sa).length,
        byKind(objs, 'ServiceAccount').length > 0 ? 1 : 0,
        `${target}: ServiceAccount ${sa}`,
      );
    for (const w of workloads(objs))
      t.equal(
        byKind(objs, 'ServiceAccount', w.spec.template.spec.serviceAccountName).length,
        1,
        `${target} ${id(w)} runs as a shipped ServiceAccount`,
      );

    if (byKind(objs, 'ServiceAccount', 'verdict-agent').length === 0) continue;
    const agentRules = rulesOf(objs, 'verdict-agent').flatMap((b) => b.rules);
    const configz =
      byKind<Workload>(objs, 'DaemonSet', 'verdict-agent')[0]?.spec.template.spec.containers[0]?.args?.includes(
        '--kubelet-configz',
      ) ?? false;
    t.equal(
      allows(agentRules, '', 'nodes/proxy', 'get'),
      configz,
      `${target}: the agent has get nodes/proxy ${configz ? 'with --kubelet-configz' : 'never'}`,
    );
    const agentBase = rulesOf(objs, 'verdict-agent').filter((b) => b.role === 'ClusterRole/verdict-agent');
    t.same(
      agentBase.flatMap((b) => b.rules),
      [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }],
      `${target}: the agent's own ClusterRole is get nodes, nothing else`,
    );
    const others = agentRules.filter(
      (r) => !(r.apiGroups?.join() === '' && r.resources?.join() === 'nodes' && r.verbs.join() === 'get'),
    );
    t.same(
      others,
      configz ? [{ apiGroups: [''], resources: ['nodes/proxy'], verbs: ['get'] }] : [],
      `${target}: the agent has no other right`,
    );

    const aggBindings = rulesOf(objs, 'verdict-aggregator');
    const agg = aggBindings.filter((b) => b.namespace === undefined).flatMap((b) => b.rules);
    const aggNs = aggBindings.filter((b) => b.namespace === NAMESPACE).flatMap((b) => b.rules);
    const need: [string, string, string[]][] = [
      ['authentication.k8s.io', 'tokenreviews', ['create']],
      ['authorization.k8s.io', 'subjectaccessreviews', ['create']],
      ...['nodes', 'pods', 'namespaces', 'serviceaccounts', 'services'].map((r): [string, string, string[]] => [
        '',
        r,
        ['get', 'list', 'watch'],
      ]),
      ['networking.k8s.io', 'networkpolicies', ['get', 'list', 'watch']],
      // CIS section 5's RBAC checks (aggregator/cluster-cis/read.ts).
      ...['roles', 'clusterroles', 'rolebindings', 'clusterrolebindings'].map((r): [string, string, string[]] => [
        'rbac.authorization.k8s.io',
        r,
        ['get', 'list', 'watch'],
      ]),
      ...['projectcalico.org', 'crd.projectcalico.org'].flatMap((g) =>
        [
          'networkpolicies',
          'globalnetworkpolicies',
          'stagednetworkpolicies',
          'stagedglobalnetworkpolicies',
          'stagedkubernetesnetworkpolicies',
          'tiers',
          'networksets',
          'globalnetworksets',
          // Host endpoints: network-access endpoints beside pods (aggregator/network-access/source.ts).
          'hostendpoints',
        ].map((r): [string, string, string[]] => [g, r, ['get', 'list', 'watch']]),
      ),
      ['cilium.io', 'ciliumnetworkpolicies', ['get', 'list', 'watch']],
      ['cilium.io', 'ciliumclusterwidenetworkpolicies', ['get', 'list', 'watch']],
      ['compliance.verdict.dev', 'globalreports', ['get', 'list', 'watch']],
      // Calico Enterprise's GlobalReports are read beside Verdict's own (aggregator/kube/globalreports.ts).
      ['projectcalico.org', 'globalreports', ['get', 'list', 'watch']],
      ['compliance.verdict.dev', 'globalreports/status', ['update', 'patch']],
    ];
    for (const [g, r, verbs] of need)
      for (const v of verbs) t.ok(allows(agg, g, r, v), `${target}: the aggregator may ${v} ${r}${g ? `.${g}` : ''}`);
    t.ok(allows(aggNs, 'coordination.k8s.io', 'leases', 'create'), `${target}: the aggregator may create its Lease`);
    for (const v of ['get', 'update']) {
      t.ok(
        allows(aggNs, 'coordination.k8s.io', 'leases', v, LEASE),
        `${target}: the aggregator may ${v} the Lease ${LEASE}`,
      );
      t.notOk(allows(aggNs, 'coordination.k8s.io', 'leases', v, 'another-lease'), `${target}: and no other Lease`);
    }
    t.notOk(allows(agg, 'coordination.k8s.io', 'leases', 'create'), `${target}: leases only in its own namespace`);
    // Nothing beyond the list: every granted (group, resource, verb) is needed.
    const needed = new Set(need.flatMap(([g, r, verbs]) => verbs.map((v) => `${g}|${r}|${v}`)));
    for (const r of agg)
      for (const g of r.apiGroups ?? [])
        for (const res of r.resources ?? [])
          for (const v of r.verbs)
            t.ok(
              needed.has(`${g}|${res}|${v}`),
              `${target}: the aggregator's ${v} ${res}${g ? `.${g}` : ''} is needed`,
            );
    for (const r of aggNs)
      t.same(
        [r.apiGroups, r.resources],
        [['coordination.k8s.io'], ['leases']],
        `${target}: namespaced rights are on leases only`,
      );
    // Every API the aggregator's code calls is granted.
    for (const [g, r] of AGGREGATOR_APIS)
      t.ok(
        ['get', 'list', 'watch', 'create'].some((v) => allows([...agg, ...aggNs], g, r, v, LEASE)),
        `${target}: the aggregator's call to ${r}${g ? `.${g}` : ''} is granted`,
      );
    // The policy watch lists then watches each resource it keeps versions of (StagedKubernetesNetworkPolicy too).
    for (const r of POLICY_RESOURCES.filter((x) => x.watchVersion !== undefined))
      for (const v of ['list', 'watch'])
        t.ok(allows(agg, r.group, r.resource, v), `${target}: the policy watch may ${v} ${r.resource}.${r.group}`);
  }
});

renderedTest('the shipped reader roles grant every access the HTTP API asks for', async (t) => {
  const objs = get('base');
  const rules = ['verdict-viewer', 'verdict-report-editor', 'verdict-audit-webhook'].flatMap(
    (n) => one<K8sObject & { rules: Rule[] }>(objs, 'ClusterRole', n).rules,
  );
  const asked = new Set<string>();
  for (const f of allFiles(join(root, 'aggregator', 'http')).filter((x) => x.endsWith('.ts'))) {
    for (const m of readFileSync(f, 'utf8').matchAll(/verb: '(\w+)', resource: '(\w+)'/g)) asked.add(`${m[1]} ${m[2]}`);
  }
  t.ok(asked.size >= 4, `found the HTTP API's access checks (${[...asked].join(', ')})`);
  for (const a of asked) {
    const [verb, resource] = a.split(' ') as [string, string];
    t.ok(
      allows(rules, 'compliance.verdict.dev', resource, verb),
      `a shipped role grants ${verb} ${resource}.compliance.verdict.dev`,
    );
  }
  t.ok(
    allows(
      one<K8sObject & { rules: Rule[] }>(objs, 'ClusterRole', 'verdict-viewer').rules,
      'compliance.verdict.dev',
      'nodes',
      'get',
    ),
    'viewers read nodes and their CIS results',
  );
  t.notOk(
    allows(
      one<K8sObject & { rules: Rule[] }>(objs, 'ClusterRole', 'verdict-viewer').rules,
      'compliance.verdict.dev',
      'globalreports',
      'create',
    ),
    'viewers do not start runs',
  );
});

renderedTest(
  'the verdict-reader service account: a viewer token for people (kubectl create token), nothing more',
  async (t) => {
    for (const [target, objs] of rendered) {
      if (byKind(objs, 'ClusterRole', 'verdict-viewer').length === 0) continue;
      const sa = one<K8sObject & { automountServiceAccountToken?: boolean }>(objs, 'ServiceAccount', 'verdict-reader');
      t.equal(sa.metadata.namespace, NAMESPACE, `${target}: in Verdict's namespace`);
      t.equal(sa.automountServiceAccountToken, false, `${target}: no token is mounted anywhere`);
      t.notOk(
        workloads(objs).some((w) => w.spec.template.spec.serviceAccountName === 'verdict-reader'),
        `${target}: no pod runs as it`,
      );
      const bound = rulesOf(objs, 'verdict-reader');
      t.same(
        bound.map((b) => [b.role, b.namespace]),
        [['ClusterRole/verdict-viewer', undefined]],
        `${target}: bound cluster-wide to verdict-viewer alone`,
      );
      const rules = bound.flatMap((b) => b.rules);
      // What the README's walkthrough does with its token (aggregator/http/*.ts access checks).
      for (const [verb, resource, name] of [
        ['list', 'globalreports'],
        ['get', 'globalreports', 'weekly-cis'],
        ['get', 'nodes'],
        ['get', 'flows'],
        ['list', 'auditevents'],
      ] as const) {
        t.ok(allows(rules, 'compliance.verdict.dev', resource, verb, name), `${target}: may ${verb} ${resource}`);
      }
      t.notOk(
        allows(rules, 'compliance.verdict.dev', 'globalreports', 'create', 'weekly-cis'),
        `${target}: may not start report runs`,
      );
      t.notOk(allows(rules, 'compliance.verdict.dev', 'auditevents', 'create'), `${target}: may not post audit events`);
      t.same(
        rules.flatMap((r) => r.apiGroups ?? []).filter((g) => g !== 'compliance.verdict.dev'),
        [],
        `${target}: nothing outside Verdict's API group`,
      );
    }
  },
);

renderedTest('every flag the manifests pass is one the programs accept', async (t) => {
  for (const [target, objs] of rendered) {
    for (const w of workloads(objs)) {
      for (const c of containersOf(w)) {
        const where = `${target} ${id(w)}/${c.name}`;
        const program = c.command?.[0];
        t.ok(
          program !== undefined && program in pkg.bin,
          `${where}: command ${program} is one of the package's programs`,
        );
        t.equal(c.command?.length, 1, `${where}: the program alone in command, its flags in args`);
        const args = expandedArgs(c);
        if (program === 'verdict-agent') {
          t.equal(args[0], 'run', `${where}: verdict-agent run`);
          t.doesNotThrow(
            () => parseRunArgs(args.slice(1)),
            `${where}: verdict-agent accepts ${args.slice(1).join(' ')}`,
          );
        } else if (program === 'verdict-aggregator') {
          let parsed: unknown;
          t.doesNotThrow(
            () => (parsed = parseAggregatorArgs(args)),
            `${where}: verdict-aggregator accepts ${args.join(' ')}`,
          );
          t.not(parsed, 'help');
        }
      }
    }
  }
  // The alternatives documented in comments (other flow sources) are valid too.
  const agentFile = readFileSync(join(MANIFESTS, 'base', '30-agent.yaml'), 'utf8');
  const commented = [...agentFile.matchAll(/^\s*#\s*-\s*(--[a-z-]+=\S+)\s*$/gm)].map((m) => m[1] as string);
  t.ok(
    commented.some((a) => a.startsWith('--flows=hubble:unix://')),
    'the Hubble Observer source is documented',
  );
  const ds = one<Workload>(get('base'), 'DaemonSet', 'verdict-agent');
  const args = expandedArgs(ds.spec.template.spec.containers[0]!).slice(1);
  for (const a of commented)
    t.doesNotThrow(() => parseRunArgs([...args, a]), `documented alternative ${a} is accepted`);
  t.throws(() => parseRunArgs([...args, '--no-such-flag']), 'the check would catch a flag the agent lacks');
  t.throws(() => parseAggregatorArgs(['--no-such-flag']), 'the check would catch a flag the aggregator lacks');
});

renderedTest(
  'the postgres overlay: three replicas, database URL from a Secret, no volume claim, a disruption budget',
  async (t) => {
    const objs = get('overlays/postgres');
    const d = one<Workload>(objs, 'Deployment', 'verdict-aggregator');
    t.equal(d.spec.replicas, 3);
    t.equal(byKind(objs, 'PersistentVolumeClaim').length, 0, 'no PVC');
    t.notOk(
      d.spec.template.spec.volumes?.some((v) => v.persistentVolumeClaim),
      'no volume from a claim',
    );
    const c = d.spec.template.spec.containers[0]!;
    t.ok(c.args?.includes('--db=$(VERDICT_DB)'), '--db from the environment');
    t.same(
      c.env?.find((e) => e.name === 'VERDICT_DB')?.valueFrom,
      { secretKeyRef: { name: 'verdict-postgres', key: 'url' } },
      'the URL comes from Secret verdict-postgres, key url',
    );
    t.match(flag(expandedArgs(c), 'db'), /^postgres:\/\//);
    t.equal(byKind(objs, 'Secret').length, 0, 'no Secret with a made-up password is shipped');
    const pdb = one<
      K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; maxUnavailable?: number } }
    >(objs, 'PodDisruptionBudget', 'verdict-aggregator');
    t.match(d.spec.template.metadata.labels, pdb.spec.selector.matchLabels, 'the budget covers the aggregator pods');
    t.equal(pdb.spec.maxUnavailable, 1);
    t.equal((d.spec as { strategy?: { type: string } }).strategy?.type, 'RollingUpdate');
  },
);

renderedTest('ConfigMaps holding JSON (the Grafana dashboard) hold valid JSON', async (t) => {
  for (const cm of byKind<K8sObject & { data?: Record<string, string> }>(distinct, 'ConfigMap')) {
    for (const [key, value] of Object.entries(cm.data ?? {}))
      if (key.endsWith('.json')) t.doesNotThrow(() => JSON.parse(value), `${id(cm)} ${key}`);
  }
});

t.test('the Dockerfile builds the image the manifests run', async (t) => {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const lines = text.split('\n').filter((l) => !/^\s*#/.test(l));
  const body = lines.join('\n').replace(/\\\n/g, ' ');
  const froms = lines.filter((l) => /^FROM\s/i.test(l));
  t.ok(froms.length >= 2, 'multi-stage');
  t.match(body, /npm ci\b[^\n]*/, 'npm ci in the build stage');
  t.match(body, /npm run build\s*&&\s*npm prune --omit=dev/, 'build, then drop the dev dependencies');
  t.match(body, /apt-get install[^\n]*\bpython3\b[^\n]*\bmake\b[^\n]*\bg\+\+/, 'a toolchain for better-sqlite3');
  t.notMatch(body, /^\s*ENTRYPOINT\b/m, 'no ENTRYPOINT: the manifests name the program');
  const users = lines.filter((l) => /^USER\s/i.test(l));
  t.match(users.at(-1), /^USER\s+65532(:65532)?\s*$/, 'the runtime user is 65532');
  const finalStage = body.slice(body.lastIndexOf('\nFROM '));
  for (const [name, target] of Object.entries(pkg.bin))
    t.match(
      finalStage,
      new RegExp(`ln -s /app/${target.replace(/[.]/g, '\\.')} /usr/local/bin/${name}\\b`),
      `${name} is on PATH`,
    );
  for (const f of ['package.json', 'node_modules', ...pkg.files])
    t.match(
      finalStage,
      new RegExp(`COPY --from=build /src/${f.replace(/[.]/g, '\\.')} `),
      `the runtime image has ${f}`,
    );
  const ignore = readFileSync(join(root, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim());
  for (const x of ['node_modules', 'dist', '.git'])
    t.ok(ignore.includes(x), `.dockerignore keeps ${x} out of the build context`);
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', ...pkg.files.filter((f) => f !== 'dist')])
    t.notOk(ignore.includes(f), `.dockerignore keeps ${f}`);
});

t.test('the runtime image holds every package the programs import (npm prune --omit=dev)', async (t) => {
  const sources = ['agent', 'aggregator', 'common', 'proto']
    .flatMap((d) => allFiles(join(root, d)))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  const missing = new Set<string>();
  for (const f of sources) {
    const text = readFileSync(f, 'utf8');
    const specs = [
      ...[...text.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'";]*?from\s+'([^']+)'/gm)].map((m) => m[1] as string),
      ...[...text.matchAll(/^\s*import\s+'([^']+)'/gm)].map((m) => m[1] as string),
      ...[...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)].map((m) => m[1] as string),
    ];
    for (const s of specs) {
      if (s.startsWith('.') || s.startsWith('node:')) continue;
      const name = s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : (s.split('/')[0] as string);
      if (!(name in pkg.dependencies)) missing.add(`${name} (${relative(root, f)})`);
    }
  }
  t.same([...missing], [], 'every import of the programs is a production dependency');
  t.ok(
    basename(dirname(join(root, pkg.bin['verdict-agent'] ?? ''))) === 'agent',
    'the agent program lives in dist/agent',
  );
});
