import { Composer, Parser, LineCounter, type CST, type Document } from 'yaml';

/**
 * Documents from outside (kubelet and component config files, static pod
 * manifests, the kubelet's configz, benchmark files, GlobalReports) as plain
 * data that is safe to merge and to look keys up in.
 *
 * JavaScript gives a few keys meaning on ordinary objects: assigning
 * `__proto__` replaces an object's prototype (a recursive merge then writes
 * into Object.prototype, for the whole process), and `constructor` answers for
 * every object that does not have it. So every mapping of a document becomes
 * a null-prototype object whose keys, those included, are only ever its own
 * data properties, and lookups read own properties only. Nothing is dropped:
 * a key a reader does not know stays a key it does not know.
 *
 * Size is bounded too: YAML aliases may share one node many times (the
 * "billion laughs"), and nesting may be deep enough to exhaust the stack.
 */

/** No Kubernetes or Verdict document nests anywhere near this deep. */
const MAX_DOCUMENT_DEPTH = 64;
/** Values in a document after aliases are expanded; a bundled benchmark file has under 2,000. */
const MAX_DOCUMENT_VALUES = 200_000;
/** The yaml package's maxAliasCount: how far an alias may multiply what it points to. */
const MAX_YAML_ALIASES = 100;

/** Why a document could not be used; the message is one line, to follow "path: ". */
class DocumentError extends Error {}

/** A mapping of a document: a null-prototype object with only its own keys. */
export type DocumentMap = Record<string, unknown>;

// logLevel 'error': the yaml package would otherwise print warnings about a file's contents to stderr.
const YAML_OPTIONS = { logLevel: 'error' as const };

/** One YAML (or JSON, which is YAML) document as safe data; throws DocumentError. */
export function parseYamlDocument(text: string): unknown {
  const docs = composeYaml(text, true);
  if (docs.length > 1) throw new DocumentError(`the text holds ${docs.length} YAML documents where one is expected`);
  const [only] = docs;
  if (only?.kind === 'error') throw new DocumentError(only.reason);
  return only?.value ?? null;
}

/**
 * Every document of a YAML stream, each as safe data or the reason it cannot be used (one bad document spoils no
 * other).
 */
export function parseYamlDocuments(
  text: string,
): ({ kind: 'value'; value: unknown } | { kind: 'error'; reason: string })[] {
  return composeYaml(text, false);
}

/**
 * The yaml package composes nodes recursively: nesting a few thousand levels
 * deep overflows the stack at a depth that depends on the caller, so the same
 * file could fail in different places. Its parser is iterative, so the depth
 * is measured on the parse tree first and a document nested too deep is
 * refused before it is composed.
 */
function composeYaml(
  text: string,
  forceDoc: boolean,
): ({ kind: 'value'; value: unknown } | { kind: 'error'; reason: string })[] {
  const lines = new LineCounter();
  let tokens: CST.Token[];
  try {
    tokens = [...new Parser(lines.addNewLine).parse(text)];
  } catch (err) {
    return [{ kind: 'error', reason: firstLine(err) }];
  }
  const tooDeep: boolean[] = [];
  for (const token of tokens) {
    if (token.type !== 'document') continue;
    const deep = nestingDepth(token) > MAX_DOCUMENT_DEPTH;
    tooDeep.push(deep);
    // An empty document in its place keeps every other document where it was.
    if (deep) delete token.value;
  }
  let docs: Document.Parsed[];
  try {
    docs = [...new Composer(YAML_OPTIONS).compose(tokens, forceDoc, text.length)];
  } catch (err) {
    return [{ kind: 'error', reason: firstLine(err) }];
  }
  return docs.map((doc, i) => {
    if (tooDeep[i]) return { kind: 'error', reason: `nested deeper than ${MAX_DOCUMENT_DEPTH} levels` };
    try {
      return { kind: 'value', value: documentValue(doc, lines) };
    } catch (err) {
      return { kind: 'error', reason: (err as Error).message };
    }
  });
}

