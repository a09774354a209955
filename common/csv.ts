/**
 * RFC 4180 CSV, safe to open in a spreadsheet: a cell that starts like a
 * formula (=, +, -, @, tab, CR) gets a leading quote, so a hostile value (a pod
 * label, a policy name) cannot run in the reader's sheet (OWASP CSV injection).
 */
export function csvCell(value: unknown): string {
  const text = value === null || value === undefined ? '' : Array.isArray(value) ? value.join(';') : String(value);
  const safe = /^[=+\-@\t\r]/.test(text) && !/^-?\d+(\.\d+)?$/.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** Rows to CSV text with CRLF line ends (RFC 4180), header first. */
export function toCsv(header: readonly string[], rows: readonly (readonly unknown[])[]): string {
  return [header, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}
