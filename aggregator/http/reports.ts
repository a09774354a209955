import Type from 'typebox';
import { toCsv } from '../../common/csv.js';
import type { ReportResult } from '../reports/result.js';
import { documentFile, documentFileNames } from '../reports/report-file.js';
import { reportSource } from '../reports/registry.js';
import { VerdictError } from '../../common/errors.js';
import { reportStatus, TOO_MANY_WAITING_RUNS } from '../reports/scheduler.js';
import type { ReportRunRecord, Store } from '../store/index.js';
import { readerOf, type HttpAuthorizer } from './access.js';
import { registerEvidenceRoutes } from './evidence.js';
import type { App, HttpDeps } from './deps.js';
import { ErrorReplies } from './schemas.js';

type Reports = NonNullable<HttpDeps['reports']>;

const ReportName = Type.String({ pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' });
const NameParams = Type.Object({ name: ReportName });
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

/**
 * A run in a report's status. The status is reports/scheduler.ts's (reportStatus): fields it adds later are passed
 * through, not dropped by the serializer.
 */
const ReportJob = Type.Object(
  {
    id: Type.String(),
    start: Type.String(),
    end: Type.String(),
    trigger: Type.String(),
    createdAt: Type.String(),
    finishedAt: Type.Optional(Type.String()),
    error: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

const ReportList = Type.Object({
  items: Type.Array(
    Type.Object({
      name: Type.String(),
      reportType: Type.String(),
      schedule: Nullable(Type.String()),
      suspend: Type.Boolean(),
      apiVersion: Type.String(),
      origin: Type.String(),
      source: Type.String({
        description:
          'the resource it was read from: globalreports.compliance.verdict.dev or globalreports.projectcalico.org (watched in the cluster), or file (--reports)',
      }),
      spec: Type.Unknown({ description: 'the GlobalReport spec as written' }),
      status: Type.Object(
        {
          lastScheduledReportJob: Nullable(ReportJob),
          activeReportJobs: Type.Array(ReportJob),
          lastFailedReportJobs: Type.Array(ReportJob),
          lastSuccessfulReportJobs: Type.Array(ReportJob),
        },
        { additionalProperties: true },
      ),
    }),
  ),
  invalid: Type.Array(Type.Object({ name: Type.String(), origin: Type.String(), error: Type.String() })),
});

const runFields = {
  id: Type.String(),
  report: Type.String(),
  reportType: Type.String(),
  trigger: Type.String(),
  status: Type.String(),
  attempts: Type.Integer(),
  start: Type.String(),
  end: Type.String(),
  notBefore: Type.String(),
  createdAt: Type.String(),
  startedAt: Nullable(Type.String()),
  finishedAt: Nullable(Type.String()),
  error: Nullable(Type.String()),
};
const RunList = Type.Object({ items: Type.Array(Type.Object(runFields)) });
/**
 * One run: inputs (the definition as it was) and result (summary, data, files, evidence) are open JSON. (Every field
 * required: the serializer writes required fields first, so an optional one would move.)
 */
const RunDetail = Type.Object({
  ...runFields,
  inputs: Type.Unknown({ description: 'the report definition and parameters the run was made from' }),
  result: Type.Unknown({ description: 'null until the run has succeeded' }),
});

/** A run as listed: everything but the result. */
function runView(r: ReportRunRecord) {
  return {
    id: r.id,
    report: r.report,
    reportType: r.reportType,
    trigger: r.trigger,
    status: r.status,
    attempts: r.attempts,
    start: new Date(r.intervalStartMs).toISOString(),
    end: new Date(r.intervalEndMs).toISOString(),
    notBefore: new Date(r.notBeforeMs).toISOString(),
    createdAt: new Date(r.createdMs).toISOString(),
    startedAt: r.startedMs ? new Date(r.startedMs).toISOString() : null,
    finishedAt: r.finishedMs ? new Date(r.finishedMs).toISOString() : null,
    error: r.error ?? null,
  };
}

/**
 * The longest on-demand run: a year, leap day included (a yearly report fits; a 10,000-year scan of the store does
 * not).
 */
const MAX_ON_DEMAND_MS = 366 * 86_400_000;
/** No evidence predates this: Kubernetes itself is younger. */
const EARLIEST_MS = Date.parse('2000-01-01T00:00:00Z');
/** An interval may end a little ahead of now (clock skew, "today" in a later time zone), not in the far future. */
const FUTURE_SLACK_MS = 86_400_000;

/** An on-demand run's interval from the request body, or what is wrong with it. */
function onDemandInterval(start: string, end: string, nowMs: number): { startMs: number; endMs: number } | string {
  const startMs = Date.parse(start);
  const endMs = Date.parse(end);
  if (Number.isNaN(startMs) || Number.isNaN(endMs))
    return `start (${start}) and end (${end}) must be ISO-8601 times like 2026-11-01T00:00:00Z`;
  if (!(startMs < endMs)) return `start (${start}) must be before end (${end})`;
  if (startMs < EARLIEST_MS) return `start (${start}) is before 2000-01-01; Verdict holds no evidence that old`;
  if (endMs > nowMs + FUTURE_SLACK_MS)
    return `end (${end}) is more than a day in the future; a report covers evidence already collected`;
  if (endMs - startMs > MAX_ON_DEMAND_MS)
    return `the interval spans ${Math.ceil((endMs - startMs) / 86_400_000)} days; an on-demand run covers at most 366, so split it into several runs`;
  return { startMs, endMs };
}

export function registerReportRoutes(app: App, deps: HttpDeps): void {
  const { store, reports } = deps;
  registerEvidenceRoutes(app, deps);
  if (!reports) return;
  listReports(app, store, reports, deps.authorizer, deps.signer?.publicKeyPem);
  runReportNow(app, reports);
  listRuns(app, store, reports);
  getRun(app, store);
}

const notFound = (name: string) => ({
  error: 'VERDICT_NOT_FOUND',
  message: `no GlobalReport "${name}"; GET /api/v1/reports lists them`,
});

function listReports(
  app: App,
  store: Store,
  reports: Reports,
  authorizer: HttpAuthorizer,
  signingPublicKey?: string,
): void {
  app.get(
    '/api/v1/reports',
    {
      config: { access: { verb: 'list', resource: 'globalreports' } },
      schema: {
        summary: 'GlobalReports with their status, and the invalid ones with the reason',
        response: { 200: ReportList, ...ErrorReplies },
      },
    },
    async (req) => {
      // Listed per reader, as Calico Enterprise lists reports by the user's permissions: a report the reader may not
      // get (its runs and files) is left out, so a token for one report sees that report alone.
      const mayGet = async (name: string) =>
        (await authorizer.authorize(req, { verb: 'get', resource: 'globalreports', name })).allowed;
      const items = [];
      for (const def of reports.registry.all()) {
        if (!(await mayGet(def.name))) continue;
        items.push({
          name: def.name,
          reportType: def.reportType,
          schedule: def.schedule ?? null,
          suspend: def.suspend,
          apiVersion: def.apiVersion,
          origin: def.origin,
          source: reportSource(def.origin),
          spec: def.spec,
          // The key that signs this report's downloads (--signing-key), so a reader can check them later.
          status: {
            ...reportStatus(await store.reportRuns(def.name, 100)),
            source: reportSource(def.origin),
            ...(signingPublicKey ? { signingPublicKey } : {}),
          },
        });
      }
      const invalid = [];
      for (const e of reports.registry.errors()) if (await mayGet(e.name)) invalid.push(e);
      return { items, invalid };
    },
  );
}

function runReportNow(app: App, reports: Reports): void {
  app.post(
    '/api/v1/reports/:name/runs',
    {
      config: { access: { verb: 'create', resource: 'globalreports', nameParam: 'name' } },
      schema: {
        summary: 'Run a report now over any interval',
        params: NameParams,
        // start/end are checked after the report is found: an unknown report is a 404 whatever the body.
        body: Type.Object(
          {
            start: Type.Optional(Type.String({ format: 'date-time' })),
            end: Type.Optional(Type.String({ format: 'date-time' })),
          },
          { additionalProperties: false },
        ),
        response: { 202: Type.Object({ id: Type.String(), status: Type.String() }), ...ErrorReplies },
      },
    },
    async (req, reply) => {
      const { name } = req.params;
      const def = reports.registry.get(name);
      if (!def) return reply.status(404).send(notFound(name));
      const { start, end } = req.body;
      if (!start || !end)
        return reply.status(400).send({
          error: 'VERDICT_BAD_REQUEST',
          message: 'give the interval to report on as {"start": ISO-8601, "end": ISO-8601}',
        });
      const interval = onDemandInterval(start, end, Date.now());
      if (typeof interval === 'string')
        return reply.status(400).send({ error: 'VERDICT_BAD_REQUEST', message: interval });
      const { startMs, endMs } = interval;
      let run;
      try {
        run = await reports.scheduler.runNow(def, startMs, endMs);
      } catch (err) {
        if (err instanceof VerdictError && err.code === TOO_MANY_WAITING_RUNS)
          return reply.status(429).send({ error: err.code, message: err.detail });
        throw err;
      }
      req.log.info({ report: name, run: run.id, user: readerOf(req) }, 'on-demand report run requested');
      return reply.status(202).send({ id: run.id, status: run.status });
    },
  );
}

function listRuns(app: App, store: Store, reports: Reports): void {
  app.get(
    '/api/v1/reports/:name/runs',
    {
      config: { access: { verb: 'get', resource: 'globalreports', nameParam: 'name' } },
      schema: {
        summary: "A report's runs, newest first",
        params: NameParams,
        querystring: Type.Object(
          { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })) },
          { additionalProperties: false },
        ),
        response: { 200: RunList, ...ErrorReplies },
      },
    },
    async (req, reply) => {
      const { name } = req.params;
      if (!reports.registry.get(name) && (await store.reportRuns(name, 1)).length === 0)
        return reply.status(404).send(notFound(name));
      return { items: (await store.reportRuns(name, req.query.limit ?? 100)).map(runView) };
    },
  );
}

/** A download's file name: the report, the day its interval ends, and the file. */
const downloadName = (report: string, run: ReportRunRecord, file: string) =>
  `${report}-${new Date(run.intervalEndMs).toISOString().slice(0, 10)}-${file}`;

function getRun(app: App, store: Store): void {
  app.get(
    '/api/v1/reports/:name/runs/:id',
    {
      config: { access: { verb: 'get', resource: 'globalreports', nameParam: 'name' } },
      schema: {
        summary:
          'One run: JSON with its result, one of its CSV files (?format=csv&file=...), or one of its documents (?file=events.json, events.yaml)',
        params: Type.Object({ name: ReportName, id: Type.String({ pattern: '^[0-9a-f-]{36}$' }) }),
        querystring: Type.Object(
          {
            format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('csv')])),
            file: Type.Optional(Type.String({ pattern: '^[a-z-]+\\.(csv|json|yaml)$' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: {
            content: {
              'application/json': { schema: RunDetail },
              'text/csv': { schema: Type.String({ description: 'RFC 4180 CSV, one of the result files' }) },
              'application/yaml': { schema: Type.String({ description: 'a document as YAML (events.yaml)' }) },
            },
          },
          ...ErrorReplies,
        },
      },
    },
    async (req, reply) => {
      const { name, id } = req.params;
      const run = await store.reportRun(id);
      if (!run || run.report !== name)
        return reply.status(404).send({ error: 'VERDICT_NOT_FOUND', message: `report "${name}" has no run ${id}` });
      const { format, file } = req.query;
      // events.json / events.yaml (a run's documents) need no format=csv: the name says what they are.
      const asDocument = file !== undefined && !file.endsWith('.csv');
      if (format !== 'csv' && !asDocument) return { ...runView(run), inputs: run.inputs, result: run.result ?? null };
      const result = run.result as ReportResult | undefined;
      if (!result)
        return reply.status(409).send({
          error: 'VERDICT_NOT_READY',
          message: `run ${id} is ${run.status}; CSV files exist once it has succeeded`,
        });
      const names = [...Object.keys(result.files), ...documentFileNames(result.documents)];
      const chosen = file ?? names[0] ?? '';
      const doc = asDocument ? documentFile(result.documents, chosen) : undefined;
      if (doc)
        return reply
          .type(doc.contentType)
          .header('content-disposition', `attachment; filename="${downloadName(name, run, chosen)}"`)
          .send(doc.body);
      const f = asDocument ? undefined : result.files[chosen];
      if (!f)
        return reply.status(404).send({
          error: 'VERDICT_NOT_FOUND',
          message: `run ${id} has no file "${chosen}"; it has ${names.join(', ')}`,
        });
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="${downloadName(name, run, chosen)}"`)
        .send(toCsv(f.header, f.rows));
    },
  );
}
