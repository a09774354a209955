/**
 * A one-pass reader of the common shape of a Felix flows.log line, over the line's bytes as the follower read them:
 * where the values of the fields the agent reads start and end, without decoding the line nor building its ~60
 * properties as JSON.parse does (that object and its strings were most of the agent's garbage per line).
 *
 * It answers only for lines it reads exactly as JSON.parse reads their UTF-8 text: one compact JSON object, no
 * whitespace between tokens, no backslash (no escape to decode) and no control character anywhere, nesting at most
 * MAX_DEPTH deep, no field it reports given twice (JSON.parse keeps the last). Every other value is still checked
 * against JSON's grammar, so a line it accepts is one JSON.parse accepts. Bytes from 0x80 up may only be in values it
 * does not report: decoded, they are never a quote, a backslash or a control character, so they change no structure.
 * Anything else answers false, and the caller decodes the line and reads it with JSON.parse: the unusual costs more,
 * never reads differently.
 */

/** The fields of a Felix record the agent reads, in the order of their spans. */
export const CALICO_FIELDS = [
  'start_time',
  'end_time',
  'num_flows',
  'packets_in',
  'packets_out',
  'bytes_in',
  'bytes_out',
  'dest_port',
  'proto',
  'action',
  'reporter',
  'dest_service_namespace',
  'dest_service_name',
  'policies',
  // Each side's six fields follow each other: type, namespace, name_aggr, name, ip, labels.
  'source_type',
  'source_namespace',
  'source_name_aggr',
  'source_name',
  'source_ip',
  'source_labels',
  'dest_type',
  'dest_namespace',
  'dest_name_aggr',
  'dest_name',
  'dest_ip',
  'dest_labels',
] as const;

export type CalicoField = (typeof CALICO_FIELDS)[number];

/** A field's index in CALICO_FIELDS: its value is bytes spans[2 * i] to spans[2 * i + 1], start -1 when absent. */
export const FIELD = Object.fromEntries(CALICO_FIELDS.map((f, i) => [f, i])) as { [K in CalicoField]: number };

/** Where each field's value lies in the buffer (its JSON text, quotes included), filled by scanCalicoLine. */
export type CalicoSpans = Int32Array;

export function calicoSpans(): CalicoSpans {
  return new Int32Array(CALICO_FIELDS.length * 2);
}

/** Deeper values are left to JSON.parse: the reader recurses, and a line of a million "[" must not overflow it. */
const MAX_DEPTH = 32;

const QUOTE = 0x22;
const COMMA = 0x2c;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const COLON = 0x3a;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const SMALL_E = 0x65;
const CAPITAL_E = 0x45;
const SMALL_N = 0x6e;
const SMALL_T = 0x74;
const SMALL_F = 0x66;

/** Field names by a cheap hash of their length and two of their bytes, probed linearly; a hit is compared in full. */
const TABLE_MASK = 1023;
const table = new Int8Array(TABLE_MASK + 1).fill(-1);
const FIELD_BYTES = CALICO_FIELDS.map((f) => known(Uint8Array.from(Buffer.from(f, 'latin1'))));

function slot(b: Uint8Array, start: number, end: number): number {
  const len = end - start;
  return (len * 131 + (b[start + (len >> 1)] as number) * 7 + (b[end - 1] as number) * 3) & TABLE_MASK;
}

for (const [i, f] of FIELD_BYTES.entries()) {
  let s = slot(f.bytes, 0, f.bytes.length);
  while (table[s] !== -1) s = (s + 1) & TABLE_MASK;
  table[s] = i;
}

/** The index of the field named by b[start, end), or -1 for a field the agent does not read. */
function fieldAt(b: Uint8Array, start: number, end: number): number {
  for (let s = slot(b, start, end); ; s = (s + 1) & TABLE_MASK) {
    const f = table[s] as number;
    if (f === -1) return -1;
    if (end - start === (FIELD_BYTES[f] as Known).bytes.length && sameBytes(b, start, end, FIELD_BYTES[f] as Known, 0))
      return f;
  }
}

/**
 * Whether b[start, end) holds the bytes of `other` from `at` on (and `other` has that many there); four bytes at a
 * time: `b` must be the buffer scanCalicoLine read last, `other` comes with a DataView of its own.
 */
export function sameBytes(b: Uint8Array, start: number, end: number, other: Known, at: number): boolean {
  if (other.bytes.length - at < end - start) return false;
  let i = start;
  let j = at;
  for (; i + 4 <= end; i += 4, j += 4)
    if (view.getInt32(viewBase + i, true) !== other.view.getInt32(j, true)) return false;
  for (; i < end; i++, j++) if (b[i] !== other.bytes[j]) return false;
  return true;
}

