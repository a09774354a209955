/**
 * What a report puts in a CSV cell: text, a number, a flag, nothing (null /
 * undefined: an empty cell) or a list (joined with `;`).
 */
export type CsvValue = string | number | boolean | null | undefined | readonly (string | number)[];

/**
 * RFC 4180 CSV, safe to open in a spreadsheet (OWASP CSV injection): a hostile
 * value (a pod label, a policy name) must not run as a formula in the reader's
 * sheet. A spreadsheet starts a formula at = + - @ (and their full-width forms),
 * also after leading spaces, and a cell may be split again on `;` or `,` (the
 * list separator in many locales, and how lists are joined here) or on tab/CR/LF.
 * So every such piece that starts like a formula gets a leading quote, and a
 * cell that starts with tab or CR gets one too. Plain numbers ("-5", "-1.5")
 * stay as they are: they are values, not formulas, and a report needs them.
 * Takes any value, not only a CsvValue: archived runs are read back from the
 * store as JSON of whatever version wrote them.
 */
export function csvCell(value: unknown): string {
  const text = value === null || value === undefined ? '' : Array.isArray(value) ? value.join(';') : String(value);
  const safe = defuseFormulas(text);
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** Characters a spreadsheet may split a cell on, or start a new row at. */
const PIECE_SEPARATOR = /([,;\t\r\n])/;
/** A formula start, ASCII or full-width (＝ ＋ － ＠). */
const FORMULA_START = /^\s*[=+\-@\uFF1D\uFF0B\uFF0D\uFF20]/;
const PLAIN_NUMBER = /^\s*-?\d+(\.\d+)?\s*$/;

function defuseFormulas(text: string): string {
  // split() with a capturing group keeps the separators at the odd indexes.
  const pieces = text
    .split(PIECE_SEPARATOR)
    .map((piece, i) => (i % 2 === 0 && FORMULA_START.test(piece) && !PLAIN_NUMBER.test(piece) ? `'${piece}` : piece));
  const joined = pieces.join('');
  return /^[\t\r]/.test(joined) ? `'${joined}` : joined;
}

/** Rows to CSV text with CRLF line ends (RFC 4180), header first. */
export function toCsv(header: readonly string[], rows: readonly (readonly unknown[])[]): string {
  return [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}
