import { errorCode, errorDetail, VerdictError } from './errors.js';

/** Codes this file gives a failure of its own (the programs' errors files list the rest). */
const USAGE = 'VERDICT_USAGE';
const CONFIG_INVALID = 'VERDICT_CONFIG_INVALID';
const ADDRESS_IN_USE = 'VERDICT_ADDRESS_IN_USE';
const ADDRESS_DENIED = 'VERDICT_ADDRESS_DENIED';
const INTERNAL = 'VERDICT_INTERNAL';

/**
 * A message as one line: parseArgs explains a value that starts with a dash ("--max-spool-bytes -5") in three.
 */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ');
}

/**
 * A failure to listen on `address` as the error the user can act on: VERDICT_ADDRESS_IN_USE or
 * VERDICT_ADDRESS_DENIED, else `err` itself. Node's listen errors carry their code; grpc-js wraps them in an
 * uncoded error ("No address added out of total 1 resolved errors: [listen EADDRINUSE: ...]"), so for it alone
 * the code is read from the text.
 */
export function listenFailure(err: unknown, address: string): unknown {
  const code = errorCode(err) || /\blisten (EADDRINUSE|EACCES)\b/.exec(errorDetail(err))?.[1];
  if (code === 'EADDRINUSE')
    return new VerdictError(ADDRESS_IN_USE, `${address} is already in use by another process`, { cause: err });
  if (code === 'EACCES')
    return new VerdictError(ADDRESS_DENIED, `may not listen on ${address} (ports below 1024 need privileges)`, {
      cause: err,
    });
  return err;
}

/** Node's system errors name where they failed to listen. */
function systemAddress(err: unknown): string {
  const { address, port } = err as { address?: unknown; port?: unknown };
  return typeof address === 'string' && typeof port === 'number' ? `${address}:${port}` : 'the address';
}

/**
 * What a command-line program prints and exits with when its main function fails: one line, never a stack trace
 * for anything the user can act on. It branches on the error's code only: bad arguments (parseArgs' ERR_PARSE_ARGS_*,
 * VERDICT_USAGE, VERDICT_CONFIG_INVALID) exit 2; an address that cannot be listened on names it and `portFlags`, the
 * flags to change; other coded errors (VERDICT_..., and system errors such as ENOENT whose message starts with
 * their code) print "CODE: detail"; only a bug shows its stack, marked VERDICT_INTERNAL. Shared by verdict-agent
 * and verdict-aggregator.
 */
export function cliFailure(err: unknown, portFlags: string): { line: string; exitCode: number } {
  const code = errorCode(err);
  const detail = oneLine(errorDetail(err));
  if (code.startsWith('ERR_PARSE_ARGS_'))
    return { line: `${USAGE}: ${detail}; run with --help for the options`, exitCode: 2 };
  if (code === USAGE || code === CONFIG_INVALID) return { line: `${code}: ${detail}`, exitCode: 2 };
  if (code === 'EADDRINUSE' || code === 'EACCES') return cliFailure(listenFailure(err, systemAddress(err)), portFlags);
  if (code === ADDRESS_IN_USE)
    return { line: `${code}: ${detail}; stop it or choose another with ${portFlags}`, exitCode: 1 };
  if (code === ADDRESS_DENIED) return { line: `${code}: ${detail}; choose another with ${portFlags}`, exitCode: 1 };
  if (code.startsWith('VERDICT_')) return { line: `${code}: ${detail}`, exitCode: 1 };
  // A system error that says what failed ("ENOENT: no such file or directory, open '...'") is one line too.
  const message = errorDetail(err);
  if (code && message.startsWith(`${code}: `)) return { line: message, exitCode: 1 };
  const stack = (err as { stack?: unknown } | undefined)?.stack;
  return { line: `${INTERNAL}: ${typeof stack === 'string' ? stack : detail}`, exitCode: 1 };
}
