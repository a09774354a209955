/**
 * Calico label selectors, as written in GlobalReport `spec.endpoints.selector`,
 * `spec.endpoints.namespaces.selector` and `spec.endpoints.serviceAccounts.selector`.
 *
 * The grammar, semantics and normalized form follow Calico's own parser
 * (libcalico-go/lib/selector/{tokenizer,parser}), so a selector Calico accepts
 * is accepted here, means the same thing, and prints the same way:
 *
 *   selector   := ε                                  (empty or blank: all())
 *               | or EOF
 *   or         := and { "||" and }
 *   and        := unary { "&&" unary }
 *   unary      := { "!" } primary                    (an even number of ! cancels out)
 *   primary    := "all(" ")" | "global(" ")" | "has(" label ")"
 *               | label ( "==" | "!=" | "contains" | "starts" "with" | "ends" "with" ) string
 *               | label ( "in" | "not" "in" ) set
 *               | "(" or ")"
 *   set        := "{" [ string { "," string } [ "," ] ] "}"
 *   label      := 1..512 of [A-Za-z0-9_./-]
 *   string     := "'" any characters but ' "'"  |  '"' any characters but " '"'   (no escapes)
 *
 * Tokens may be separated by spaces and tabs (and only those: Calico rejects a
 * newline). `has(`, `all(` and `global(` are written without a space before the
 * parenthesis; inside the parentheses spaces are allowed. The two-word operators
 * may be written with any run of spaces or none ("not in", "notin", "starts with",
 * "startswith", "ends with", "endswith"). Operator words are only operators
 * after a label, so a label may itself be called `in`, `has` or `contains`.
 *
 * Precedence: `!` binds tightest, then `&&`, then `||`; `!` negates the one
 * operation or parenthesised group that follows it.
 *
 * Semantics: `k == 'v'`, `k in {..}`, `contains`, `starts with` and `ends with`
 * need label k to be present; `k != 'v'` and `k not in {..}` also match when k
 * is absent. `global()` is accepted and, like Calico's parser, evaluates to true
 * on any label set; Calico gives it its "non-namespaced resources only" meaning
 * in an EntityRule namespaceSelector, outside the selector evaluator. Callers
 * that do not support it can reject selectors with `usesGlobal`.
 */
import { VerdictError } from '../../common/errors.js';
import { AGGREGATOR_ERRORS } from '../errors.js';

/** Longest label name Calico's tokenizer accepts. */
export const MAX_LABEL_LENGTH = 512;
/**
 * Deepest parenthesis nesting accepted. Calico has no limit; this one keeps a
 * hostile selector from exhausting the stack and is far above any real use.
 */
export const MAX_NESTING_DEPTH = 1000;

export class SelectorError extends VerdictError {
  override readonly name = 'SelectorError';
  /**
   * @param selector the text that was parsed
   * @param position 0-based column (UTF-16 offset) of the offending token, or the
   *   length of the text when the selector ended too early
   * @param reason what was expected there (and what was found)
   */
  constructor(
    readonly selector: string,
    readonly position: number,
    readonly reason: string,
  ) {
    super(AGGREGATOR_ERRORS.selectorInvalid, `at column ${position} of ${JSON.stringify(selector)}: ${reason}`);
  }
}

export type SelectorNode =
  | { readonly kind: 'all' }
  | { readonly kind: 'global' }
  | { readonly kind: 'has'; readonly label: string }
  | {
      readonly kind: 'eq' | 'ne' | 'contains' | 'startsWith' | 'endsWith';
      readonly label: string;
      readonly value: string;
    }
  /** values are sorted (by code point, as Go compares strings) and de-duplicated */
  | { readonly kind: 'in' | 'notIn'; readonly label: string; readonly values: readonly string[] }
  | { readonly kind: 'not'; readonly operand: SelectorNode }
  | { readonly kind: 'and' | 'or'; readonly operands: readonly SelectorNode[] };

export type Labels = Readonly<Record<string, string>>;

