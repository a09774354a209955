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
