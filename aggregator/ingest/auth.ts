import { timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { Metadata } from '@grpc/grpc-js';
import type { AuthContext } from '@grpc/grpc-js/build/src/auth-context.js';
import { configError } from '../errors.js';

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
  readonly description =
    "agents authenticate with client certificates (mutual TLS); each may report only as the node in its certificate's common name";

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
    return isLoopbackPeer(peer)
      ? { ok: true, identity: { method: 'loopback' } }
      : { ok: false, reason: `peer ${peer} is not on loopback and no agent credentials are configured` };
  }
}

/** A shared bearer token (outside a cluster): any holder may report as any node. */
export class SharedToken implements AgentAuthenticator {
  readonly description = 'agents authenticate with the shared token from --agent-token-file';
  private readonly token: Buffer;

  constructor(token: string) {
    if (token.trim().length < 16)
      throw configError('the agent token must be at least 16 characters; generate one with `openssl rand -hex 32`');
    this.token = Buffer.from(token.trim());
  }

  async authenticate(metadata: Metadata): Promise<AuthResult> {
    const given = bearer(metadata);
    if (!given) return { ok: false, reason: 'no bearer token in the authorization metadata' };
    const b = Buffer.from(given);
    return b.length === this.token.length && timingSafeEqual(b, this.token)
      ? { ok: true, identity: { method: 'shared-token' } }
      : { ok: false, reason: 'the bearer token does not match' };
  }
}

export function bearer(metadata: Metadata): string | undefined {
  const v = metadata.get('authorization')[0];
  if (typeof v !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(v.trim());
  return m?.[1];
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * Loopback: 127.0.0.0/8, ::1, and IPv4-mapped 127.x (::ffff:127.0.0.1, how a
 * dual-stack "[::]" listener sees an IPv4 loopback client). `address` is a bare
 * IP as Node's socket.remoteAddress gives it, without brackets or a port.
 */
export function isLoopbackAddress(address: string): boolean {
  const family = isIP(address);
  // BlockList matches IPv4-mapped IPv6 addresses against its IPv4 rules.
  return family !== 0 && LOOPBACK.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

/**
 * A grpc-js peer: "127.0.0.1:5123", "::ffff:127.0.0.1:5123" and "::1:5123" (grpc-js
 * 1.14 joins socket.remoteAddress and port without brackets), "[::1]:5123", an
 * "ipv4:"/"ipv6:" prefixed form, or a bare address. The port comes off first:
 * grpc-js always appends one for TCP, so "::1:5123" is ::1 port 5123, not the
 * IPv6 address 0::1:5123.
 */
export function isLoopbackPeer(peer: string): boolean {
  const p = peer.replace(/^(ipv4|ipv6):/, '');
  if (p.startsWith('unix:')) return true;
  const bracketed = /^\[([^\]]+)\](:\d+)?$/.exec(p);
  if (bracketed) return isLoopbackAddress(bracketed[1] as string);
  const withoutPort = p.replace(/:\d+$/, '');
  return isLoopbackAddress(isIP(withoutPort) ? withoutPort : p);
}