/** How deep collections nest in one document of the parse tree (walked without recursion). */
function nestingDepth(document: CST.Document): number {
  let max = 0;
  const pending: [CST.Token, number][] = document.value ? [[document.value, 0]] : [];
  while (pending.length > 0 && max <= MAX_DOCUMENT_DEPTH) {
    const [token, depth] = pending.pop() as [CST.Token, number];
    max = Math.max(max, depth);
    if (token.type !== 'block-map' && token.type !== 'block-seq' && token.type !== 'flow-collection') continue;
    for (const item of token.items as CST.CollectionItem[]) {
      if (item.key) pending.push([item.key, depth + 1]);
      if (item.value) pending.push([item.value, depth + 1]);
    }
  }
  return max;
}

function documentValue(doc: Document.Parsed, lines: LineCounter): unknown {
  const first = doc.errors[0];
  if (first) {
    const at = lines.linePos(first.pos[0]);
    throw new DocumentError(`${firstLine(first)} at line ${at.line}, column ${at.col}`);
  }
  let js: unknown;
  try {
    js = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    throw new DocumentError(firstLine(err));
  }
  return toDocumentValue(js);
}

/**
 * A parsed value (from JSON.parse, the yaml package, a Kubernetes client) as
 * safe data: mappings become null-prototype objects, YAML 1.1 sets become
 * lists and timestamps ISO strings. Throws DocumentError for values no
 * document holds, nesting past MAX_DOCUMENT_DEPTH (a recursive alias too)
 * or more than MAX_DOCUMENT_VALUES values.
 */
export function toDocumentValue(value: unknown): unknown {
  return copy(value, 0, { left: MAX_DOCUMENT_VALUES });
}

function copy(v: unknown, depth: number, budget: { left: number }): unknown {
  if (--budget.left < 0)
    throw new DocumentError(`the document holds more than ${MAX_DOCUMENT_VALUES} values once its aliases are expanded`);
  if (v === null || v === undefined || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v !== 'object') throw new DocumentError(`a ${typeof v} value is not data`);
  if (depth >= MAX_DOCUMENT_DEPTH)
    throw new DocumentError(`nested deeper than ${MAX_DOCUMENT_DEPTH} levels (or an alias refers to itself)`);
  if (Array.isArray(v) || v instanceof Set) return [...v].map((x: unknown) => copy(x, depth + 1, budget));
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new DocumentError('an invalid timestamp');
    return v.toISOString();
  }
  const out: DocumentMap = Object.create(null) as DocumentMap;
  if (v instanceof Map) {
    for (const [k, x] of v as Map<unknown, unknown>) out[keyText(k)] = copy(x, depth + 1, budget);
    return out;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null)
    throw new DocumentError(
      `a value of type ${Object.prototype.toString.call(v).slice(8, -1)} is not data (a !!binary or custom tag?)`,
    );
  // Own enumerable keys only; on a null-prototype object even "__proto__" is a plain key.
  for (const [k, x] of Object.entries(v)) out[k] = copy(x, depth + 1, budget);
  return out;
}

function keyText(k: unknown): string {
  if (k === null || k === undefined) return '';
  if (typeof k === 'object') throw new DocumentError('a mapping key that is itself a mapping or a list');
  return String(k);
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] as string;
}

/** A mapping (not a list, not a scalar). */
export function isDocumentMap(v: unknown): v is DocumentMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A key's own value in a mapping; undefined when the value is not a mapping or lacks the key (nothing inherited). */
export function documentField(v: unknown, key: string): unknown {
  return isDocumentMap(v) && Object.hasOwn(v, key) ? v[key] : undefined;
}

/** A value at a dotted path ("authentication.anonymous.enabled") of own keys. */
export function documentPath(v: unknown, path: string): unknown {
  let cur = v;
  for (const key of path.split('.')) cur = documentField(cur, key);
  return cur;
}

/** A string, number or boolean as text; undefined for anything else (a mapping has no text). */
export function scalarText(v: unknown): string | undefined {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
}
