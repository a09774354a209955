import { VerdictError } from '../common/errors.js';

/**
 * The codes verdict-aggregator raises as VerdictError (common/errors.ts), by
 * what the user does next. Callers branch on `code` (errorCode / hasCode),
 * never on messages; aggregator/cli.ts turns them into one line and an exit
 * code (common/cli-failure.ts). HTTP and ingest answer with their own codes
 * (VERDICT_BAD_REQUEST, VERDICT_INGEST_*: aggregator/http, aggregator/ingest).
 */
export const AGGREGATOR_ERRORS = {
  /** The command line cannot be parsed (exit 2). */
  usage: 'VERDICT_USAGE',
  /** A flag's value or a file it names is unusable (exit 2). */
  configInvalid: 'VERDICT_CONFIG_INVALID',
  /** --http or --grpc names an address another process holds. */
  addressInUse: 'VERDICT_ADDRESS_IN_USE',
  /** --http or --grpc names an address this process may not listen on. */
  addressDenied: 'VERDICT_ADDRESS_DENIED',
  /** The Kubernetes API server refused or could not be reached (common/kube-client.ts's KubeApiError). */
  kubeApi: 'VERDICT_KUBE_API',
  /** The store (--db) cannot be opened or does not answer. */
  storeUnavailable: 'VERDICT_STORE_UNAVAILABLE',
  /** The store holds a value the aggregator cannot read exactly (a PostgreSQL integer beyond 2^53). */
  storeCorrupt: 'VERDICT_STORE_CORRUPT',
  /** A store migration failed; the store is left at the version before it. */
  storeMigrationFailed: 'VERDICT_STORE_MIGRATION_FAILED',
  /** A report type needs the cluster and the aggregator runs without one (aggregator/reports/report-type.ts). */
  reportUnsupported: 'VERDICT_REPORT_UNSUPPORTED',
  /** A report's label selector does not parse (aggregator/reports/selector.ts's SelectorError). */
  selectorInvalid: 'VERDICT_SELECTOR_INVALID',
  /** A bug: anything uncoded. */
  internal: 'VERDICT_INTERNAL',
} as const;

export type AggregatorErrorCode = (typeof AGGREGATOR_ERRORS)[keyof typeof AGGREGATOR_ERRORS];

/** A VerdictError with one of the aggregator's codes. */
export function aggregatorError(
  code: AggregatorErrorCode,
  detail: string,
  options?: { cause?: unknown },
): VerdictError {
  return new VerdictError(code, detail, options);
}

/** A bad flag value or a file a flag names: exit 2, one line. */
export const configError = (detail: string, options?: { cause?: unknown }) =>
  aggregatorError(AGGREGATOR_ERRORS.configInvalid, detail, options);
