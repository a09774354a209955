import { setImmediate as nextTurn } from 'node:timers/promises';

/** Characters scanned, and items parsed, per turn of the event loop. */
const CHARS_PER_TURN = 1024 * 1024;
const ITEMS_PER_TURN = 1000;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const CLOSE_BRACE = 0x7d;
const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Where the top-level "items" array is, and each of its elements, as [start, end) offsets. */
interface ItemsSpan {
  start: number;
  end: number;
  elements: [number, number][];
}

/**
 * The parsed webhook body, equal to JSON.parse(body), without holding the
 * event loop for the whole of it: JSON.parse of a 16 MiB EventList takes a
 * quarter of a second or more in one go. A first pass that only follows
 * strings and brackets finds the elements of the top-level "items" array
 * (yielding every MiB); the body around the array and then each element are
 * parsed by JSON.parse, a thousand elements per turn. Anything the first pass
 * does not recognise (not an object, no "items" array, broken brackets) is
 * left to one JSON.parse of the whole body, which also gives the error for a
 * body that is not JSON.
 */
export async function parseEventListBody(body: string): Promise<unknown> {
  const span = await findItems(body);
  if (!span) return JSON.parse(body) as unknown;
  const outer = JSON.parse(`${body.slice(0, span.start)}[]${body.slice(span.end)}`) as Record<string, unknown>;
  const items = new Array<unknown>(span.elements.length);
  for (let k = 0; k < span.elements.length; k++) {
    if (k > 0 && k % ITEMS_PER_TURN === 0) await nextTurn();
    const [s, e] = span.elements[k] as [number, number];
    try {
      items[k] = JSON.parse(body.slice(s, e)) as unknown;
    } catch (err) {
      throw new SyntaxError(`items[${k}]: ${(err as Error).message}`);
    }
  }
  outer.items = items;
  return outer;
}

/**
 * The last top-level "items" array of a JSON object body (as JSON.parse keeps the last of duplicate keys), or
 * undefined.
 */
async function findItems(body: string): Promise<ItemsSpan | undefined> {
  let i = 0;
  while (i < body.length && isSpace(body.charCodeAt(i))) i++;
  if (body.charCodeAt(i) !== OPEN_BRACE) return undefined;
  let depth = 0;
  let lastString: [number, number] = [-1, -1];
  /** The key whose value starts at the next non-space character at depth 1. */
  let valueOf: string | undefined;
  let found: ItemsSpan | undefined;
  /**
   * The "items" array being scanned, with the start of its current element (-1 between elements) and whether a comma is
   * waiting for one.
   */
  let open: { span: ItemsSpan; elementStart: number; afterComma: boolean } | undefined;
  let nextYield = CHARS_PER_TURN;
  for (; i < body.length; i++) {
    if (i >= nextYield) {
      await nextTurn();
      nextYield = i + CHARS_PER_TURN;
    }
    const c = body.charCodeAt(i);
    if (isSpace(c)) continue;
    if (depth === 1 && valueOf !== undefined) {
      if (valueOf === 'items') {
        found = undefined;
        if (c === OPEN_BRACKET)
          open = { span: { start: i, end: -1, elements: [] }, elementStart: -1, afterComma: false };
      }
      valueOf = undefined;
    }
    if (open && depth === 2) {
      if (c === COMMA || c === CLOSE_BRACKET) {
        if (open.elementStart >= 0) open.span.elements.push([open.elementStart, i]);
        else if (c === COMMA || open.afterComma) return undefined;
        open.elementStart = -1;
        open.afterComma = c === COMMA;
      } else if (open.elementStart < 0) {
        open.elementStart = i;
      }
    }
    if (c === QUOTE) {
      const end = closingQuote(body, i);
      if (end < 0) return undefined;
      if (depth === 1) lastString = [i, end + 1];
      i = end;
    } else if (c === COLON && depth === 1) {
      if (lastString[0] < 0) return undefined;
      valueOf = JSON.parse(body.slice(lastString[0], lastString[1])) as string;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
      if (open && depth === 1) {
        if (c !== CLOSE_BRACKET) return undefined;
        open.span.end = i + 1;
        found = open.span;
        open = undefined;
      }
      if (depth < 0) return undefined;
    }
  }
  return open ? undefined : found;
}

/** The index of the quote that ends the string starting at `start`, or -1. */
function closingQuote(body: string, start: number): number {
  for (let j = start + 1; j < body.length; j++) {
    const c = body.charCodeAt(j);
    if (c === BACKSLASH) j++;
    else if (c === QUOTE) return j;
  }
  return -1;
}
