#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { cliFailure } from '../common/cli-failure.js';
import { parseArgs } from 'node:util';
import { formatReport, table, type ReportFormat } from './cis/format.js';
import { loadBenchmarks } from './cis/benchmarks.js';
import { scanNode } from './cis/index.js';
import { AgentError, usageError } from './errors.js';
import { SCAN_OPTIONS, scanFlags } from './scan-flags.js';

// The scan flags live in scan-flags.ts so that run.ts, which cli.ts loads for
// 'run', can share them without importing cli.ts back; they stay exported here
// for code that has always found them on the CLI.
export { SCAN_OPTIONS, scanFlags, type ScanFlags } from './scan-flags.js';

const USAGE = `verdict-agent: CIS Kubernetes Benchmark checks and flow verdicts for one node

Usage:
  verdict-agent scan --host-root DIR [--benchmark cis-1.12|auto] [--node-name NAME]
                     [--role worker|control-plane|auto] [--level 1|2]
                     [--exclude 4.2.6,4.2.7] [--format table|json|csv|junit] [--exit-code]
                     [--kubernetes-version v1.32.4]
  verdict-agent run  --aggregator HOST:PORT [--host-root /host] [--node-name NAME]
                     [--flows SOURCE]... [--spool DIR]
                     [--token-file FILE | --tls-cert FILE --tls-key FILE --tls-ca FILE]
                     [--kubelet-configz] [--kubeconfig FILE] [--kubernetes-version v1.32.4]
                     [--internal-cidr 10.0.0.0/8]... [--flow-window-ms 15000] [--max-spool-bytes N]
                     [--goldmane-ca F [--goldmane-cert F --goldmane-key F] [--goldmane-server-name N]]
                     [--rescan-interval-ms 300000] [--watch-interval-ms 1000]
  verdict-agent benchmarks [--format table|json]
`;

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
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw usageError(`unknown command "${command}"; run 'verdict-agent --help'`);
  }
}

function scanCommand(args: string[]): number {
  const { values } = parseArgs({
    args,
    options: {
      ...SCAN_OPTIONS,
      format: { type: 'string', default: 'table' },
      'exit-code': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const flags = scanFlags(values);
  const format = values.format as string;
  if (!['table', 'json', 'csv', 'junit'].includes(format))
    throw usageError(`--format must be table, json, csv or junit, not "${format}"`);
  const { report, notes } = scanNode(flags);
  if (format === 'table') for (const n of notes) process.stderr.write(`note: ${n}\n`);
  process.stdout.write(formatReport(report, format as ReportFormat));
  return values['exit-code'] && report.checks.some((c) => c.status === 'FAIL' && c.scored) ? 1 : 0;
}

function benchmarksCommand(args: string[]): number {
  const { values } = parseArgs({ args, options: { format: { type: 'string', default: 'table' } }, strict: true });
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

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      const { line, exitCode } = cliFailure(err, '--aggregator');
      process.stderr.write(
        `verdict-agent: ${err instanceof AgentError && !line.startsWith(err.code) ? `${err.code}: ${line}` : line}\n`,
      );
      process.exitCode = exitCode;
    },
  );
}
