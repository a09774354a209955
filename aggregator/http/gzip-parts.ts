import { promisify } from 'node:util';
import { constants, crc32, deflateRaw } from 'node:zlib';

const deflate = promisify(deflateRaw);

/**
 * Parts at least this large are kept bodies (the per-node metric families), each in its own memory (Buffer's pool
 * serves only allocations under 4 KiB): their compressed form is kept with them and made again only when they are.
 */
const KEEP_FROM = 64 * 1024;
/** Speed over size: Prometheus text compresses some tenfold even so, and a changed family is compressed per change. */
const LEVEL = 1;

const kept = new WeakMap<ArrayBufferLike, { length: number; segment: Promise<Buffer> }>();

/**
 * A part as raw deflate blocks that end on a byte boundary without a final block (a sync flush): compressed on its
 * own, such a segment refers only to its own bytes, so segments placed one after another are one valid deflate stream.
 */
function segment(part: Buffer): Promise<Buffer> {
  const opts = { level: LEVEL, finishFlush: constants.Z_SYNC_FLUSH };
  if (part.length < KEEP_FROM || part.byteOffset !== 0) return deflate(part, opts);
  const k = kept.get(part.buffer);
  if (k && k.length === part.length) return k.segment;
  const made = deflate(part, opts);
  kept.set(part.buffer, { length: part.length, segment: made });
  // A failure is not kept: the next scrape tries again.
  made.catch(() => kept.delete(part.buffer));
  return made;
}

/** The gzip header: deflate, no name or time, no flags, OS unknown. */
const HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff]);
/** An empty fixed-Huffman block marked final: the end of the deflate stream. */
const LAST_BLOCK = Buffer.from([0x03, 0x00]);

/**
 * The parts as one gzip member, in pieces to write in order: a kept body's compressed segment is reused while the body
 * is the same, so a scrape compresses only the small parts that are new each time. One member, not one per part:
 * some clients (curl among them) read only a gzip stream's first member.
 */
export async function gzipParts(parts: readonly Buffer[]): Promise<Buffer[]> {
  // The checksum first: on Node 20, a zero-length Buffer once handed to an async deflate reads as a CRC of 0 after.
  let crc = 0;
  let size = 0;
  for (const p of parts) {
    crc = crc32(p, crc);
    size += p.length;
  }
  // An empty part adds nothing to the stream.
  const segments = await Promise.all(parts.filter((p) => p.length > 0).map(segment));
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(size % 2 ** 32, 4);
  return [HEADER, ...segments, LAST_BLOCK, trailer];
}

/** Whether an Accept-Encoding header takes gzip (named with a q above 0; `*` is not read as gzip). */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  const text = Array.isArray(header) ? header.join(',') : header;
  if (!text) return false;
  return text.split(',').some((item) => {
    const [name, ...params] = item.split(';').map((x) => x.trim().toLowerCase());
    if (name !== 'gzip' && name !== 'x-gzip') return false;
    const q = params.find((x) => x.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}
