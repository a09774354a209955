import { createPublicKey } from 'node:crypto';
import Type from 'typebox';
import { sha256Hex } from '../evidence/canonical.js';
import type { ChainCheck } from '../evidence/chain.js';
import { checkStoredChains, runDownloads } from '../evidence/run-evidence.js';
import type { App, HttpDeps } from './deps.js';
import { ErrorReplies } from './schemas.js';

const ReportName = Type.String({ pattern: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$' });
const RunId = Type.String({ pattern: '^[0-9a-f-]{36}$' });
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

const ChainBreak = Type.Object({
  chain: Type.String(),
  seq: Nullable(Type.Integer()),
  id: Nullable(Type.String()),
  kind: Type.String(),
  expected: Nullable(Type.String()),
  found: Nullable(Type.String()),
  message: Type.String(),
});
const ChainCheck = Type.Object({
  chain: Type.String(),
  links: Type.Integer(),
  tip: Nullable(Type.Object({ seq: Type.Integer(), digest: Type.String() })),
  breaks: Type.Array(ChainBreak),
});
const Verification = Type.Object({
  ok: Type.Boolean(),
  chains: Type.Array(ChainCheck),
  signingPublicKey: Nullable(Type.String({ description: 'PEM SPKI of --signing-key, null without one' })),
});

const HIDDEN_NODE = '(node hidden: reading node names needs get on nodes)';

/** A chain check with every scan's node name replaced, in ids and messages alike. */
function withoutNodeNames(check: ChainCheck): ChainCheck {
  return {
    ...check,
    breaks: check.breaks.map((b) => {
      const named = b.id !== null && /^scan \S+ \(node .*\)$/.test(b.id) ? b.id : undefined;
      if (named === undefined) return b;
      const hidden = named.replace(/\(node .*\)$/, HIDDEN_NODE);
      return { ...b, id: hidden, message: b.message.split(named).join(hidden) };
    }),
  };
}

/** The public key as one header value: the PEM's base64 body (DER SPKI; `openssl pkey -pubin -inform DER` reads it). */
const keyHeader = (pem: string) => createPublicKey(pem).export({ type: 'spki', format: 'der' }).toString('base64');

/**
 * Evidence routes (docs/DESIGN.md, "Evidence"): a run's files exactly as its manifest hashes them, each with a
 * detached Ed25519 signature when --signing-key is given, and the verification of a report's chain.
 */
export function registerEvidenceRoutes(app: App, deps: HttpDeps): void {
  const { store, signer } = deps;
  app.get(
    '/api/v1/reports/:name/runs/:id/download/:file',
    {
      config: { access: { verb: 'get', resource: 'globalreports', nameParam: 'name' } },
      schema: {
        summary:
          "One of a sealed run's files (manifest.json, inputs.json, result.json, its CSV files) as hashed; <file>.sig: its Ed25519 signature",
        params: Type.Object({ name: ReportName, id: RunId, file: Type.String({ pattern: '^[a-z0-9.-]{1,100}$' }) }),
        response: {
          200: {
            content: {
              'application/json': { schema: Type.String({ description: 'manifest.json, inputs.json, result.json' }) },
              'text/csv': { schema: Type.String({ description: 'a CSV file of the result' }) },
              'application/octet-stream': { schema: Type.String({ description: '<file>.sig: 64 bytes, Ed25519' }) },
            },
          },
          ...ErrorReplies,
        },
      },
    },
    async (req, reply) => {
      const { name, id, file } = req.params;
      const wantsSig = file.endsWith('.sig');
      const fileName = wantsSig ? file.slice(0, -'.sig'.length) : file;
      if (wantsSig && !signer)
        return reply.status(404).send({
          error: 'VERDICT_NOT_FOUND',
          message: 'this aggregator signs nothing: start it with --signing-key FILE (Ed25519, PEM PKCS#8)',
        });
      const run = await runDownloads(store, name, id);
      if (!run.ok)
        return reply
          .status(run.status)
          .send({ error: run.status === 404 ? 'VERDICT_NOT_FOUND' : 'VERDICT_EVIDENCE_BROKEN', message: run.message });
      const text = run.files.get(fileName);
      if (text === undefined)
        return reply.status(404).send({
          error: 'VERDICT_NOT_FOUND',
          message: `run ${id} has no file "${fileName}"; it has ${[...run.files.keys()].join(', ')}`,
        });
      const bytes = Buffer.from(text, 'utf8');
      reply.header('x-verdict-run-digest', run.digest).header('x-verdict-sha256', sha256Hex(bytes));
      if (signer) {
        reply.header('x-verdict-public-key', keyHeader(signer.publicKeyPem));
        reply.header('x-verdict-signature', signer.sign(bytes).toString('base64'));
      }
      const type = wantsSig
        ? 'application/octet-stream'
        : fileName.endsWith('.csv')
          ? 'text/csv; charset=utf-8'
          : 'application/json; charset=utf-8';
      return (
        reply
          .type(type)
          .header('content-disposition', `attachment; filename="${name}-${id.slice(0, 8)}-${file}"`)
          // Bytes as they are (a signature is binary; a file must not be re-encoded); the schema types them as text.
          .send((wantsSig && signer ? signer.sign(bytes) : bytes) as unknown as string)
      );
    },
  );
  app.get(
    '/api/v1/reports/:name/verify',
    {
      config: { access: { verb: 'get', resource: 'globalreports', nameParam: 'name' } },
      schema: {
        summary: "Check a report's evidence chain (or one run of it, ?run=ID) and the scan chain it is built from",
        params: Type.Object({ name: ReportName }),
        querystring: Type.Object({ run: Type.Optional(RunId) }, { additionalProperties: false }),
        response: { 200: Verification, ...ErrorReplies },
      },
    },
    async (req) => {
      const { run } = req.query;
      // Every scan is rehashed by `verdict-aggregator verify`; a request follows the scan chain's links only, so a
      // reader of one report cannot make the aggregator parse every stored scan.
      const chains = await checkStoredChains(store, {
        report: req.params.name,
        scanLinksOnly: true,
        ...(run ? { run } : {}),
      });
      // Every report's chain is anchored in the scan chain, so its breaks are shown to every reader of the report;
      // the node names in them only to one who may read nodes.
      const mayReadNodes = (await deps.authorizer.authorize(req, { verb: 'get', resource: 'nodes' })).allowed;
      const shown = mayReadNodes ? chains : chains.map(withoutNodeNames);
      return {
        ok: chains.every((c) => c.breaks.length === 0),
        chains: shown,
        signingPublicKey: signer?.publicKeyPem ?? null,
      };
    },
  );
}
