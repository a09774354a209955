/**
 * Walks over parsed JSON (audit events, policy objects) that hold for any
 * nesting. JSON.parse accepts millions of levels, while a recursive walk — and
 * V8's own JSON.stringify — overflows the stack after a few thousand, so
 * nothing that reads an audit event may recurse on its shape. Every walk here
 * keeps its own stack and is linear in the size of the value. Values are
 * tree-shaped, as JSON.parse makes them (no shared or cyclic references).
 */

type Container = Record<string, unknown> | unknown[];

const isContainer = (v: unknown): v is Container => typeof v === 'object' && v !== null;
export const isPlainObject = (v: unknown): v is Record<string, unknown> => isContainer(v) && !Array.isArray(v);

/**
 * Levels of nesting kept in a stored audit event, from the webhook or the policy
 * watch; real network policies need about a dozen. Deeper parts are replaced
 * by the truncation marker before storing, so reading an event back never
 * meets a shape a reader cannot walk.
 */
export const STORED_EVENT_MAX_DEPTH = 64;

/** What a container nested deeper than the bound is replaced with, so a reader sees that something was cut. */
const truncatedMarker = (maxDepth: number) => `[verdict: truncated, nested deeper than ${maxDepth} levels]`;

export interface BoundedJson {
  value: unknown;
  /** Containers replaced by the marker because they were nested deeper than the bound. */
  truncated: number;
  /** Where the first of them was, as a dotted path (clipped to 200 characters). */
  firstTruncatedAt?: string;
  /**
   * Object keys named "__proto__" left out: no Kubernetes field has that name, and it is the one key that sets an
   * object's prototype when assigned.
   */
  protoKeysRemoved: number;
  /** Roughly how many characters the value takes as JSON (strings counted in UTF-16 units, escapes not counted). */
  approxJsonChars: number;
}

interface Frame {
  src: Container;
  dst: Container;
  /** The root container is level 1. */
  depth: number;
  parent?: Frame;
  key: string;
}

function pathOf(frame: Frame, key: string): string {
  const parts = [key];
  for (let f: Frame | undefined = frame; f?.parent; f = f.parent) parts.push(f.key);
  const path = parts.reverse().join('.');
  return path.length > 200 ? `${path.slice(0, 197)}...` : path;
}

function scalarChars(v: unknown): number {
  if (typeof v === 'string') return v.length + 2;
  if (typeof v === 'number') return String(v).length;
  if (typeof v === 'boolean') return v ? 4 : 5;
  return v === null ? 4 : 0;
}

/**
 * A copy of `value` with every container below `maxDepth` levels replaced by
 * the truncation marker, with what was cut and the approximate JSON size.
 * "__proto__" keys are left out (and counted) unless `keepProtoKeys`, which
 * copies them as plain own properties, as JSON.parse makes them. Scalars come
 * back as they are.
 */
export function boundJson(value: unknown, maxDepth: number, { keepProtoKeys = false } = {}): BoundedJson {
  const result: BoundedJson = { value, truncated: 0, protoKeysRemoved: 0, approxJsonChars: 0 };
  if (!isContainer(value)) {
    result.approxJsonChars = scalarChars(value);
    return result;
  }
  const marker = truncatedMarker(maxDepth);
  const root: Container = Array.isArray(value) ? new Array<unknown>(value.length) : {};
  result.value = root;
  const stack: Frame[] = [{ src: value, dst: root, depth: 1, key: '' }];
  let chars = 0;
  const copyInto = (f: Frame, key: string | number, v: unknown) => {
    const dst = f.dst as Record<string | number, unknown>;
    const put = (x: unknown) => {
      // Assigning to "__proto__" would set the copy's prototype; define it as data instead.
      if (key === '__proto__')
        Object.defineProperty(dst, key, { value: x, enumerable: true, writable: true, configurable: true });
      else dst[key] = x;
    };
    if (!isContainer(v)) {
      put(v);
      chars += scalarChars(v);
    } else if (f.depth >= maxDepth) {
      put(marker);
      chars += marker.length + 2;
      result.truncated++;
      result.firstTruncatedAt ??= pathOf(f, String(key));
    } else {
      const child: Container = Array.isArray(v) ? new Array<unknown>(v.length) : {};
      put(child);
      stack.push({ src: v, dst: child, depth: f.depth + 1, parent: f, key: String(key) });
    }
  };
  while (stack.length > 0) {
    const f = stack.pop() as Frame;
    chars += 2;
    if (Array.isArray(f.src)) {
      for (let i = 0; i < f.src.length; i++) copyInto(f, i, f.src[i]);
      chars += f.src.length;
    } else {
      for (const k of Object.keys(f.src)) {
        if (k === '__proto__' && !keepProtoKeys) {
          result.protoKeysRemoved++;
          continue;
        }
        chars += k.length + 4;
        copyInto(f, k, f.src[k]);
      }
    }
  }
  result.approxJsonChars = chars;
  return result;
}

/**
 * Whether two JSON values are equal as JSON: same scalars, arrays equal item
 * by item, objects with the same keys and equal values whatever their key
 * order; a key whose value is undefined counts as absent, as in JSON.stringify.
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  const stack: [unknown, unknown][] = [[a, b]];
  while (stack.length > 0) {
    const [x, y] = stack.pop() as [unknown, unknown];
    if (x === y) continue;
    if (!isContainer(x) || !isContainer(y) || Array.isArray(x) !== Array.isArray(y)) return false;
    if (Array.isArray(x)) {
      const ys = y as unknown[];
      if (x.length !== ys.length) return false;
      for (let i = 0; i < x.length; i++) stack.push([x[i], ys[i]]);
      continue;
    }
    const xo = x as Record<string, unknown>;
    const yo = y as Record<string, unknown>;
    const xKeys = Object.keys(xo).filter((k) => xo[k] !== undefined);
    const yCount = Object.keys(yo).filter((k) => yo[k] !== undefined).length;
    if (xKeys.length !== yCount) return false;
    for (const k of xKeys) {
      if (!Object.hasOwn(yo, k)) return false;
      stack.push([xo[k], yo[k]]);
    }
  }
  return true;
}

/** The value of an own property, never one inherited from Object.prototype ("constructor", "__proto__"). */
export function ownValue(o: unknown, key: string): unknown {
  return isPlainObject(o) && Object.hasOwn(o, key) ? o[key] : undefined;
}
