import Type, { type Static, type TSchema } from 'typebox';
import { Compile, type Validator } from 'typebox/compile';
import { VerdictError } from '../../common/errors.js';
import { documentField } from '../../common/parsed-document.js';
import { AGENT_ERROR_CODES } from '../errors.js';
import { parseNumberish } from './numberish.js';

/** The comparisons a benchmark may ask for (see benchmarks/README.md). */

const Expect = Type.Object(
  {
    op: Type.Union([
      Type.Literal('eq'),
      Type.Literal('neq'),
      Type.Literal('gte'),
      Type.Literal('lte'),
      Type.Literal('gt'),
      Type.Literal('lt'),
      Type.Literal('set'),
      Type.Literal('unset'),
      Type.Literal('has'),
      Type.Literal('lacks'),
      Type.Literal('in'),
      Type.Literal('subsetOf'),
      Type.Literal('matches'),
    ]),
    value: Type.Optional(Type.String()),
    values: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: false },
);

const NodePath = Type.String({ pattern: '^(/|\\{)', description: 'a node path, or a {variable} path' });

const FileModeAudit = Type.Object(
  {
    type: Type.Literal('file-mode'),
    path: NodePath,
    mode: Type.String({ pattern: '^[0-7]{3,4}$', description: 'an octal string like "600"' }),
  },
  { additionalProperties: false },
);
const FileOwnerAudit = Type.Object(
  {
    type: Type.Literal('file-owner'),
    path: NodePath,
    owner: Type.String({ pattern: '^[^:\\s]+:[^:\\s]+$', description: 'user:group, like "root:root"' }),
  },
  { additionalProperties: false },
);
const KubeletAudit = Type.Object(
  {
    type: Type.Literal('kubelet'),
    /** KubeletConfiguration field path; absent for flag-only settings such as --hostname-override. */
    setting: Type.Optional(Type.String({ minLength: 1 })),
    flag: Type.Optional(Type.String({ pattern: '^[a-z0-9-]+$' })),
    expect: Expect,
  },
  { additionalProperties: false },
);
const ComponentFlagAudit = Type.Object(
  {
    type: Type.Literal('component-flag'),
    component: Type.Union([
      Type.Literal('kube-apiserver'),
      Type.Literal('kube-controller-manager'),
      Type.Literal('kube-scheduler'),
      Type.Literal('etcd'),
      Type.Literal('kube-proxy'),
    ]),
    flag: Type.String({ pattern: '^[a-z0-9-]+$', description: 'a flag name without dashes' }),
    /** The same setting's field in the component's --config file (kube-proxy: the file replaces the flags). */
    configField: Type.Optional(Type.String({ minLength: 1 })),
    default: Type.Optional(Type.String()),
    expect: Expect,
  },
  { additionalProperties: false },
);
const ComponentFileAudit = Type.Object(
  {
    type: Type.Literal('component-file'),
    component: Type.Union([
      Type.Literal('kube-apiserver'),
      Type.Literal('kube-controller-manager'),
      Type.Literal('kube-scheduler'),
      Type.Literal('etcd'),
      Type.Literal('kube-proxy'),
    ]),
    /** The flag naming the file, e.g. encryption-provider-config. */
    flag: Type.String({ pattern: '^[a-z0-9-]+$', description: 'a flag name without dashes' }),
    /** What the file's contents are judged on (agent/cis/file-content.ts). */
    content: Type.Union([Type.Literal('encryption-config'), Type.Literal('audit-policy')]),
  },
  { additionalProperties: false },
);
const SystemdPropertyAudit = Type.Object(
  {
    type: Type.Literal('systemd-property'),
    unit: Type.String({ pattern: '^[A-Za-z0-9@._-]+\\.service$', description: 'a unit name like "kubelet.service"' }),
    property: Type.String({ pattern: '^[A-Za-z]+$' }),
    expect: Expect,
  },
  { additionalProperties: false },
);
const ManualAudit = Type.Object(
  { type: Type.Literal('manual'), reason: Type.Optional(Type.String()) },
  { additionalProperties: false },
);

const LEAF_AUDITS: Record<string, TSchema> = {
  'file-mode': FileModeAudit,
  'file-owner': FileOwnerAudit,
  kubelet: KubeletAudit,
  'component-flag': ComponentFlagAudit,
  'component-file': ComponentFileAudit,
  'systemd-property': SystemdPropertyAudit,
  manual: ManualAudit,
};

