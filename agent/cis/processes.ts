import { posix } from 'node:path';
import type { HostView } from './host.js';

/** A process on the node, as /proc shows it. */
export interface NodeProcess {
  pid: number;
  /** /proc/PID/comm (the kernel's 15-character name). */
  comm: string;
  /** /proc/PID/cmdline split on NUL. */
  argv: string[];
}

/** Every process of the node whose cmdline can be read, in pid order. */
export function listProcesses(host: HostView): NodeProcess[] {
  const out: NodeProcess[] = [];
  for (const name of host.list('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmd = host.readText(`/proc/${name}/cmdline`);
    if (cmd.kind !== 'found' || cmd.text.length === 0) continue; // kernel threads have none
    const comm = host.readText(`/proc/${name}/comm`);
    out.push({
      pid: Number(name),
      comm: comm.kind === 'found' ? comm.text.trim() : '',
      argv: cmd.text.replace(/\0+$/, '').split('\0'),
    });
  }
  return out.sort((a, b) => a.pid - b.pid);
}

/** The first process whose program name (argv[0] basename or comm) is `name`. */
export function findProcess(processes: NodeProcess[], name: string): NodeProcess | undefined {
  return processes.find((p) => posix.basename(p.argv[0] ?? '') === name || p.comm === name);
}

/**
 * Flags of a Go (pflag) command line: `--a=b`, `--a b`, and `--a` alone for
 * boolean flags. pflag never lets a boolean flag take the next word as its value
 * (`--x false` sets x and leaves `false` as an argument), so the caller names its
 * boolean flags. A repeated flag keeps the last value, as pflag does for scalars.
 */
export function parseFlags(args: string[], booleanFlags: ReadonlySet<string> = new Set()): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!arg.startsWith('-') || arg === '-' || arg === '--') continue;
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    if (eq >= 0) {
      flags.set(body.slice(0, eq), body.slice(eq + 1));
    } else if (booleanFlags.has(body)) {
      flags.set(body, 'true');
    } else {
      const next = args[i + 1];
      if (next !== undefined && !next.startsWith('-')) {
        flags.set(body, next);
        i++;
      } else {
        flags.set(body, 'true');
      }
    }
  }
  return flags;
}
