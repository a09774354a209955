import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { parse as parseYaml } from 'yaml';
import { isLoopbackAddress } from '../ingest/auth.js';
import { accessDenied } from './errors.js';
import { configError } from '../errors.js';

/** What a request wants to do, in Kubernetes RBAC terms on Verdict's globalreports. */
export interface AccessRequest {
  verb: 'get' | 'list' | 'create';
  /** globalreports (reports and their runs), or another Verdict resource. */
  resource: 'globalreports' | 'nodes' | 'flows' | 'auditevents';
  /** A report's name; per-name grants apply to it. */
  name?: string;
}

export type AccessDecision = { allowed: true; user: string } | { allowed: false; status: 401 | 403; reason: string };

/**
 * What a route needs, declared in its `config.access`: "public" (probes, metrics, the API docs), or the verb and
 * resource to ask the authorizer about, with the path parameter that names the report for per-report grants.
 */
export type RouteAccess =
  'public' | { verb: AccessRequest['verb']; resource: AccessRequest['resource']; nameParam?: string };

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call this route; every route declares it (requireAccess), and authorizeRequest decides. */
    access?: RouteAccess;
  }
}

/** Decides whether an HTTP reader may do something. */
export interface HttpAuthorizer {
  readonly description: string;
  authorize(req: FastifyRequest, want: AccessRequest): Promise<AccessDecision>;
}

/** Nothing configured: readers on this machine only (how `npm start` runs), everything allowed to them. */
export class LoopbackReaders implements HttpAuthorizer {
  readonly description = 'no HTTP reader tokens configured: the API answers loopback clients only';

  async authorize(req: FastifyRequest): Promise<AccessDecision> {
    return isLoopbackAddress(req.socket.remoteAddress ?? '')
      ? { allowed: true, user: 'loopback' }
      : {
          allowed: false,
          status: 401,
          reason:
            "no credentials are configured, so only clients on the aggregator's own host may read; configure --http-tokens",
        };
  }
}

interface TokenGrant {
  user: string;
  digest: Buffer;
  verbs: Set<string>;
  resources: Set<string>;
  /** Report names this token may act on; "*" for all. */
  reports: Set<string>;
}

/**
 * Static bearer tokens with per-report grants, for running without a cluster
 * (`--http-tokens FILE`):
 *
 *   tokens:
 *     - user: auditor-a
 *       token: "..."            # or sha256: "<hex of the token>"
 *       verbs: [get, list]       # get, list, create
 *       reports: [weekly-cis]    # report names, or "*"
 *       resources: [globalreports, nodes, flows]   # default: globalreports
 *
 * A token with `get` on one report name reads that report and its runs, and no
 * other (the SubjectAccessReview rule for clusters: docs/DESIGN.md, "Trust").
 */
export class StaticTokenReaders implements HttpAuthorizer {
  readonly description = 'HTTP readers authenticate with bearer tokens from --http-tokens (per-report grants)';
  private readonly grants: TokenGrant[];

  constructor(file: string) {
    let doc: {
      tokens?: {
        user?: unknown;
        token?: unknown;
        sha256?: unknown;
        verbs?: unknown;
        reports?: unknown;
        resources?: unknown;
      }[];
    };
    try {
      doc = parseYaml(readFileSync(file, 'utf8')) as typeof doc;
    } catch (err) {
      throw configError(`cannot read --http-tokens ${file}: ${(err as Error).message}`, { cause: err });
    }
    if (!Array.isArray(doc?.tokens) || doc.tokens.length === 0)
      throw configError(`${file}: expected "tokens:" with at least one entry`);
    this.grants = doc.tokens.map((t, i) => {
      const where = `${file}: tokens[${i}]`;
      if (typeof t.user !== 'string' || !t.user) throw configError(`${where}.user: a user name is required`);
      let digest: Buffer;
      if (typeof t.token === 'string' && t.token.length >= 16) digest = sha256(t.token);
      else if (typeof t.sha256 === 'string' && /^[0-9a-f]{64}$/.test(t.sha256)) digest = Buffer.from(t.sha256, 'hex');
      else throw configError(`${where}: give "token" (16 characters or more) or "sha256" (64 hex digits)`);
      const list = (v: unknown, dflt: string[]) => (Array.isArray(v) ? v.map(String) : dflt);
      const verbs = list(t.verbs, ['get', 'list']);
      for (const v of verbs)
        if (!['get', 'list', 'create'].includes(v))
          throw configError(`${where}.verbs: "${v}" is not get, list or create`);
      return {
        user: t.user,
        digest,
        verbs: new Set(verbs),
        resources: new Set(list(t.resources, ['globalreports'])),
        reports: new Set(list(t.reports, [])),
      };
    });
  }