export type ExpectSpec = Static<typeof Expect>;
export type FileModeAuditSpec = Static<typeof FileModeAudit>;
export type FileOwnerAuditSpec = Static<typeof FileOwnerAudit>;
export type KubeletAuditSpec = Static<typeof KubeletAudit>;
export type ComponentFlagAuditSpec = Static<typeof ComponentFlagAudit>;
export type ManualAuditSpec = Static<typeof ManualAudit>;
export type ComponentFileAuditSpec = Static<typeof ComponentFileAudit>;
export type SystemdPropertyAuditSpec = Static<typeof SystemdPropertyAudit>;
export type LeafAuditSpec =
  | FileModeAuditSpec
  | FileOwnerAuditSpec
  | KubeletAuditSpec
  | ComponentFlagAuditSpec
  | ComponentFileAuditSpec
  | SystemdPropertyAuditSpec
  | ManualAuditSpec;
export type AuditSpec = LeafAuditSpec | { type: 'all' | 'any'; of: LeafAuditSpec[] };

const CheckHead = Type.Object(
  {
    id: Type.String({ pattern: '^\\d+(\\.\\d+)+$', description: 'a dotted id like "4.2.1"' }),
    title: Type.String({ minLength: 1 }),
    section: Type.String({ pattern: '^\\d+(\\.\\d+)*$' }),
    level: Type.Union([Type.Literal(1), Type.Literal(2)]),
    automated: Type.Boolean(),
    role: Type.Union([Type.Literal('worker'), Type.Literal('control-plane')]),
    audit: Type.Optional(Type.Unknown()),
    remediation: Type.String(),
  },
  { additionalProperties: false },
);