/** Bytes compared with a line's (a field name, a value seen before), with a DataView of them. */
export interface Known {
  bytes: Uint8Array;
  view: DataView<ArrayBufferLike>;
}

export function known(bytes: Uint8Array): Known {
  return { bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.length) };
}

/**
 * The buffer being read, as a DataView for the four-bytes-at-a-time search in skipString; and the bytes from 0x80 up
 * seen in the values read since `high` was last cleared (any bit 0x80 set).
 */
let view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
let viewBase = 0;
let high = 0;

/**
 * The field names seen, each as written ('"name":', quotes and colon included) with the field it is (-1: one the agent
 * does not read), and the two names that last followed each (two: a log may mix two record shapes, as Felix versions
 * with and without the transit_ and tcp_ fields do). A writer keeps its fields in one order, so the next name is
 * nearly always one predicted: compared in place, not searched for its end nor looked up. Bounded: forgotten when
 * MAX_NAMES are known, so a writer of ever new names costs a lookup per name, nothing more.
 */
const MAX_NAMES = 1024;
const LINE_START = MAX_NAMES;
const names: Known[] = [];
const nameField: number[] = [];
const namesByHash = new Map<number, number[]>();
const nextName = new Int16Array(MAX_NAMES + 1).fill(-1);
const nextName2 = new Int16Array(MAX_NAMES + 1).fill(-1);

/** The id of the name written b[start, end) ('"name":'), known from now on. */
function nameId(b: Uint8Array, start: number, end: number): number {
  const h = spanHash(b, start, end, 0);
  const ids = namesByHash.get(h);
  if (ids)
    for (const id of ids) {
      const n = names[id] as Known;
      if (n.bytes.length === end - start && sameBytes(b, start, end, n, 0)) return id;
    }
  if (names.length >= MAX_NAMES) {
    names.length = 0;
    nameField.length = 0;
    namesByHash.clear();
    nextName.fill(-1);
    nextName2.fill(-1);
  }
  const id = names.length;
  names.push(known(Uint8Array.from(b.subarray(start, end))));
  nameField.push(fieldAt(b, start + 1, end - 2));
  const same = namesByHash.get(h);
  if (same) same.push(id);
  else namesByHash.set(h, [id]);
  return id;
}

/** Whether the line has the name `id` at i. */
function nameAt(b: Uint8Array, i: number, end: number, id: number): boolean {
  if (id < 0) return false;
  const n = names[id] as Known;
  return i + n.bytes.length <= end && sameBytes(b, i, i + n.bytes.length, n, 0);
}

/**
 * Reads the line b[start, end) (no newline) into `spans` (see the module comment); false when it is not of the common
 * shape, and then `spans` means nothing. Spans are offsets in `b`.
 */
export function scanCalicoLine(b: Buffer, start: number, end: number, spans: CalicoSpans): boolean {
  if (b[start] !== OPEN_BRACE) return false;
  if (view.buffer !== b.buffer) view = new DataView(b.buffer);
  viewBase = b.byteOffset;
  spans.fill(-1);
  let seen = 0;
  let i = start + 1;
  let prev = LINE_START;
  for (;;) {
    let id = nextName[prev] as number;
    if (!nameAt(b, i, end, id)) {
      id = nextName2[prev] as number;
      if (!nameAt(b, i, end, id)) {
        // An empty object goes to JSON.parse too: it starts with no quote.
        if (b[i] !== QUOTE) return false;
        const afterName = skipString(b, i, end);
        if (afterName < 0 || b[afterName] !== COLON) return false;
        id = nameId(b, i, afterName + 1);
        nextName2[prev] = nextName[prev] as number;
        nextName[prev] = id;
      }
    }
    const valueStart = i + (names[id] as Known).bytes.length;
    high = 0;
    const valueEnd = skipValue(b, valueStart, end, 0);
    if (valueEnd < 0) return false;
    const f = nameField[id] as number;
    if (f >= 0) {
      const bit = 1 << f;
      // Twice (JSON.parse keeps the last) or not ASCII (its text would have to be decoded): JSON.parse's turn.
      if (seen & bit || (high & 0x80808080) !== 0) return false;
      seen |= bit;
      spans[2 * f] = valueStart;
      spans[2 * f + 1] = valueEnd;
    }
    prev = id;
    const c = b[valueEnd];
    if (c === COMMA && valueEnd + 1 < end) i = valueEnd + 1;
    else return c === CLOSE_BRACE && valueEnd + 1 === end;
  }
}

/**
 * The end of the string whose opening quote is at i (just past its closing quote), or -1: none before `end`, or a
 * backslash or control character in it. Four bytes at a time: a word holds a byte to stop at when one of its bytes is
 * below 0x20, a quote or a backslash (the classic "has a zero byte" test; the lowest flagged byte is exact).
 */
