import { VerdictError } from '../common/errors.js';

export { VerdictError, errorCode, errorDetail, hasCode } from '../common/errors.js';

/**
 * The stable error codes verdict-agent raises, as VerdictError codes (common/errors.ts). Callers branch on `code`; the
 * detail says what to do next. A CLI exits 2 for VERDICT_USAGE and VERDICT_CONFIG_INVALID, 1 for the others.
 */
export const AGENT_ERROR_CODES = {
  /** A flag or argument the agent cannot use: its detail names the flag and what it takes. */
  USAGE: 'VERDICT_USAGE',
  /** A setting that parses but cannot be used (a CIDR that is not one, an unreadable TLS file). */
  CONFIG_INVALID: 'VERDICT_CONFIG_INVALID',
  /** No bundled benchmark has the id --benchmark names (raised by agent/cis/index.ts). */
  BENCHMARK_UNKNOWN: 'VERDICT_BENCHMARK_UNKNOWN',
  /** A benchmark file does not match the schema (agent/cis/schema.ts's BenchmarkInvalidError). */
  BENCHMARK_INVALID: 'VERDICT_BENCHMARK_INVALID',
  /** No benchmark definitions were found next to the program. */
  BENCHMARK_NONE: 'VERDICT_BENCHMARK_NONE',
  /** The spool's state no longer fits in its fixed-size slot. */
  SPOOL_STATE_TOO_LARGE: 'VERDICT_SPOOL_STATE_TOO_LARGE',
} as const;

export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[keyof typeof AGENT_ERROR_CODES];

/** A VerdictError with one of the agent's codes. */
export const agentError = (code: AgentErrorCode, detail: string, options?: { cause?: unknown }) =>
  new VerdictError(code, detail, options);

/** VERDICT_USAGE: a flag or argument the agent cannot use. */
export const usageError = (detail: string, options?: { cause?: unknown }) =>
  new VerdictError(AGENT_ERROR_CODES.USAGE, detail, options);

/** VERDICT_CONFIG_INVALID: a setting that parses but cannot be used. */
export const configError = (detail: string, options?: { cause?: unknown }) =>
  new VerdictError(AGENT_ERROR_CODES.CONFIG_INVALID, detail, options);