const BenchmarkHead = Type.Object(
  {
    id: Type.String({ pattern: '^[a-z0-9][a-z0-9.-]*$' }),
    version: Type.String({ minLength: 1 }),
    title: Type.String({ minLength: 1 }),
    kubernetesVersions: Type.Array(Type.String({ pattern: '^\\d+\\.\\d+$' })),
    /** The document's section titles ("4.2" Kubelet), chapters ("4") included: what the table groups checks under. */
    sections: Type.Optional(
      Type.Array(
        Type.Object(
          {
            id: Type.String({ pattern: '^\\d+(\\.\\d+)*$', description: 'a section id like "4.2"' }),
            title: Type.String({ minLength: 1 }),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    checks: Type.Array(Type.Unknown(), { minItems: 1 }),
  },
  { additionalProperties: false },
);

export type CheckSpec = Omit<Static<typeof CheckHead>, 'audit'> & { audit?: AuditSpec };
export type BenchmarkSpec = Omit<Static<typeof BenchmarkHead>, 'checks'> & { checks: CheckSpec[] };

/** Thrown for a benchmark file that does not match the schema; the message names file and field. */
export class BenchmarkInvalidError extends VerdictError {
  constructor(file: string, field: string, problem: string) {
    super(AGENT_ERROR_CODES.BENCHMARK_INVALID, `${file}: ${field}: ${problem}`);
  }
}

/**
 * Validate a parsed benchmark document. Audits are checked by their `type` so a
 * mistake is reported against the one schema it was meant for, not as a vague
 * "matches no variant".
 */
export function validateBenchmark(doc: unknown, file: string): BenchmarkSpec {
  assertMatches(BenchmarkHead, doc, file, '');
  const head = doc as Static<typeof BenchmarkHead>;
  const seen = new Set<string>();
  head.checks.forEach((check, i) => {
    const at = `checks[${i}]`;
    assertMatches(CheckHead, check, file, at);
    const c = check as Static<typeof CheckHead>;
    if (seen.has(c.id)) throw new BenchmarkInvalidError(file, `${at}.id`, `duplicate check id "${c.id}"`);
    seen.add(c.id);
    if (c.audit !== undefined) validateAudit(c.audit, file, `${at}.audit`, true);
  });
  if (head.sections) validateSections(head.sections, head.checks as CheckSpec[], file);
  return doc as BenchmarkSpec;
}

/** Section ids are unique, and a benchmark that names its sections names every one its checks use, chapters too. */
function validateSections(sections: { id: string }[], checks: CheckSpec[], file: string): void {
  const titled = new Set<string>();
  sections.forEach((s, i) => {
    if (titled.has(s.id)) throw new BenchmarkInvalidError(file, `sections[${i}].id`, `duplicate section id "${s.id}"`);
    titled.add(s.id);
  });
  checks.forEach((c, i) => {
    for (const id of [c.section, c.section.split('.')[0] as string])
      if (!titled.has(id))
        throw new BenchmarkInvalidError(file, `checks[${i}].section`, `section "${id}" has no title under sections`);
  });
}

function validateAudit(audit: unknown, file: string, at: string, allowComposite: boolean): void {
  const type = documentField(audit, 'type');
  if (allowComposite && (type === 'all' || type === 'any')) {
    const of = documentField(audit, 'of');
    const keys = Object.keys(audit as object).filter((k) => k !== 'type' && k !== 'of');
    if (keys.length > 0) throw new BenchmarkInvalidError(file, `${at}.${keys[0]}`, 'unknown field');
    if (!Array.isArray(of) || of.length === 0)
      throw new BenchmarkInvalidError(file, `${at}.of`, 'expected a non-empty list of audits');
    of.forEach((sub, j) => validateAudit(sub, file, `${at}.of[${j}]`, false));
    return;
  }
  // `type` is the document's word: only the table's own keys name an audit ("constructor" does not).
  const schema = typeof type === 'string' && Object.hasOwn(LEAF_AUDITS, type) ? LEAF_AUDITS[type] : undefined;
  if (!schema) {
    const allowed = [...Object.keys(LEAF_AUDITS), ...(allowComposite ? ['all', 'any'] : [])].join(', ');
    throw new BenchmarkInvalidError(file, `${at}.type`, `expected one of ${allowed}, got ${JSON.stringify(type)}`);
  }
  assertMatches(schema, audit, file, at);
  if (type === 'kubelet' && !(audit as KubeletAuditSpec).setting && !(audit as KubeletAuditSpec).flag) {
    throw new BenchmarkInvalidError(file, `${at}.setting`, 'a kubelet audit needs a setting, a flag, or both');
  }
  const expect = (audit as { expect?: ExpectSpec }).expect;
  if (expect) {
    const needsValue = ['eq', 'neq', 'gte', 'lte', 'gt', 'lt', 'has', 'lacks', 'matches'].includes(expect.op);
    if (expect.op === 'matches' && expect.value !== undefined) {
      try {
        new RegExp(expect.value);
      } catch (err) {
        throw new BenchmarkInvalidError(
          file,
          `${at}.expect.value`,
          `not a valid regular expression: ${(err as Error).message}`,
        );
      }
    }
    const needsValues = ['in', 'subsetOf'].includes(expect.op);
    if (needsValue && expect.value === undefined)
      throw new BenchmarkInvalidError(file, `${at}.expect.value`, `op "${expect.op}" needs a value`);
    if (needsValues && !expect.values?.length)
      throw new BenchmarkInvalidError(file, `${at}.expect.values`, `op "${expect.op}" needs a list of values`);
    if (['gte', 'lte', 'gt', 'lt'].includes(expect.op) && parseNumberish(expect.value as string) === undefined) {
      throw new BenchmarkInvalidError(
        file,
        `${at}.expect.value`,
        `op "${expect.op}" needs a number or a duration like "5m"`,
      );
    }
  }
}

/** Compiled once per schema: loading every benchmark validates hundreds of checks. */
const validators = new WeakMap<TSchema, Validator>();

function assertMatches(schema: TSchema, value: unknown, file: string, at: string): void {
  let v = validators.get(schema);
  if (!v) {
    v = Compile(schema) as unknown as Validator;
    validators.set(schema, v);
  }
  if (v.Check(value)) return;
  const errors = [...v.Errors(value)];
  // The deepest error is the most specific one.
  const first = errors.sort((a, b) => b.instancePath.length - a.instancePath.length)[0];
  const pointer = first?.instancePath ?? '';
  const field = (at + pointer.replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.')).replace(/^\./, '') || '(root)';
  const description = (first?.schemaPath && describeSchemaAt(schema, first.instancePath)) ?? undefined;
  const extra =
    first?.keyword === 'additionalProperties'
      ? `: ${JSON.stringify((first.params as { additionalProperties?: string[] }).additionalProperties)}`
      : '';
  const problem =
    first?.message === 'schema is false'
      ? 'unknown field'
      : description
        ? `expected ${description}`
        : (first?.message ?? 'invalid');
  throw new BenchmarkInvalidError(file, field, `${problem}${extra}`);
}

function describeSchemaAt(schema: TSchema, pointer: string): string | undefined {
  let cur: unknown = schema;
  for (const part of pointer.split('/').filter(Boolean)) {
    const s = cur as { properties?: Record<string, unknown>; items?: unknown };
    // `part` is a key of the document being validated: own properties of the schema only.
    cur = /^\d+$/.test(part)
      ? s.items
      : s.properties && Object.hasOwn(s.properties, part)
        ? s.properties[part]
        : undefined;
    if (cur === undefined) return undefined;
  }
  return (cur as { description?: string }).description;
}

// Kept here for code that has always imported it from the schema; numberish.ts has no schema library behind it.
export { parseNumberish } from './numberish.js';