function skipString(b: Uint8Array, i: number, end: number): number {
  i++;
  let hi = 0;
  while (i + 4 <= end) {
    const x = view.getUint32(viewBase + i, true);
    const q = x ^ 0x22222222;
    const s = x ^ 0x5c5c5c5c;
    const m = (((x - 0x20202020) & ~x) | ((q - 0x01010101) & ~q) | ((s - 0x01010101) & ~s)) & 0x80808080;
    if (m === 0) {
      hi |= x;
      i += 4;
      continue;
    }
    const k = (31 - Math.clz32(m & -m)) >> 3;
    // The bytes before the one stopped at, for `high`.
    high |= hi | (x & ((1 << (k * 8)) - 1));
    return b[i + k] === QUOTE ? i + k + 1 : -1;
  }
  for (; i < end; i++) {
    const c = b[i] as number;
    if (c === QUOTE) {
      high |= hi;
      return i + 1;
    }
    if (c < 0x20 || c === 0x5c) return -1;
    hi |= c;
  }
  return -1;
}

/**
 * A hash of b[start, end) mixed into `h` (FNV-1a's multiplier, four bytes at a time), for looking values up by their
 * text: only for a span of the line scanCalicoLine read last.
 */
export function spanHash(b: Uint8Array, start: number, end: number, h: number): number {
  h = Math.imul(h ^ (end - start), 0x01000193);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    h = Math.imul(h ^ view.getInt32(viewBase + i, true), 0x01000193);
    h ^= h >>> 15;
  }
  for (; i < end; i++) h = Math.imul(h ^ (b[i] as number), 0x01000193);
  return h;
}

/** The end of the JSON value starting at i, or -1 if there is none there (or it is one left to JSON.parse). */
function skipValue(b: Uint8Array, i: number, end: number, depth: number): number {
  const c = b[i];
  if (c === QUOTE) return skipString(b, i, end);
  if ((c !== undefined && c >= ZERO && c <= NINE) || c === MINUS) return skipNumber(b, i);
  if (c === SMALL_N) return b[i + 1] === 0x75 && b[i + 2] === 0x6c && b[i + 3] === 0x6c ? i + 4 : -1;
  if (depth >= MAX_DEPTH) return -1;
  if (c === OPEN_BRACE) return skipObject(b, i + 1, end, depth + 1);
  if (c === OPEN_BRACKET) return skipArray(b, i + 1, end, depth + 1);
  if (c === SMALL_T) return b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65 ? i + 4 : -1;
  if (c === SMALL_F)
    return b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65 ? i + 5 : -1;
  return -1;
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= ZERO && c <= NINE;
}

/**
 * JSON's number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? (the byte after it, within the line, is checked by
 * whoever reads on: only , ] } may follow).
 */
function skipNumber(b: Uint8Array, i: number): number {
  if (b[i] === MINUS) i++;
  const first = b[i];
  if (first === ZERO) i++;
  else if (isDigit(first)) while (isDigit(b[++i]));
  else return -1;
  if (b[i] === DOT) {
    if (!isDigit(b[++i])) return -1;
    while (isDigit(b[++i]));
  }
  const e = b[i];
  if (e === SMALL_E || e === CAPITAL_E) {
    const sign = b[++i];
    if (sign === PLUS || sign === MINUS) i++;
    if (!isDigit(b[i])) return -1;
    while (isDigit(b[++i]));
  }
  return i;
}

/** The end of the object whose first member starts at i (just after its "{"), or -1. */
function skipObject(b: Uint8Array, i: number, end: number, depth: number): number {
  if (b[i] === CLOSE_BRACE) return i + 1;
  for (;;) {
    if (b[i] !== QUOTE) return -1;
    const afterName = skipString(b, i, end);
    if (afterName < 0 || b[afterName] !== COLON) return -1;
    i = skipValue(b, afterName + 1, end, depth);
    if (i < 0 || i >= end) return -1;
    const c = b[i];
    if (c === CLOSE_BRACE) return i + 1;
    if (c !== COMMA) return -1;
    i++;
  }
}

/** The end of the array whose first element starts at i (just after its "["), or -1. */
function skipArray(b: Uint8Array, i: number, end: number, depth: number): number {
  if (b[i] === CLOSE_BRACKET) return i + 1;
  for (;;) {
    i = skipValue(b, i, end, depth);
    if (i < 0 || i >= end) return -1;
    const c = b[i];
    if (c === CLOSE_BRACKET) return i + 1;
    if (c !== COMMA) return -1;
    i++;
  }
}
