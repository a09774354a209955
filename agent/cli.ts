#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { cliFailure } from '../common/cli-failure.js';
import { parseArgs } from 'node:util';
import { hostname } from 'node:os';
import { formatReport, table, type ReportFormat } from './cis/format.js';
import { loadBenchmarks } from './cis/benchmarks.js';
import { scanNode, type ScanOptions } from './cis/index.js';
import { AgentError, usageError } from './errors.js';

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

export async function main(argv: string[]): Promise<number> {
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

/** Options every mode that scans shares, validated once. */
export type ScanFlags = Pick<ScanOptions, 'hostRoot' | 'nodeName' | 'benchmark' | 'role' | 'level' | 'exclude' | 'kubernetesVersion'>;

export const SCAN_OPTIONS = {
  'host-root': { type: 'string' },
  benchmark: { type: 'string', default: 'auto' },
  'node-name': { type: 'string' },
  role: { type: 'string', default: 'auto' },
  level: { type: 'string', default: '2' },
  exclude: { type: 'string', multiple: true },
  'kubernetes-version': { type: 'string' },
} as const;

export function scanFlags(values: Record<string, unknown>, defaultHostRoot?: string): ScanFlags {
  const hostRoot = (values['host-root'] as string | undefined) ?? defaultHostRoot;
  if (!hostRoot) throw usageError('--host-root DIR is required (the directory that is the node\'s /, e.g. /host)');
  const role = values.role as string;
  if (!['worker', 'control-plane', 'auto'].includes(role)) throw usageError(`--role must be worker, control-plane or auto, not "${role}"`);
  const level = values.level as string;
  if (level !== '1' && level !== '2') throw usageError(`--level must be 1 or 2, not "${level}"`);
  const kv = values['kubernetes-version'] as string | undefined;
  if (kv !== undefined && !/^v?\d+\.\d+(\.\d+)?/.test(kv)) throw usageError(`--kubernetes-version takes a version like v1.32.4, not "${kv}"`);
  const exclude = ((values.exclude as string[] | undefined) ?? []).flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean);
  for (const id of exclude) if (!/^\d+(\.\d+)*$/.test(id)) throw usageError(`--exclude takes check ids like 4.2.6, not "${id}"`);
  return {
    hostRoot,
    nodeName: (values['node-name'] as string | undefined) ?? process.env.NODE_NAME ?? hostname(),
    benchmark: values.benchmark as string,
    role: role as ScanFlags['role'],
    level: Number(level) as 1 | 2,
    exclude,
    kubernetesVersion: values['kubernetes-version'] as string | undefined,
  };
}

function scanCommand(args: string[]): number {
  const { values } = parseArgs({
    args,
    options: { ...SCAN_OPTIONS, format: { type: 'string', default: 'table' }, 'exit-code': { type: 'boolean', default: false } },
    strict: true,
  });
  const flags = scanFlags(values);
  const format = values.format as string;
  if (!['table', 'json', 'csv', 'junit'].includes(format)) throw usageError(`--format must be table, json, csv or junit, not "${format}"`);
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
    const rows = list.map((b) => [b.id, b.version, b.kubernetesVersions.join(', '), String(b.checks), String(b.automated)]);
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
      process.stderr.write(`verdict-agent: ${err instanceof AgentError && !line.startsWith(err.code) ? `${err.code}: ${line}` : line}\n`);
      process.exitCode = exitCode;
    },
  );
}
