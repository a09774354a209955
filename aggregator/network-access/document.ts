/**
 * Reading parsed Kubernetes documents (YAML or JSON from a snapshot, a watch, the store) without trusting them: every
 * field is read by name through these guards, nothing parsed is spread or merged into another object, and label maps
 * are copied into objects without a prototype, so a key named `__proto__` or `constructor` is only a label.
 */

export type Doc = Readonly<Record<string, unknown>>;

/** The value as an object (not an array, not null), or undefined. */
export function docOf(v: unknown): Doc | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Doc) : undefined;
}

/** An own field, never one inherited from Object.prototype. */
export function field(d: Doc | undefined, key: string): unknown {
  return d !== undefined && Object.prototype.hasOwnProperty.call(d, key) ? d[key] : undefined;
}

export function fieldDoc(d: Doc | undefined, key: string): Doc | undefined {
  return docOf(field(d, key));
}

export function fieldString(d: Doc | undefined, key: string): string | undefined {
  const v = field(d, key);
  return typeof v === 'string' ? v : undefined;
}

export function fieldList(d: Doc | undefined, key: string): unknown[] | undefined {
  const v = field(d, key);
  return Array.isArray(v) ? v : undefined;
}

export function stringList(d: Doc | undefined, key: string): string[] {
  return (fieldList(d, key) ?? []).filter((s): s is string => typeof s === 'string');
}

/** A label map: string values only, in an object without a prototype. */
export function labelMap(v: unknown): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  const d = docOf(v);
  if (!d) return out;
  for (const k of Object.keys(d)) {
    const val = d[k];
    if (typeof val === 'string') out[k] = val;
  }
  return out;
}

/** A copy of labels with more added, still without a prototype. */
export function withLabels(base: Readonly<Record<string, string>>, more: [string, string][]): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const k of Object.keys(base)) out[k] = base[k] as string;
  for (const [k, v] of more) out[k] = v;
  return out;
}
