import { stringify as toYaml } from 'yaml';
import type { CsvValue } from '../../common/csv.js';

/** A CSV file of a run: its columns and rows (common/csv.ts writes it). */
export interface ReportFile {
  header: string[];
  rows: CsvValue[][];
}

/** One CSV column: its header and how a row's cell is read from the item the row is about. */
export type Column<T> = readonly [header: string, cell: (item: T) => CsvValue];

/** A file with one row per item, each column's header next to how its cell is read. */
export function csvFile<T>(items: readonly T[], columns: readonly Column<T>[]): ReportFile {
  return {
    header: columns.map(([header]) => header),
    rows: items.map((item) => columns.map(([, cell]) => cell(item))),
  };
}

/** The fields of T whose values can be a cell. */
type CellKeys<T> = { [K in keyof T]: T[K] extends CsvValue ? K : never }[keyof T] & string;

/** A file whose headers are field names of the items, in the given order, and whose cells are those fields. */
export function fieldsFile<T>(items: readonly T[], fields: readonly CellKeys<T>[]): ReportFile {
  return csvFile(
    items,
    fields.map((f): Column<T> => [f, (item) => item[f] as CsvValue]),
  );
}

/** summary.csv: one row, the summary's fields in their order, named as they are. */
export function summaryFile<T extends { [K in keyof T]: CsvValue }>(summary: T): ReportFile {
  return { header: Object.keys(summary), rows: [Object.values(summary) as CsvValue[]] };
}

/** A time as Go's time.RFC3339 prints it in UTC (Calico's dateRfc3339): seconds, no fraction, "Z". */
export function rfc3339(iso: string): string {
  return new Date(iso).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The names a run's documents download as: <base>.json and <base>.yaml each. */
export function documentFileNames(documents: Record<string, unknown> | undefined): string[] {
  return Object.keys(documents ?? {}).flatMap((base) => [`${base}.json`, `${base}.yaml`]);
}

/**
 * One of a run's documents as a download (Calico's events.json is `toJson`, events.yaml `toYaml`, of the same
 * events), or undefined when the run has no such file.
 */
export function documentFile(
  documents: Record<string, unknown> | undefined,
  file: string,
): { contentType: string; body: string } | undefined {
  const m = /^([a-z-]+)\.(json|yaml)$/.exec(file);
  if (!m || !documents || !Object.hasOwn(documents, m[1] as string)) return undefined;
  const doc = documents[m[1] as string];
  return m[2] === 'json'
    ? { contentType: 'application/json; charset=utf-8', body: JSON.stringify(doc, null, 2) + '\n' }
    : { contentType: 'application/yaml; charset=utf-8', body: toYaml(doc, { aliasDuplicateObjects: false }) };
}