export class Selector {
  /** The text this selector was parsed from. */
  readonly source: string;
  readonly root: SelectorNode;
  readonly #normalized: string;

  constructor(source: string, root: SelectorNode) {
    this.source = source;
    this.root = root;
    this.#normalized = render(root);
  }

  /** Whether a resource with these labels is selected. */
  matches(labels: Labels): boolean {
    return evaluate(this.root, labels);
  }

  /**
   * The normalized form, identical to Calico's `Selector.String()`: single
   * spaces, values double-quoted (single-quoted when they contain a double
   * quote), sets sorted and de-duplicated, every &&/|| group parenthesised,
   * and an empty selector shown as `all()`.
   */
  toString(): string {
    return this.#normalized;
  }

  toJSON(): string {
    return this.#normalized;
  }

  /** True when the selector contains `global()` anywhere. */
  get usesGlobal(): boolean {
    return containsGlobal(this.root);
  }
}

/** Parse a Calico selector; throws SelectorError naming the column and what was expected. */
export function parseSelector(text: string): Selector {
  if (typeof text !== 'string') {
    throw new SelectorError(
      String(text),
      0,
      `expected the selector to be a string, got ${text === null ? 'null' : typeof text}`,
    );
  }
  return new Selector(text, new Parser(text).parseSelector());
}

// ---------------------------------------------------------------------------
// Tokenizer

type TokenKind =
  | 'word' // a run of label characters: a label name or an operator word
  | 'string'
  | 'lparen'
  | 'rparen'
  | 'lbrace'
  | 'rbrace'
  | 'comma'
  | 'eq'
  | 'ne'
  | 'not'
  | 'and'
  | 'or'
  | 'unterminated' // a quote with no closing quote; runs to the end of the text
  | 'invalid' // a character that starts no token
  | 'eof';

interface Token {
  readonly kind: TokenKind;
  /** 0-based offset of the first character */
  readonly pos: number;
  /** offset just past the last character */
  readonly end: number;
  /** the token's text as written (strings with their quotes) */
  readonly raw: string;
  /** label name, or a string literal's contents */
  readonly value: string;
}

function isLabelChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x5f || // _
    c === 0x2e || // .
    c === 0x2f || // /
    c === 0x2d // -
  );
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  const push = (kind: TokenKind, pos: number, end: number, value = ''): void => {
    tokens.push({ kind, pos, end, raw: text.slice(pos, end), value });
  };
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === ' ' || ch === '\t') {
      i++;
      continue;
    }
    const next = text[i + 1];
    switch (ch) {
      case '(':
        push('lparen', i, i + 1);
        i += 1;
        break;
      case ')':
        push('rparen', i, i + 1);
        i += 1;
        break;
      case '{':
        push('lbrace', i, i + 1);
        i += 1;
        break;
      case '}':
        push('rbrace', i, i + 1);
        i += 1;
        break;
      case ',':
        push('comma', i, i + 1);
        i += 1;
        break;
      case '"':
      case "'": {
        const close = text.indexOf(ch, i + 1);
        if (close === -1) {
          push('unterminated', i, text.length);
          i = text.length;
        } else {
          push('string', i, close + 1, text.slice(i + 1, close));
          i = close + 1;
        }
        break;
      }
      case '=':
        if (next === '=') {
          push('eq', i, i + 2);
          i += 2;
        } else {
          push('invalid', i, i + 1);
          i += 1;
        }
        break;
      case '!':
        if (next === '=') {
          push('ne', i, i + 2);
          i += 2;
        } else {
          push('not', i, i + 1);
          i += 1;
        }
        break;
      case '&':
      case '|':
        if (next === ch) {
          push(ch === '&' ? 'and' : 'or', i, i + 2);
          i += 2;
        } else {
          push('invalid', i, i + 1);
          i += 1;
        }
        break;
      default: {
        if (isLabelChar(ch.charCodeAt(0))) {
          let end = i + 1;
          while (end < text.length && isLabelChar(text.charCodeAt(end))) end++;
          push('word', i, end, text.slice(i, end));
          i = end;
        } else {
          // One whole code point, so an astral character is reported intact.
          const width = text.codePointAt(i)! > 0xffff ? 2 : 1;
          push('invalid', i, i + width);
          i += width;
        }
      }
    }
  }
  push('eof', text.length, text.length);
  return tokens;
}

