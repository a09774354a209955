import { pino, type Logger } from 'pino';

/**
 * The logger of a Verdict process: JSON lines on stdout through `process.stdout`, whose libuv stream writes each
 * line to the pipe at once and queues in memory only what the pipe cannot take yet. pino's default stream (sonic-boom
 * on fd 1, asynchronous) holds lines back while an earlier write is in flight in the thread pool, and a process that
 * then dies abruptly (V8 aborting out of heap, the kubelet's SIGKILL) takes them along: the very lines that explain
 * the death, such as "report run lost with the process running it; queued once more" right before the same run
 * kills the process again. sonic-boom's synchronous mode keeps them but sleeps 100 ms at a time whenever the reader
 * of the pipe lags (seconds of a blocked event loop for a burst of 5,000 agents' lines to a slow reader).
 */
export function processLogger(program: string, level: string, base: Record<string, string> = {}): Logger {
  // The reader of the pipe gone (EPIPE) is no reason to die: there is no one left to tell. Anything else is.
  if (!process.stdout.listeners('error').includes(ignoreBrokenPipe)) process.stdout.on('error', ignoreBrokenPipe);
  return pino({ level, base: { program, ...base } }, process.stdout);
}

function ignoreBrokenPipe(err: NodeJS.ErrnoException): void {
  if (err.code !== 'EPIPE') throw err;
}
