import type { Metadata } from '@grpc/grpc-js';
import type { FastifyRequest } from 'fastify';
import type { KubeClient } from '../../common/kube-client.js';
import type { AccessDecision, AccessRequest, HttpAuthorizer } from '../http/access.js';
import { bearer, type AgentAuthenticator, type AuthResult } from '../ingest/auth.js';
import { subjectAccessReview, type TokenReviewer } from './reviews.js';

/** The audience agents' projected service-account tokens are minted for. */
export const AGENT_AUDIENCE = 'verdict';

/** Where Kubernetes puts the pod a bound service-account token belongs to (TokenReview user.extra). */
const EXTRA_NODE = 'authentication.kubernetes.io/node-name';
const EXTRA_POD = 'authentication.kubernetes.io/pod-name';

export interface KubeAuthOptions {
  kube: KubeClient;
  reviewer: TokenReviewer;
}

export interface ServiceAccountAgentsOptions extends KubeAuthOptions {
  /** The service account agents run as ("system:serviceaccount:NAMESPACE:NAME"). */
  serviceAccount: string;
}

/**
 * Agents authenticate with a projected service-account token for Verdict's
 * audience. TokenReview proves the token; the stream is then bound to the node
 * of the pod the token was issued to — from the token's node-name claim
 * (Kubernetes 1.30+), else by looking the pod up — so an agent can report
 * only as its own node. Only the configured service account may connect.
 */
export class ServiceAccountAgents implements AgentAuthenticator {
  readonly description: string;
  private readonly kube: KubeClient;
  private readonly reviewer: TokenReviewer;
  private readonly serviceAccount: string;

  constructor({ kube, reviewer, serviceAccount }: ServiceAccountAgentsOptions) {
    this.kube = kube;
    this.reviewer = reviewer;
    this.serviceAccount = serviceAccount;
    this.description = `agents authenticate with ${serviceAccount} tokens for audience "${AGENT_AUDIENCE}" (TokenReview), each bound to its pod's node`;
  }

  async authenticate(metadata: Metadata): Promise<AuthResult> {
    const token = bearer(metadata);
    if (!token)
      return {
        ok: false,
        reason: 'no bearer token in the authorization metadata (the agent needs --token-file with its projected token)',
      };
    let user;
    try {
      user = await this.reviewer.review(token, [AGENT_AUDIENCE]);
    } catch (err) {
      return { ok: false, reason: `TokenReview failed: ${(err as Error).message}` };
    }
    if (!user.authenticated) return { ok: false, reason: user.reason };
    if (user.username !== this.serviceAccount)
      return { ok: false, reason: `${user.username} is not the agent service account ${this.serviceAccount}` };
    let node: string | undefined = user.extra[EXTRA_NODE]?.[0];
    if (!node) {
      const pod = user.extra[EXTRA_POD]?.[0];
      const ns = user.username.split(':')[2];
      if (!pod || !ns)
        return {
          ok: false,
          reason: 'the token is not bound to a pod, so its node cannot be known; use a projected service-account token',
        };
      try {
        const p = await this.kube.get<{ spec?: { nodeName?: string } }>(
          `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(pod)}`,
        );
        node = p.spec?.nodeName;
      } catch (err) {
        return { ok: false, reason: `cannot find the node of pod ${ns}/${pod}: ${(err as Error).message}` };
      }
      if (!node) return { ok: false, reason: `pod ${ns}/${pod} is not scheduled on a node` };
    }
    return { ok: true, identity: { method: 'service-account', node } };
  }
}

/** Verdict's API group, where GlobalReport lives and RBAC on reports is written. */
const VERDICT_GROUP = 'compliance.verdict.dev';

/**
 * HTTP readers in a cluster: their bearer token is reviewed (TokenReview) and
 * each request checked with a SubjectAccessReview — reports as `globalreports`
 * in Verdict's group with the report's name, so `get` on one report's name
 * reads that report alone; node, CIS and flow data as `nodes`, `flows` and
 * audit data as `auditevents` in the same group.
 */
export class RbacReaders implements HttpAuthorizer {
  readonly description = 'HTTP readers are authorized with Kubernetes RBAC (TokenReview + SubjectAccessReview)';
  private readonly kube: KubeClient;
  private readonly reviewer: TokenReviewer;

  constructor({ kube, reviewer }: KubeAuthOptions) {
    this.kube = kube;
    this.reviewer = reviewer;
  }

  async authorize(req: FastifyRequest, want: AccessRequest): Promise<AccessDecision> {
    const m = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''));
    if (!m)
      return {
        allowed: false,
        status: 401,
        reason: 'send "Authorization: Bearer <token>" (e.g. kubectl create token <serviceaccount>)',
      };
    try {
      const user = await this.reviewer.review(m[1] as string);
      if (!user.authenticated) return { allowed: false, status: 401, reason: user.reason };
      const sar = await subjectAccessReview(this.kube, user, {
        group: VERDICT_GROUP,
        resource: want.resource,
        verb: want.verb,
        name: want.name,
      });
      return sar.allowed
        ? { allowed: true, user: user.username }
        : {
            allowed: false,
            status: 403,
            reason: `${user.username} may not ${want.verb} ${want.resource}.${VERDICT_GROUP}${want.name ? ` "${want.name}"` : ''}: ${sar.reason}`,
          };
    } catch (err) {
      return {
        allowed: false,
        status: 403,
        reason: `cannot check access with the API server: ${(err as Error).message}`,
      };
    }
  }
}
