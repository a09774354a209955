import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyRequest } from 'fastify';
import { parse as parseYaml } from 'yaml';
import { isLoopbackAddress } from '../ingest/auth.js';

/** What a request wants to do, in Kubernetes RBAC terms on Verdict's globalreports. */
export interface AccessRequest {
  verb: 'get' | 'list' | 'create';
  /** globalreports (reports and their runs), or another Verdict resource. */
  resource: 'globalreports' | 'nodes' | 'flows' | 'auditevents';
  /** A report's name; per-name grants apply to it. */
  name?: string;
}

export type AccessDecision = { allowed: true; user: string } | { allowed: false; status: 401 | 403; reason: string };

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
      throw new Error(`VERDICT_CONFIG_INVALID: cannot read --http-tokens ${file}: ${(err as Error).message}`);
    }
    if (!Array.isArray(doc?.tokens) || doc.tokens.length === 0)
      throw new Error(`VERDICT_CONFIG_INVALID: ${file}: expected "tokens:" with at least one entry`);
    this.grants = doc.tokens.map((t, i) => {
      const where = `${file}: tokens[${i}]`;
      if (typeof t.user !== 'string' || !t.user)
        throw new Error(`VERDICT_CONFIG_INVALID: ${where}.user: a user name is required`);
      let digest: Buffer;
      if (typeof t.token === 'string' && t.token.length >= 16) digest = sha256(t.token);
      else if (typeof t.sha256 === 'string' && /^[0-9a-f]{64}$/.test(t.sha256)) digest = Buffer.from(t.sha256, 'hex');
      else
        throw new Error(
          `VERDICT_CONFIG_INVALID: ${where}: give "token" (16 characters or more) or "sha256" (64 hex digits)`,
        );
      const list = (v: unknown, dflt: string[]) => (Array.isArray(v) ? v.map(String) : dflt);
      const verbs = list(t.verbs, ['get', 'list']);
      for (const v of verbs)
        if (!['get', 'list', 'create'].includes(v))
          throw new Error(`VERDICT_CONFIG_INVALID: ${where}.verbs: "${v}" is not get, list or create`);
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

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}
