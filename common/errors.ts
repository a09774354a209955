/**
 * The one error type of Verdict's programs: a stable `code` callers branch on
 * (as fastify's FST_ERR_* and undici's UND_ERR_*), a `detail` that tells the
 * user what to do next, and the `cause` it wraps. `message` is "CODE: detail",
 * the line a CLI prints, so logs and old callers that read messages see the code.
 *
 * The codes each program raises are listed in its errors file
 * (agent/errors.ts, aggregator/errors.ts); this file is only the shape.
 */
export class VerdictError extends Error {
  override readonly name: string = 'VerdictError';

  constructor(
    readonly code: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${detail}`, options);
  }
}

/** The code of an error: VerdictError's, or a Node.js / library error's `code` string; '' when none. */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : '';
}

/** The detail of an error without its code prefix, for wrapping it in another error's detail. */
export function errorDetail(err: unknown): string {
  if (err instanceof VerdictError) return err.detail;
  return err instanceof Error ? err.message : String(err);
}

/** Whether `err` is a VerdictError with one of the codes. */
export function hasCode(err: unknown, ...codes: string[]): err is VerdictError {
  return err instanceof VerdictError && codes.includes(err.code);
}
