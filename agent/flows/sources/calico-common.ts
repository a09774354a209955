import type { FlowEndpoint, FlowRecord } from '../../../common/flow.js';
import type { InternalNetworks, ParseResult } from '../normalize.js';
import { forgetCalicoCaches, parseCalicoLine, side, type Side } from './calico.js';
import { cachedPolicies, NO_POLICIES, type PolicyHits } from './calico-policies.js';
import {
  CALICO_FIELDS,
  calicoSpans,
  FIELD,
  known,
  sameBytes,
  scanCalicoLine,
  spanHash,
  type Known,
} from './calico-scan.js';

/**
 * Felix's flows.log lines as the agent's file follower reads them, as bytes. A line of the common shape
 * (calico-scan.ts) is read straight into a flow: no decoded line, no object of its ~60 fields, and its endpoints and
 * policies found by the bytes they are written with, so a repeated one costs a lookup. Any other line, and any line
 * that is not a flow or the fwd skip, is decoded and read by parseCalicoLine (JSON.parse): one result for every line
 * either way, which a property test holds the two to.
 */
export function parseCalicoBytes(
  b: Buffer,
  start: number,
  end: number,
  internal: InternalNetworks,
): ParseResult<FlowRecord> {
  return readCommonLine(b, start, end, internal) ?? parseCalicoLine(b.toString('utf8', start, end), internal);
}

/** Where readCommonLine finds the fields it reads, filled per line (one line at a time: all of it is synchronous). */
const spans = calicoSpans();

/** A count's answer for a field absent or null, and for a value that is not plain digits (parseCalicoLine's turn). */
const ABSENT = -1;
const ODD = -2;

const QUOTE = 0x22;
const SMALL_N = 0x6e;

/** JSON texts compared in place. */
const word = (s: string) => known(Uint8Array.from(Buffer.from(s, 'latin1')));
const ALLOW = word('"allow"');
const DENY = word('"deny"');
const SRC = word('"src"');
const DST = word('"dst"');
const FWD = word('"fwd"');
const NET = word('"net"');
const PUB = word('"pub"');
const DEFAULT = word('"default"');
const KUBERNETES = word('"kubernetes"');

/**
 * The line b[start, end) read into a flow or the fwd skip when it is of the common shape and says one; undefined
 * otherwise (a malformed line's reason is parseCalicoRecord's to give). Only values that read one way are taken here:
 * counts written as plain digits, the expected words; anything else goes to parseCalicoLine.
 */
export function readCommonLine(
  b: Buffer,
  start: number,
  end: number,
  internal: InternalNetworks,
): ParseResult<FlowRecord> | undefined {
  if (!scanCalicoLine(b, start, end, spans)) return undefined;
  const action = textIs(b, FIELD.action, ALLOW) ? 'allow' : textIs(b, FIELD.action, DENY) ? 'deny' : '';
  if (!action) return undefined;
  if (textIs(b, FIELD.reporter, FWD)) return { kind: 'skip', why: 'reporter fwd' };
  const reporter = textIs(b, FIELD.reporter, SRC) ? 'src' : textIs(b, FIELD.reporter, DST) ? 'dst' : '';
  if (!reporter) return undefined;
  const startTime = count(b, FIELD.start_time);
  const endTime = count(b, FIELD.end_time);
  const connections = count(b, FIELD.num_flows);
  if (startTime <= 0 || endTime < startTime || connections < 0) return undefined;
  const packetsIn = count(b, FIELD.packets_in);
  const packetsOut = count(b, FIELD.packets_out);
  const bytesIn = count(b, FIELD.bytes_in);
  const bytesOut = count(b, FIELD.bytes_out);
  const port = count(b, FIELD.dest_port);
  if (packetsIn === ODD || packetsOut === ODD || bytesIn === ODD || bytesOut === ODD || port === ODD || port > 65535)
    return undefined;
  const protocol = protocolOf(b);
  if (protocol === undefined) return undefined;
  const source = commonSide(b, 'source', internal, false);
  if (!source) return undefined;
  const apiServer = textIs(b, FIELD.dest_service_namespace, DEFAULT) && textIs(b, FIELD.dest_service_name, KUBERNETES);
  const destination = commonSide(b, 'dest', internal, apiServer);
  if (!destination) return undefined;
  const policies = commonPolicies(b);
  if (!policies?.enforced) return undefined;
  return {
    kind: 'flow',
    flow: {
      source,
      destination,
      protocol,
      destinationPort: Math.max(port, 0),
      action,
      reporter,
      policies: policies.enforced,
      stagedPolicies: policies.staged,
      unnamedPolicy: false,
      policyDecided: policies.decided,
      connections,
      packets: Math.max(packetsIn, 0) + Math.max(packetsOut, 0),
      bytes: Math.max(bytesIn, 0) + Math.max(bytesOut, 0),
      startMs: startTime * 1000,
      endMs: endTime * 1000,
    },
  };
}

