import { Cron } from 'croner';
import Type, { type Static } from 'typebox';
import { Compile, type Validator } from 'typebox/compile';
import { documentField, documentPath, parseYamlDocuments, toDocumentValue } from '../../common/parsed-document.js';
import { parseSelector, type Selector } from './selector.js';
import { DEFAULT_THRESHOLDS } from '../compute/cis.js';

/** Verdict's own API group for GlobalReport; Calico Enterprise's is accepted too and mapped. */
export const VERDICT_API_VERSION = 'compliance.verdict.dev/v1';
export const CALICO_API_VERSION = 'projectcalico.org/v3';
export type ReportType = 'cis-benchmark' | 'network-access' | 'inventory' | 'policy-audit';

const NamesAndSelector = Type.Object(
  { names: Type.Optional(Type.Array(Type.String())), selector: Type.Optional(Type.String()) },
  { additionalProperties: false },
);

const ResultsFilter = Type.Object(
  {
    benchmarkSelection: Type.Optional(
      Type.Object({ kubernetesVersion: Type.Optional(Type.String()) }, { additionalProperties: false }),
    ),
    include: Type.Optional(Type.Array(Type.String())),
    exclude: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: false },
);

/** The spec, field for field as Calico Enterprise's GlobalReport. */
const Spec = Type.Object(
  {
    reportType: Type.Union([
      Type.Literal('cis-benchmark'),
      Type.Literal('network-access'),
      Type.Literal('inventory'),
      Type.Literal('policy-audit'),
    ]),
    schedule: Type.Optional(Type.String()),
    endpoints: Type.Optional(
      Type.Object(
        {
          selector: Type.Optional(Type.String()),
          namespaces: Type.Optional(NamesAndSelector),
          serviceAccounts: Type.Optional(NamesAndSelector),
        },
        { additionalProperties: false },
      ),
    ),
    jobNodeSelector: Type.Optional(Type.Record(Type.String(), Type.String())),
    suspend: Type.Optional(Type.Boolean()),
    cis: Type.Optional(
      Type.Object(
        {
          highThreshold: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
          medThreshold: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
          includeUnscoredTests: Type.Optional(Type.Boolean()),
          numFailedTests: Type.Optional(Type.Integer({ minimum: 0 })),
          resultsFilters: Type.Optional(Type.Array(ResultsFilter)),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

const Resource = Type.Object({
  apiVersion: Type.String(),
  kind: Type.Literal('GlobalReport'),
  metadata: Type.Object({ name: Type.String({ pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' }) }),
  spec: Spec,
  status: Type.Optional(Type.Unknown()),
});

export type GlobalReportSpec = Static<typeof Spec>;

/** A GlobalReport after validation, with its selectors parsed and defaults applied. */
export interface ReportDefinition {
  name: string;
  /** The apiVersion it was written for (Calico definitions keep working). */
  apiVersion: string;
  spec: GlobalReportSpec;
  reportType: ReportType;
  schedule?: string;
  suspend: boolean;
  selectors: { endpoints?: Selector; namespaces?: Selector; serviceAccounts?: Selector };
  cis: {
    highThreshold: number;
    medThreshold: number;
    includeUnscoredTests: boolean;
    numFailedTests: number;
    resultsFilters: Static<typeof ResultsFilter>[];
  };
  /** Where it came from: a file path or "cluster". */
  origin: string;
}

/** A definition that could not be used, with the reason (kept so status and HTTP can say why). */
export interface InvalidReport {
  name: string;
  origin: string;
  error: string;
}

let validator: Validator | undefined;

/**
 * Validate one parsed GlobalReport object (from a file or the Kubernetes API).
 * It is copied into null-prototype objects first, so nothing later that merges
 * or looks keys up in the spec can meet an inherited or `__proto__` key.
 */
export function toDefinition(parsed: unknown, origin: string): ReportDefinition | InvalidReport {
  const nameOf = (d: unknown) => {
    const name = documentPath(d, 'metadata.name');
    return typeof name === 'string' || typeof name === 'number' ? String(name) : '(unnamed)';
  };
  let doc: unknown;
  try {
    doc = toDocumentValue(parsed);
  } catch (err) {
    return { name: nameOf(parsed), origin, error: `VERDICT_REPORT_INVALID: ${(err as Error).message}` };
  }
  validator ??= Compile(Resource) as unknown as Validator;
  if (!validator.Check(doc)) {
    const err = [...validator.Errors(doc)].sort((a, b) => b.instancePath.length - a.instancePath.length)[0];
    const where = (err?.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.') || '(root)';
    const allowed =
      err?.keyword === 'additionalProperties'
        ? ` ${JSON.stringify((err.params as { additionalProperties?: string[] }).additionalProperties)}`
        : '';
    const message = err?.message === 'schema is false' ? 'unknown field' : (err?.message ?? 'invalid');
    return { name: nameOf(doc), origin, error: `VERDICT_REPORT_INVALID: ${where}: ${message}${allowed}` };
  }
  const r = doc as Static<typeof Resource>;
  if (r.apiVersion !== VERDICT_API_VERSION && r.apiVersion !== CALICO_API_VERSION) {
    return {
      name: r.metadata.name,
      origin,
      error: `VERDICT_REPORT_INVALID: apiVersion must be ${VERDICT_API_VERSION} or ${CALICO_API_VERSION}, not "${r.apiVersion}"`,
    };
  }
  const spec = r.spec;
  if (spec.schedule !== undefined) {
    try {
      new Cron(spec.schedule, { paused: true, timezone: 'UTC' });
    } catch (err) {
      return {
        name: r.metadata.name,
        origin,
        error: `VERDICT_REPORT_INVALID: spec.schedule: ${(err as Error).message}`,
      };
    }
  }
  const selectors: ReportDefinition['selectors'] = {};
  for (const [key, text] of [
    ['endpoints', spec.endpoints?.selector],
    ['namespaces', spec.endpoints?.namespaces?.selector],
    ['serviceAccounts', spec.endpoints?.serviceAccounts?.selector],
  ] as const) {
    if (text === undefined) continue;
    try {
      selectors[key] = parseSelector(text);
    } catch (err) {
      const field = key === 'endpoints' ? 'spec.endpoints.selector' : `spec.endpoints.${key}.selector`;
      return { name: r.metadata.name, origin, error: `VERDICT_REPORT_INVALID: ${field}: ${(err as Error).message}` };
    }
  }
  const cis = {
    highThreshold: spec.cis?.highThreshold ?? DEFAULT_THRESHOLDS.highThreshold,
    medThreshold: spec.cis?.medThreshold ?? DEFAULT_THRESHOLDS.medThreshold,
    // docs/DESIGN.md, "Checks and scores": unscored (Manual) checks count only where a report asks for them.
    includeUnscoredTests: spec.cis?.includeUnscoredTests ?? false,
    numFailedTests: spec.cis?.numFailedTests ?? 5,
    resultsFilters: spec.cis?.resultsFilters ?? [],
  };
  if (cis.medThreshold > cis.highThreshold) {
    return {
      name: r.metadata.name,
      origin,
      error: `VERDICT_REPORT_INVALID: spec.cis.medThreshold (${cis.medThreshold}) must not be above highThreshold (${cis.highThreshold})`,
    };
  }
  return {
    name: r.metadata.name,
    apiVersion: r.apiVersion,
    spec,
    reportType: spec.reportType as ReportType,
    schedule: spec.schedule,
    suspend: spec.suspend ?? false,
    selectors,
    cis,
    origin,
  };
}

/** Every GlobalReport in a YAML text (several documents allowed; other kinds are ignored). */
export function parseReportsYaml(text: string, origin: string): (ReportDefinition | InvalidReport)[] {
  const out: (ReportDefinition | InvalidReport)[] = [];
  for (const d of parseYamlDocuments(text)) {
    if (d.kind === 'error') {
      out.push({ name: '(document)', origin, error: `VERDICT_REPORT_INVALID: not YAML: ${d.reason}` });
      continue;
    }
    if (documentField(d.value, 'kind') !== 'GlobalReport') continue;
    out.push(toDefinition(d.value, origin));
  }
  return out;
}

export function isValid(r: ReportDefinition | InvalidReport): r is ReportDefinition {
  return !('error' in r);
}
