import { timingSafeEqual } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import type { AuthContext } from '@grpc/grpc-js/build/src/auth-context.js';

/** Who is on the other end of an agent stream. */
export interface AgentIdentity {
  /** How it was authenticated. */
  method: 'loopback' | 'shared-token' | 'mtls' | 'service-account';
  /** The node it may report as; undefined means any (shared token, loopback). */
  node?: string;
}

export type AuthResult = { ok: true; identity: AgentIdentity } | { ok: false; reason: string };

/** Decides whether a stream may open, before any message is read. */
export interface AgentAuthenticator {
  readonly description: string;
  authenticate(metadata: Metadata, peer: string, authContext?: AuthContext): Promise<AuthResult>;
}

/**
 * Mutual TLS (outside a cluster): the TLS layer already verified the client
 * certificate against --tls-ca; the certificate's common name is the node it
 * may report as ("node-1", or the kubelet-style "system:node:node-1").
 */
export class MutualTls implements AgentAuthenticator {
  readonly description = 'agents authenticate with client certificates (mutual TLS); each may report only as the node in its certificate\'s common name';

  async authenticate(_metadata: Metadata, _peer: string, authContext?: AuthContext): Promise<AuthResult> {
    const cn = authContext?.sslPeerCertificate?.subject?.CN;
    const name = Array.isArray(cn) ? cn[0] : cn;
    if (!name) return { ok: false, reason: 'the client certificate has no common name naming its node' };
    return { ok: true, identity: { method: 'mtls', node: name.replace(/^system:node:/, '') } };
  }
}

/**
 * No credentials configured: only agents on this machine may connect. This is
 * how `npm start` and local tests run; the aggregator says so when it starts.
 */
export class LoopbackOnly implements AgentAuthenticator {
  readonly description = 'no agent credentials configured: accepting agents on loopback only';

  async authenticate(_metadata: Metadata, peer: string): Promise<AuthResult> {
    return isLoopbackPeer(peer) ? { ok: true, identity: { method: 'loopback' } } : { ok: false, reason: `peer ${peer} is not on loopback and no agent credentials are configured` };
  }
}

/** A shared bearer token (outside a cluster): any holder may report as any node. */
export class SharedToken implements AgentAuthenticator {
  readonly description = 'agents authenticate with the shared token from --agent-token-file';
  private readonly token: Buffer;

  constructor(token: string) {
    if (token.trim().length < 16) throw new Error('VERDICT_CONFIG_INVALID: the agent token must be at least 16 characters; generate one with `openssl rand -hex 32`');
    this.token = Buffer.from(token.trim());
  }

  async authenticate(metadata: Metadata): Promise<AuthResult> {
    const given = bearer(metadata);
    if (!given) return { ok: false, reason: 'no bearer token in the authorization metadata' };
    const b = Buffer.from(given);
    return b.length === this.token.length && timingSafeEqual(b, this.token) ? { ok: true, identity: { method: 'shared-token' } } : { ok: false, reason: 'the bearer token does not match' };
  }
}

export function bearer(metadata: Metadata): string | undefined {
  const v = metadata.get('authorization')[0];
  if (typeof v !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(v.trim());
  return m?.[1];
}

/** grpc-js peers look like "127.0.0.1:5123", "[::1]:5123" or "ipv4:127.0.0.1:5123". */
export function isLoopbackPeer(peer: string): boolean {
  const p = peer.replace(/^(ipv4|ipv6):/, '');
  return /^127\./.test(p) || /^\[::1\]/.test(p) || /^::1$/.test(p) || /^\[::ffff:127\./.test(p) || p.startsWith('unix:');
}
