import { pino, type Logger } from 'pino';

/**
 * The logger of a Verdict process: JSON lines on stdout, written synchronously. pino's default stdout stream buffers
 * in memory while an earlier write is in flight, and a process that then dies abruptly (V8 aborting out of heap, the
 * kubelet's SIGKILL) takes those lines with it — the very lines that explain the death, such as "report run lost
 * with the process running it; queued once more" right before the same run kills the process again. Both programs
 * log a few lines per minute at info, so a write(2) per line costs nothing that matters.
 */
export function processLogger(program: string, level: string, base: Record<string, string> = {}): Logger {
  return pino({ level, base: { program, ...base } }, pino.destination({ dest: 1, sync: true }));
}
