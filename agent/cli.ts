#!/usr/bin/env node
import { realpathSync, statSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { cliFailure, oneLine } from '../common/cli-failure.js';
import { VERDICT_VERSION } from '../common/version.js';
import { bundledBenchmarkIndex } from './cis/benchmark-index.js';
import { formatReport, table, tableStyle, type ReportFormat } from './cis/format.js';
import { scanNode } from './cis/index.js';
import { AGENT_DEFAULTS } from './defaults.js';
import { AGENT_ERROR_CODES, errorCode, errorDetail, usageError, VerdictError } from './errors.js';
import { flag, parseArgsOptions, parseFlagValues, usageLines, type FlagTable } from './flag-table.js';
import { SCAN_FLAGS, SCAN_OPTIONS, scanFlags } from './scan-flags.js';

// The scan flags live in scan-flags.ts so that run.ts, which cli.ts loads for
// 'run', can share them without importing cli.ts back; they stay exported here
// for code that has always found them on the CLI.
export { SCAN_FLAGS, SCAN_OPTIONS, scanFlags, type ScanFlags } from './scan-flags.js';

const REPORT_FORMATS = ['table', 'json', 'csv', 'junit', 'sarif'] as const;
const BENCHMARKS_FORMATS = ['table', 'json'] as const;

function formatOf(v: string): ReportFormat {
  if (!(REPORT_FORMATS as readonly string[]).includes(v))
    throw usageError(`--format must be table, json, csv, junit or sarif, not "${v}"`);
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
  format: { type: 'string', default: AGENT_DEFAULTS.scan.benchmarksFormat, arg: BENCHMARKS_FORMATS.join('|'), help: 'how the list is printed', parse: flag.oneOf(BENCHMARKS_FORMATS) },
} as const satisfies FlagTable;

const TITLE = 'verdict-agent: CIS Kubernetes Benchmark checks and flow verdicts for one node';
const SCAN_SYNOPSIS = '  verdict-agent scan --host-root DIR [what to scan] [scan options]';
const RUN_SYNOPSIS = '  verdict-agent run  --aggregator HOST:PORT [what to scan] [run options]';
const BENCHMARKS_SYNOPSIS = `  verdict-agent benchmarks [--format ${BENCHMARKS_FORMATS.join('|')}]`;
const COMMON_LINES = ['  --help, -h     print this help and exit', '  --version, -V  print the version and exit'];

/** The usage text, generated from the flag tables (run's is loaded with run.ts); a subcommand's own when named. */
async function usage(command?: 'scan' | 'run' | 'benchmarks'): Promise<string> {
  const { RUN_FLAGS } = await import('./run.js');
  const scan = ['What to scan (scan and run):', ...usageLines(SCAN_FLAGS), ''];
  const sections = {
    scan: [...scan, 'scan options:', ...usageLines(SCAN_COMMAND_FLAGS), ''],
    run: [...scan, 'run options:', ...usageLines(RUN_FLAGS), ''],
    benchmarks: ['benchmarks options:', ...usageLines(BENCHMARKS_FLAGS), ''],
  };
  const synopsis = { scan: SCAN_SYNOPSIS, run: RUN_SYNOPSIS, benchmarks: BENCHMARKS_SYNOPSIS };
  if (command)
    return [
      TITLE,
      '',
      'Usage:',
      synopsis[command],
      '',
      ...sections[command],
      'Options of every command:',
      ...COMMON_LINES,
      '',
    ].join('\n');
  return [
    TITLE,
    '',
    'Usage:',
    SCAN_SYNOPSIS,
    RUN_SYNOPSIS,
    BENCHMARKS_SYNOPSIS,
    '  verdict-agent --version',
    '',
    ...scan,
    'scan options:',
    ...usageLines(SCAN_COMMAND_FLAGS),
    '',
    'run options:',
    ...usageLines(RUN_FLAGS),
    '',
    'benchmarks options:',
    ...usageLines(BENCHMARKS_FLAGS),
    '',
    'Options of every command:',
    ...COMMON_LINES,
    '',
  ].join('\n');
}

/** --help/-h or --version/-V among a command's arguments (before a "--"): they win over every other flag. */
function helpOrVersion(args: string[]): 'help' | 'version' | undefined {
  for (const a of args) {
    if (a === '--') return undefined;
    if (a === '--help' || a === '-h') return 'help';
    if (a === '--version' || a === '-V') return 'version';
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const subcommand = command === 'scan' || command === 'run' || command === 'benchmarks' ? command : undefined;
  const asked = helpOrVersion(subcommand ? rest : argv.slice(0, 1));
  if (asked === 'version' || command === 'version') {
    process.stdout.write(`verdict-agent ${VERDICT_VERSION}\n`);
    return 0;
  }
  if (asked === 'help') {
    process.stdout.write(await usage(subcommand));
    return 0;
  }
  switch (command) {
    case 'scan':
      return scanCommand(rest);
    case 'run': {
      current = 'run';
      const { runCommand } = await import('./run.js');
      return runCommand(rest);
    }
    case 'benchmarks':
      return benchmarksCommand(rest);
    case undefined:
    case 'help':
      process.stdout.write(await usage());
      return command === undefined ? 2 : 0;
    default:
      throw usageError(`unknown command "${command}"; run 'verdict-agent --help'`);
  }
}

/** The command whose arguments are being read, for "run 'verdict-agent scan --help'" in argument errors. */
let current = '';

function scanCommand(args: string[]): number {
  current = 'scan';
  const { values } = parseArgs({
    args,
    options: { ...SCAN_OPTIONS, ...parseArgsOptions(SCAN_COMMAND_FLAGS) },
    strict: true,
  });
  // scan names the node after the root it scans (scanNode finds it there), never after $NODE_NAME or this machine.
  const flags = { ...scanFlags(values), nodeName: values['node-name'] as string | undefined };
  const { format, 'exit-code': exitCode } = parseFlagValues(SCAN_COMMAND_FLAGS, values);
  const root = statSync(flags.hostRoot, { throwIfNoEntry: false });
  if (!root?.isDirectory())
    throw usageError(`--host-root ${flags.hostRoot} ${root ? 'is not a directory' : 'does not exist'}`);
  const { report, notes, warnings, kubelet, sectionTitles } = scanNode(flags);
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  if (!kubelet.found) {
    process.stderr.write(`verdict-agent: ${kubelet.why}; not a Kubernetes node, nothing to assess\n`);
    return 2;
  }
  if (format === 'table') for (const n of notes) process.stderr.write(`note: ${n}\n`);
  process.stdout.write(formatReport(report, format, tableStyle(process.stdout, process.env), sectionTitles));
  return exitCode && report.checks.some((c) => c.status === 'FAIL' && c.scored) ? 1 : 0;
}

function benchmarksCommand(args: string[]): number {
  current = 'benchmarks';
  const { values: raw } = parseArgs({ args, options: parseArgsOptions(BENCHMARKS_FLAGS), strict: true });
  const values = parseFlagValues(BENCHMARKS_FLAGS, raw);
  const list = bundledBenchmarkIndex().map((b) => ({
    id: b.id,
    version: b.version,
    kubernetesVersions: b.kubernetesVersions,
    checks: b.checks,
    automated: b.automated,
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
  if (code.startsWith('ERR_PARSE_ARGS_'))
    return {
      line: `${AGENT_ERROR_CODES.USAGE}: ${oneLine(errorDetail(err))}; run 'verdict-agent ${current ? `${current} ` : ''}--help' for the options`,
      exitCode: 2,
    };
  if (code === AGENT_ERROR_CODES.USAGE || code === AGENT_ERROR_CODES.CONFIG_INVALID)
    return { line: `${code}: ${oneLine(errorDetail(err))}`, exitCode: 2 };
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