/** Whether the field's JSON text is `text`. */
function textIs(b: Uint8Array, f: number, text: Known): boolean {
  const s = spans[2 * f] as number;
  const e = spans[2 * f + 1] as number;
  return s >= 0 && e - s === text.bytes.length && sameBytes(b, s, e, text, 0);
}

/**
 * A counted field written as plain digits (at most 15: always a safe integer), ABSENT for absent or null, ODD for
 * anything else (a fraction, an exponent, a sign, a string: parseCalicoRecord says what is wrong, or reads 1e3).
 */
function count(b: Uint8Array, f: number): number {
  const s = spans[2 * f] as number;
  const e = spans[2 * f + 1] as number;
  // The scanner lets only null start with n.
  if (s < 0 || b[s] === SMALL_N) return ABSENT;
  if (e - s > 15) return ODD;
  let n = 0;
  for (let i = s; i < e; i++) {
    const d = (b[i] as number) - 0x30;
    if (d < 0 || d > 9) return ODD;
    n = n * 10 + d;
  }
  return n;
}

/** The last few protocols read, as written and as a flow names them: a log has a handful ("tcp", "udp", "icmp"). */
const protocols: { text: Known; protocol: string }[] = [];

function protocolOf(b: Buffer): string | undefined {
  const s = spans[2 * FIELD.proto] as number;
  if (s < 0) return undefined;
  if (b[s] !== QUOTE) {
    const n = count(b, FIELD.proto);
    return n >= 0 ? String(n) : undefined;
  }
  for (const p of protocols) if (textIs(b, FIELD.proto, p.text)) return p.protocol;
  const e = spans[2 * FIELD.proto + 1] as number;
  // ASCII (the scanner reports no other text), so its Latin-1 reading is its UTF-8 one.
  const protocol = b.toString('latin1', s + 1, e - 1).toLowerCase();
  if (protocols.length >= 4) protocols.shift();
  protocols.push({ text: known(Uint8Array.from(b.subarray(s, e))), protocol });
  return protocol;
}

/** Caches are emptied at this size, as calico.ts's are. */
const MAX_CACHED = 10_000;

/**
 * An endpoint side() built, by the JSON text of the fields it was built from (type, namespace, name_aggr, name,
 * labels: `text`, each ending at `ends[i]`) and whether it is the internet and the API server (`flags`).
 */
interface KnownEndpoint {
  text: Known;
  ends: Int32Array;
  flags: number;
  endpoint: FlowEndpoint;
}

/** Each side's fields from its type on: the ip (offset 4) is not part of the key, only whether it made the internet. */
const KEY_OFFSETS = [0, 1, 2, 3, 5];

const endpointsByText = new Map<number, KnownEndpoint[]>();