  async authorize(req: FastifyRequest, want: AccessRequest): Promise<AccessDecision> {
    const m = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''));
    if (!m)
      return {
        allowed: false,
        status: 401,
        reason: 'send "Authorization: Bearer <token>" with a token from --http-tokens',
      };
    const digest = sha256(m[1] as string);
    const grant = this.grants.find((g) => timingSafeEqual(g.digest, digest));
    if (!grant) return { allowed: false, status: 401, reason: 'the bearer token is not known' };
    const ok =
      grant.resources.has(want.resource) &&
      grant.verbs.has(want.verb) &&
      (want.resource !== 'globalreports' ||
        want.verb === 'list' ||
        grant.reports.has('*') ||
        (want.name !== undefined && grant.reports.has(want.name)));
    return ok
      ? { allowed: true, user: grant.user }
      : {
          allowed: false,
          status: 403,
          reason: `user ${grant.user} may not ${want.verb} ${want.resource}${want.name ? ` "${want.name}"` : ''}`,
        };
  }

  /** Whether this user may get a given report (to filter lists). */
  canGet(user: string, name: string): boolean {
    return this.grants.some(
      (g) => g.user === user && g.verbs.has('get') && (g.reports.has('*') || g.reports.has(name)),
    );
  }
}

/** Who each request that authorizeRequest let through was authorized as (for log lines). */
const readers = new WeakMap<FastifyRequest, string>();

/** The user the request was authorized as; undefined on a public route. */
export function readerOf(req: FastifyRequest): string | undefined {
  return readers.get(req);
}

/**
 * The one HTTP authorization check, an onRequest hook on the whole app: it asks the authorizer what the matched
 * route's `config.access` declares, before fastify reads the body (the audit webhook takes up to 16 MiB) or validates
 * anything, and answers a refusal as 401 or 403 with the ErrorReply shape. The route is the matched one, never the raw
 * URL: the router has already decoded percent-escapes ("/api/v1/%6eodes"). A per-report route's name is the router's
 * path parameter as given; one that is not a valid name can still be refused here, and is a 400 after.
 */
export function authorizeRequest(authorizer: HttpAuthorizer) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    // Unmatched requests (the 404 handler) have no access to check.
    const access = req.routeOptions.config.access;
    if (access === undefined || access === 'public') return undefined;
    const want: AccessRequest = { verb: access.verb, resource: access.resource };
    if (access.nameParam !== undefined) {
      const params: unknown = req.params;
      const name: unknown = typeof params === 'object' && params !== null ? Reflect.get(params, access.nameParam) : '';
      want.name = typeof name === 'string' ? name : '';
    }
    const d = await authorizer.authorize(req, want);
    if (d.allowed) {
      readers.set(req, d.user);
      return undefined;
    }
    // A refused request's body is never read: close the connection rather than let Node drain it to keep the
    // connection alive, or a caller with no credentials could trickle a 16 MiB body to hold a socket for ever.
    if (hasBody(req)) reply.header('connection', 'close');
    return reply.status(d.status).send(accessDenied(d.status, d.reason));
  };
}

/** Whether the request says a body follows (a length above 0, or chunked). */
function hasBody(req: FastifyRequest): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * An onRoute hook: a route that does not say who may call it is a startup error, not an open route. (fastify's HEAD
 * twin of a GET route copies its config.)
 */
export function requireAccess(route: RouteOptions): void {
  if (route.config?.access === undefined)
    throw new Error(`route ${String(route.method)} ${route.url} declares no config.access ("public" or what it needs)`);
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
