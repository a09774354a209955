/**
 * What a command-line program prints and exits with when its main function
 * fails: one line, never a stack trace for anything the user can act on.
 * Bad arguments exit 2 (as parseArgs' own errors and VERDICT_USAGE /
 * VERDICT_CONFIG_INVALID say); a port already taken names the address and the
 * flag to change; other coded errors (VERDICT_...) print their message; only
 * a bug (an uncoded error) shows its stack, marked VERDICT_INTERNAL.
 */
export function cliFailure(err: unknown, portFlags: string): { line: string; exitCode: number } {
  const e = err as { code?: unknown; message?: unknown; stack?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (code.startsWith('ERR_PARSE_ARGS_'))
    return { line: `VERDICT_USAGE: ${message}; run with --help for the options`, exitCode: 2 };
  if (/^VERDICT_(USAGE|CONFIG_INVALID): /.test(message)) return { line: message, exitCode: 2 };
  if (code === 'VERDICT_USAGE' || code === 'VERDICT_CONFIG_INVALID')
    return { line: `${code}: ${message.replace(/^VERDICT_[A-Z_]+: /, '')}`, exitCode: 2 };
  // Node's listen error, or grpc-js's wrapping of it ("No address added ... errors: [listen EADDRINUSE: ...
  // 127.0.0.1:9090]").
  const inUse = /EADDRINUSE[^\d[]*(\S+:\d+)/.exec(message);
  if (code === 'EADDRINUSE' || inUse)
    return {
      line: `VERDICT_ADDRESS_IN_USE: ${inUse?.[1] ?? 'the address'} is already in use by another process; stop it or choose another with ${portFlags}`,
      exitCode: 1,
    };
  const denied = /EACCES[^\d[]*(\S+:\d+)/.exec(message);
  if (denied)
    return {
      line: `VERDICT_ADDRESS_DENIED: may not listen on ${denied[1]} (ports below 1024 need privileges); choose another with ${portFlags}`,
      exitCode: 1,
    };
  if (/^[A-Z][A-Z0-9_]+: /.test(message)) return { line: message, exitCode: 1 };
  return { line: `VERDICT_INTERNAL: ${typeof e?.stack === 'string' ? e.stack : message}`, exitCode: 1 };
}
