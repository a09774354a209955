#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { cliFailure } from '../common/cli-failure.js';
import { loadBenchmarks } from './cis/benchmarks.js';
import { formatReport, table, type ReportFormat } from './cis/format.js';
import { scanNode } from './cis/index.js';
import { AGENT_DEFAULTS } from './defaults.js';
import { AGENT_ERROR_CODES, errorCode, errorDetail, usageError, VerdictError } from './errors.js';
import { parseArgsOptions, parseFlagValues, usageLines, type FlagTable } from './flag-table.js';
import { SCAN_FLAGS, SCAN_OPTIONS, scanFlags } from './scan-flags.js';

// The scan flags live in scan-flags.ts so that run.ts, which cli.ts loads for
// 'run', can share them without importing cli.ts back; they stay exported here
// for code that has always found them on the CLI.
export { SCAN_FLAGS, SCAN_OPTIONS, scanFlags, type ScanFlags } from './scan-flags.js';

const REPORT_FORMATS = ['table', 'json', 'csv', 'junit'] as const;

function formatOf(v: string): ReportFormat {
  if (!(REPORT_FORMATS as readonly string[]).includes(v))
    throw usageError(`--format must be table, json, csv or junit, not "${v}"`);
  return v as ReportFormat;
}

/** `scan`'s own flags (what to scan is SCAN_FLAGS). */
// prettier-ignore
export const SCAN_COMMAND_FLAGS = {
  format: { type: 'string', default: AGENT_DEFAULTS.scan.format, arg: REPORT_FORMATS.join('|'), help: 'how the report is printed', parse: formatOf },
  'exit-code': { type: 'boolean', default: false, help: 'exit 1 when a scored check fails (for CI pipelines)' },
} as const satisfies FlagTable;

/** `benchmarks`' flags. */
// prettier-ignore
export const BENCHMARKS_FLAGS = {
  format: { type: 'string', default: AGENT_DEFAULTS.scan.benchmarksFormat, arg: 'table|json', help: 'how the list is printed' },
} as const satisfies FlagTable;

/** The usage text, generated from the flag tables (run's is loaded with run.ts). */
async function usage(): Promise<string> {
  const { RUN_FLAGS } = await import('./run.js');
  return [
    'verdict-agent: CIS Kubernetes Benchmark checks and flow verdicts for one node',
    '',
    'Usage:',
    '  verdict-agent scan --host-root DIR [what to scan] [scan options]',
    '  verdict-agent run  --aggregator HOST:PORT [what to scan] [run options]',
    '  verdict-agent benchmarks [--format table|json]',
    '',
    'What to scan (scan and run):',
    ...usageLines(SCAN_FLAGS),
    '',
    'scan options:',
    ...usageLines(SCAN_COMMAND_FLAGS),
    '',
    'run options:',
    ...usageLines(RUN_FLAGS),
    '',
    'benchmarks options:',
    ...usageLines(BENCHMARKS_FLAGS),
    '',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'scan':
      return scanCommand(rest);
    case 'run': {
      const { runCommand } = await import('./run.js');
      return runCommand(rest);
    }
    case 'benchmarks':
      return benchmarksCommand(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(await usage());
      return command === undefined ? 2 : 0;
    default:
      throw usageError(`unknown command "${command}"; run 'verdict-agent --help'`);
  }
}

function scanCommand(args: string[]): number {
  const { values } = parseArgs({
    args,
    options: { ...SCAN_OPTIONS, ...parseArgsOptions(SCAN_COMMAND_FLAGS) },
    strict: true,
  });
  const flags = scanFlags(values);
  const { format, 'exit-code': exitCode } = parseFlagValues(SCAN_COMMAND_FLAGS, values);
  const { report, notes } = scanNode(flags);
  if (format === 'table') for (const n of notes) process.stderr.write(`note: ${n}\n`);
  process.stdout.write(formatReport(report, format));
  return exitCode && report.checks.some((c) => c.status === 'FAIL' && c.scored) ? 1 : 0;
}

function benchmarksCommand(args: string[]): number {
  const { values } = parseArgs({ args, options: parseArgsOptions(BENCHMARKS_FLAGS), strict: true });
  const list = loadBenchmarks().map((b) => ({
    id: b.id,
    version: b.version,
    kubernetesVersions: b.kubernetesVersions,
    checks: b.checks.length,
    automated: b.checks.filter((c) => c.automated).length,
  }));
  if (values.format === 'json') {
    process.stdout.write(JSON.stringify({ items: list }, null, 2) + '\n');
  } else {
    const rows = list.map((b) => [
      b.id,
      b.version,
      b.kubernetesVersions.join(', '),
      String(b.checks),
      String(b.automated),
    ]);
    process.stdout.write(table(['ID', 'VERSION', 'KUBERNETES', 'CHECKS', 'AUTOMATED'], rows).join('\n') + '\n');
  }
  return 0;
}

/**
 * The line printed and the exit status when main fails, by the error's code: usage and configuration errors exit 2,
 * other VerdictErrors print their code and detail and exit 1; parseArgs' own errors, listen errors and bugs (uncoded
 * errors, with their stack) are common/cli-failure.ts's.
 */
export function agentFailure(err: unknown): { line: string; exitCode: number } {
  const code = errorCode(err);
  if (code === AGENT_ERROR_CODES.USAGE || code === AGENT_ERROR_CODES.CONFIG_INVALID)
    return { line: `${code}: ${errorDetail(err)}`, exitCode: 2 };
  if (err instanceof VerdictError) return { line: `${code}: ${err.detail}`, exitCode: 1 };
  return cliFailure(err, '--aggregator');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      const { line, exitCode } = agentFailure(err);
      process.stderr.write(`verdict-agent: ${line}\n`);
      process.exitCode = exitCode;
    },
  );
}