/** One side's endpoint: known by its text, or built by side() from its fields' values; undefined if side() refuses. */
function commonSide(b: Buffer, s: Side, internal: InternalNetworks, apiServer: boolean): FlowEndpoint | undefined {
  const base = s === 'source' ? FIELD.source_type : FIELD.dest_type;
  const ipStart = spans[2 * (base + 4)] as number;
  const ipFirst = ipStart < 0 ? QUOTE : b[ipStart];
  // An address that is neither absent, null nor a string makes side() refuse the record: its reason to give.
  if (ipFirst !== QUOTE && ipFirst !== SMALL_N) return undefined;
  let internet = textIs(b, base, NET) && textIs(b, base + 2, PUB);
  if (internet && internal.size > 0 && ipStart >= 0 && ipFirst === QUOTE)
    internet = !internal.contains(b.toString('latin1', ipStart + 1, (spans[2 * (base + 4) + 1] as number) - 1));
  const flags = (internet ? 1 : 0) | (apiServer ? 2 : 0);
  let h = flags;
  for (const o of KEY_OFFSETS) {
    const f = base + o;
    const fs = spans[2 * f] as number;
    h = fs < 0 ? Math.imul(h ^ 0x7fff, 0x01000193) : spanHash(b, fs, spans[2 * f + 1] as number, h);
  }
  const bucket = endpointsByText.get(h);
  if (bucket) for (const k of bucket) if (k.flags === flags && sameKey(b, base, k)) return k.endpoint;
  const rec: Record<string, unknown> = {};
  for (let f = base; f < base + 6; f++) {
    const fs = spans[2 * f] as number;
    if (fs >= 0) rec[CALICO_FIELDS[f] as string] = JSON.parse(b.toString('latin1', fs, spans[2 * f + 1]));
  }
  const endpoint = side(rec, s, internal, apiServer);
  if (typeof endpoint === 'string') return undefined;
  const entry = { ...keyText(b, base), flags, endpoint };
  if (bucket && bucket.length < 4) bucket.push(entry);
  else {
    if (endpointsByText.size >= MAX_CACHED) endpointsByText.clear();
    endpointsByText.set(h, [entry]);
  }
  return endpoint;
}

/** Whether the side's key fields are written as `k` was built from (an absent field is an empty text). */
function sameKey(b: Uint8Array, base: number, k: KnownEndpoint): boolean {
  let at = 0;
  for (let i = 0; i < KEY_OFFSETS.length; i++) {
    const f = base + (KEY_OFFSETS[i] as number);
    const fs = spans[2 * f] as number;
    const fe = fs < 0 ? fs : (spans[2 * f + 1] as number);
    const to = k.ends[i] as number;
    if (fe - fs !== to - at || !sameBytes(b, fs, fe, k.text, at)) return false;
    at = to;
  }
  return true;
}

function keyText(b: Uint8Array, base: number): { text: Known; ends: Int32Array } {
  const ends = new Int32Array(KEY_OFFSETS.length);
  let length = 0;
  for (const [i, o] of KEY_OFFSETS.entries()) {
    const fs = spans[2 * (base + o)] as number;
    if (fs >= 0) length += (spans[2 * (base + o) + 1] as number) - fs;
    ends[i] = length;
  }
  const text = new Uint8Array(length);
  for (const [i, o] of KEY_OFFSETS.entries()) {
    const fs = spans[2 * (base + o)] as number;
    if (fs >= 0) text.set(b.subarray(fs, spans[2 * (base + o) + 1]), i === 0 ? 0 : (ends[i - 1] as number));
  }
  return { text: known(text), ends };
}

/** Policy lists by the JSON text of the record's `policies`. */
const policiesByText = new Map<number, { text: Known; hits: PolicyHits }[]>();

function commonPolicies(b: Buffer): PolicyHits | undefined {
  const s = spans[2 * FIELD.policies] as number;
  if (s < 0) return NO_POLICIES;
  const e = spans[2 * FIELD.policies + 1] as number;
  const h = spanHash(b, s, e, 0);
  const bucket = policiesByText.get(h);
  if (bucket) for (const k of bucket) if (k.text.bytes.length === e - s && sameBytes(b, s, e, k.text, 0)) return k.hits;
  const hits = cachedPolicies(JSON.parse(b.toString('latin1', s, e)));
  if (!hits.enforced) return undefined;
  const entry = { text: known(Uint8Array.from(b.subarray(s, e))), hits };
  if (bucket && bucket.length < 4) bucket.push(entry);
  else {
    if (policiesByText.size >= MAX_CACHED) policiesByText.clear();
    policiesByText.set(h, [entry]);
  }
  return hits;
}

/** Empty these caches and calico.ts's (tests: a line read with warm caches must read as it does cold). */
export function forgetCommonLineCaches(): void {
  endpointsByText.clear();
  policiesByText.clear();
  protocols.length = 0;
  forgetCalicoCaches();
}