// ---------------------------------------------------------------------------
// Parser (recursive descent over the token list)

const OPERATOR_LIST = '==, !=, in, not in, contains, starts with or ends with';

class Parser {
  readonly #text: string;
  readonly #tokens: Token[];
  #at = 0;
  #depth = 0;

  constructor(text: string) {
    this.#text = text;
    this.#tokens = tokenize(text);
  }

  parseSelector(): SelectorNode {
    if (this.#peek().kind === 'eof') return { kind: 'all' };
    const node = this.#parseOr('');
    const tok = this.#peek();
    if (tok.kind !== 'eof') this.#fail(tok, 'expected &&, || or the end of the selector');
    return node;
  }

  #peek(offset = 0): Token {
    return this.#tokens[Math.min(this.#at + offset, this.#tokens.length - 1)]!;
  }

  #take(): Token {
    const tok = this.#peek();
    if (tok.kind !== 'eof') this.#at++;
    return tok;
  }

  /** `context` says what came before, for the message: "", " after &&", ... */
  #parseOr(context: string): SelectorNode {
    const operands = [this.#parseAnd(context)];
    while (this.#peek().kind === 'or') {
      this.#take();
      operands.push(this.#parseAnd(' after ||'));
    }
    return operands.length === 1 ? operands[0]! : { kind: 'or', operands };
  }

  #parseAnd(context: string): SelectorNode {
    const operands = [this.#parseUnary(context)];
    while (this.#peek().kind === 'and') {
      this.#take();
      operands.push(this.#parseUnary(' after &&'));
    }
    return operands.length === 1 ? operands[0]! : { kind: 'and', operands };
  }

  #parseUnary(context: string): SelectorNode {
    // Like Calico, a run of "!" collapses to its parity: "!!has(a)" is "has(a)".
    let negated = false;
    while (this.#peek().kind === 'not') {
      this.#take();
      negated = !negated;
      context = ' after !';
    }
    const operand = this.#parsePrimary(context);
    return negated ? { kind: 'not', operand } : operand;
  }

  #parsePrimary(context: string): SelectorNode {
    const tok = this.#peek();
    if (tok.kind === 'lparen') {
      this.#take();
      if (++this.#depth > MAX_NESTING_DEPTH) {
        this.#fail(tok, `parentheses are nested more than ${MAX_NESTING_DEPTH} deep`);
      }
      const inner = this.#parseOr(' after (');
      const close = this.#peek();
      if (close.kind !== 'rparen') {
        this.#fail(close, `expected &&, || or ) to close the ( at column ${tok.pos}`);
      }
      this.#take();
      this.#depth--;
      return inner;
    }
    if (tok.kind !== 'word') this.#fail(tok, `expected a label expression${context}`);

    // has(k), all(), global(): the name must touch its "(".
    const paren = this.#peek(1);
    if (paren.kind === 'lparen' && paren.pos === tok.end) {
      if (tok.value === 'has') {
        this.#take();
        this.#take();
        const label = this.#peek();
        if (label.kind !== 'word') this.#fail(label, 'expected a label name inside has(');
        this.#checkLabel(label);
        this.#take();
        this.#expectCloseParen(`to close has( at column ${tok.pos}`);
        return { kind: 'has', label: label.value };
      }
      if (tok.value === 'all' || tok.value === 'global') {
        this.#take();
        this.#take();
        this.#expectCloseParen(`after ${tok.value}(`);
        return { kind: tok.value };
      }
    }
    return this.#parseComparison();
  }

  #parseComparison(): SelectorNode {
    const labelTok = this.#take();
    this.#checkLabel(labelTok);
    const label = labelTok.value;
    const op = this.#peek();
    const expectedOp = `expected an operator (${OPERATOR_LIST}) after label ${JSON.stringify(label)}`;
    switch (op.kind) {
      case 'eq':
        this.#take();
        return { kind: 'eq', label, value: this.#expectString('after ==') };
      case 'ne':
        this.#take();
        return { kind: 'ne', label, value: this.#expectString('after !=') };
      case 'word':
        break;
      default:
        this.#fail(op, expectedOp);
    }
    switch (op.value) {
      case 'contains':
        this.#take();
        return { kind: 'contains', label, value: this.#expectString('after contains') };
      case 'startswith':
        this.#take();
        return { kind: 'startsWith', label, value: this.#expectString('after starts with') };
      case 'endswith':
        this.#take();
        return { kind: 'endsWith', label, value: this.#expectString('after ends with') };
      case 'starts':
      case 'ends': {
        this.#take();
        this.#expectWord('with', `after ${op.value}`);
        const kind = op.value === 'starts' ? 'startsWith' : 'endsWith';
        return { kind, label, value: this.#expectString(`after ${op.value} with`) };
      }
      case 'in':
        this.#take();
        return { kind: 'in', label, values: this.#parseSet('in') };
      case 'notin':
        this.#take();
        return { kind: 'notIn', label, values: this.#parseSet('not in') };
      case 'not':
        this.#take();
        this.#expectWord('in', 'after not');
        return { kind: 'notIn', label, values: this.#parseSet('not in') };
      default:
        return this.#fail(op, expectedOp);
    }
  }

  #parseSet(op: string): string[] {
    const open = this.#peek();
    if (open.kind !== 'lbrace') this.#fail(open, `expected { to start a set of quoted strings after ${op}`);
    this.#take();
    const values: string[] = [];
    let after = '{';
    for (;;) {
      const tok = this.#peek();
      if (tok.kind === 'rbrace') {
        this.#take();
        break;
      }
      if (tok.kind !== 'string') {
        this.#fail(tok, `expected a quoted string or } after ${after} in the set at column ${open.pos}`, true);
      }
      this.#take();
      values.push(tok.value);
      const sep = this.#peek();
      if (sep.kind === 'comma') {
        this.#take();
        after = ','; // a trailing comma before } is allowed, as in Calico
      } else if (sep.kind !== 'rbrace') {
        this.#fail(sep, `expected , or } after a value in the set at column ${open.pos}`);
      }
    }
    return sortedUnique(values);
  }

  #expectString(where: string): string {
    const tok = this.#peek();
    if (tok.kind !== 'string') this.#fail(tok, `expected a quoted string ${where}`, true);
    this.#take();
    return tok.value;
  }

  #expectWord(word: string, where: string): void {
    const tok = this.#peek();
    if (tok.kind !== 'word' || tok.value !== word) this.#fail(tok, `expected "${word}" ${where}`);
    this.#take();
  }

  #expectCloseParen(where: string): void {
    const tok = this.#peek();
    if (tok.kind !== 'rparen') this.#fail(tok, `expected ) ${where}`);
    this.#take();
  }

  #checkLabel(tok: Token): void {
    if (tok.value.length > MAX_LABEL_LENGTH) {
      this.#fail(tok, `label name is ${tok.value.length} characters long; at most ${MAX_LABEL_LENGTH} are allowed`);
    }
  }

  /**
   * Throw for `tok` not being what was expected. An unterminated string or a
   * stray character is reported as such wherever it turns up.
   */
  #fail(tok: Token, expected: string, stringWanted = false): never {
    let reason: string;
    if (tok.kind === 'unterminated') {
      const quote = tok.raw[0]!;
      reason = `unterminated string: the ${quote} here has no closing ${quote}`;
    } else if (tok.kind === 'eof') {
      reason = expected;
    } else if (tok.kind === 'word' && stringWanted) {
      reason = `${expected}, found unquoted ${JSON.stringify(tok.raw)} (values must be in ' or ")`;
    } else if (tok.kind === 'invalid') {
      const cp = tok.raw.codePointAt(0)!;
      const code = cp < 0x20 || cp > 0x7e ? ` (U+${cp.toString(16).toUpperCase().padStart(4, '0')})` : '';
      const hint = /^\s$/u.test(tok.raw) ? '; only spaces and tabs may separate tokens' : '';
      reason = `${expected}, found ${JSON.stringify(tok.raw)}${code}${hint}`;
    } else if (tok.kind === 'string') {
      reason = `${expected}, found string ${tok.raw}`;
    } else {
      reason = `${expected}, found ${JSON.stringify(tok.raw)}`;
    }
    throw new SelectorError(this.#text, tok.pos, reason);
  }
}

/** Compare by code point, which is the byte order Go uses for UTF-8 strings. */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.codePointAt(i)!;
    const cb = b.codePointAt(i)!;
    if (ca !== cb) return ca - cb;
    if (ca > 0xffff) i++;
  }
  return a.length - b.length;
}

