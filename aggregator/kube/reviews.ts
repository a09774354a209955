import { createHash } from 'node:crypto';
import type { KubeClient } from '../../common/kube-client.js';
import { AGGREGATOR_DEFAULTS_TABLE } from '../defaults.js';
import type { KubeComponentOptions } from './watch.js';

export interface TokenReviewerOptions extends Omit<KubeComponentOptions, 'log'> {
  /** Positive answers are reused this long, ms. */
  cacheMs?: number;
  /** At most this many tokens are remembered (then all are forgotten). */
  cacheMaxEntries?: number;
}

/** What TokenReview said about a bearer token. */
export type ReviewedUser =
  | { authenticated: true; username: string; uid: string; groups: string[]; extra: Record<string, string[]> }
  | { authenticated: false; reason: string };

interface TokenReviewStatus {
  status?: {
    authenticated?: boolean;
    user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
    audiences?: string[];
    error?: string;
  };
}

/**
 * TokenReview (authentication.k8s.io/v1) with a short cache, so a reconnecting
 * agent or a busy dashboard does not send one review per request. Only
 * positive answers are cached, for at most `ttlMs`; tokens are kept as hashes.
 */
export class TokenReviewer {
  private readonly cache = new Map<string, { user: ReviewedUser; until: number }>();
  private readonly kube: KubeClient;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: TokenReviewerOptions) {
    this.kube = options.kube;
    this.ttlMs = options.cacheMs ?? AGGREGATOR_DEFAULTS_TABLE.kube.tokenReviewCacheMs;
    this.maxEntries = options.cacheMaxEntries ?? AGGREGATOR_DEFAULTS_TABLE.kube.tokenReviewCacheMaxEntries;
    this.now = options.now ?? Date.now;
  }

  async review(token: string, audiences?: string[]): Promise<ReviewedUser> {
    const key = createHash('sha256')
      .update(`${audiences?.join(',') ?? ''}\u0000${token}`)
      .digest('hex');
    const hit = this.cache.get(key);
    if (hit && hit.until > this.now()) return hit.user;
    const body = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, ...(audiences ? { audiences } : {}) },
    };
    const res = await this.kube.create<TokenReviewStatus>('/apis/authentication.k8s.io/v1/tokenreviews', body);
    const s = res.status ?? {};
    let user: ReviewedUser;
    if (!s.authenticated || !s.user?.username) {
      user = { authenticated: false, reason: s.error || 'the API server did not authenticate the token' };
    } else if (audiences && !audiences.some((a) => (s.audiences ?? []).includes(a))) {
      user = { authenticated: false, reason: `the token is not for audience ${audiences.join(' or ')}` };
    } else {
      user = {
        authenticated: true,
        username: s.user.username,
        uid: s.user.uid ?? '',
        groups: s.user.groups ?? [],
        extra: s.user.extra ?? {},
      };
    }
    if (user.authenticated) {
      this.cache.set(key, { user, until: this.now() + this.ttlMs });
      if (this.cache.size > this.maxEntries) this.cache.clear();
    }
    return user;
  }
}

interface SarStatus {
  status?: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string };
}

/** SubjectAccessReview (authorization.k8s.io/v1): may this user do this to this resource? */
export async function subjectAccessReview(
  kube: KubeClient,
  user: { username: string; uid: string; groups: string[]; extra: Record<string, string[]> },
  attrs: { group: string; resource: string; verb: string; name?: string; subresource?: string },
): Promise<{ allowed: boolean; reason: string }> {
  const body = {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: {
      user: user.username,
      uid: user.uid,
      groups: user.groups,
      extra: user.extra,
      resourceAttributes: {
        group: attrs.group,
        resource: attrs.resource,
        verb: attrs.verb,
        ...(attrs.name ? { name: attrs.name } : {}),
        ...(attrs.subresource ? { subresource: attrs.subresource } : {}),
      },
    },
  };
  const res = await kube.create<SarStatus>('/apis/authorization.k8s.io/v1/subjectaccessreviews', body);
  const s = res.status ?? {};
  return {
    allowed: s.allowed === true && s.denied !== true,
    reason: s.reason || s.evaluationError || (s.allowed ? 'allowed' : 'RBAC does not allow it'),
  };
}