function sortedUnique(values: string[]): string[] {
  const out: string[] = [];
  for (const v of [...values].sort(compareCodePoints)) {
    if (out.length === 0 || out[out.length - 1] !== v) out.push(v);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Evaluation and rendering

function labelValue(labels: Labels, key: string): string | undefined {
  return Object.hasOwn(labels, key) ? labels[key] : undefined;
}

function evaluate(node: SelectorNode, labels: Labels): boolean {
  switch (node.kind) {
    case 'all':
    case 'global':
      return true;
    case 'has':
      return Object.hasOwn(labels, node.label);
    case 'eq': {
      const v = labelValue(labels, node.label);
      return v !== undefined && v === node.value;
    }
    case 'ne': {
      const v = labelValue(labels, node.label);
      return v === undefined || v !== node.value;
    }
    case 'contains': {
      const v = labelValue(labels, node.label);
      return v !== undefined && v.includes(node.value);
    }
    case 'startsWith': {
      const v = labelValue(labels, node.label);
      return v !== undefined && v.startsWith(node.value);
    }
    case 'endsWith': {
      const v = labelValue(labels, node.label);
      return v !== undefined && v.endsWith(node.value);
    }
    case 'in': {
      const v = labelValue(labels, node.label);
      return v !== undefined && node.values.includes(v);
    }
    case 'notIn': {
      const v = labelValue(labels, node.label);
      return v === undefined || !node.values.includes(v);
    }
    case 'not':
      return !evaluate(node.operand, labels);
    case 'and':
      return node.operands.every((op) => evaluate(op, labels));
    case 'or':
      return node.operands.some((op) => evaluate(op, labels));
  }
}

/** Quote as Calico does: double quotes unless the value contains one. */
function quote(value: string): string {
  return value.includes('"') ? `'${value}'` : `"${value}"`;
}

function render(node: SelectorNode): string {
  switch (node.kind) {
    case 'all':
      return 'all()';
    case 'global':
      return 'global()';
    case 'has':
      return `has(${node.label})`;
    case 'eq':
      return `${node.label} == ${quote(node.value)}`;
    case 'ne':
      return `${node.label} != ${quote(node.value)}`;
    case 'contains':
      return `${node.label} contains ${quote(node.value)}`;
    case 'startsWith':
      return `${node.label} starts with ${quote(node.value)}`;
    case 'endsWith':
      return `${node.label} ends with ${quote(node.value)}`;
    case 'in':
      return `${node.label} in {${node.values.map(quote).join(', ')}}`;
    case 'notIn':
      return `${node.label} not in {${node.values.map(quote).join(', ')}}`;
    case 'not':
      return `!${render(node.operand)}`;
    case 'and':
      return `(${node.operands.map(render).join(' && ')})`;
    case 'or':
      return `(${node.operands.map(render).join(' || ')})`;
  }
}

function containsGlobal(node: SelectorNode): boolean {
  switch (node.kind) {
    case 'global':
      return true;
    case 'not':
      return containsGlobal(node.operand);
    case 'and':
    case 'or':
      return node.operands.some(containsGlobal);
    default:
      return false;
  }
}
