import { hostname } from 'node:os';
import type { ScanOptions } from './cis/index.js';
import { AGENT_DEFAULTS } from './defaults.js';
import { usageError } from './errors.js';
import { parseArgsOptions, type FlagTable } from './flag-table.js';

// The flags that choose what to scan, shared by `verdict-agent scan` (cli.ts)
// and `verdict-agent run` (run.ts). They live apart from both so that neither
// command imports the other.

/** Options every mode that scans shares, validated once. */
export type ScanFlags = Pick<
  ScanOptions,
  'hostRoot' | 'benchmark' | 'role' | 'level' | 'exclude' | 'kubernetesVersion'
> & {
  /** --node-name, else $NODE_NAME, else the host name (run mode; `scan` finds the name under the root instead). */
  nodeName: string;
};

const D = AGENT_DEFAULTS.scan;

/** What to scan: one line per flag (type, default, usage text); scanFlags() checks them. */
// prettier-ignore
export const SCAN_FLAGS = {
  'host-root': { type: 'string', arg: 'DIR', help: "the directory that is the node's / (scan: required; run: default /host)" },
  benchmark: { type: 'string', default: D.benchmark, arg: 'ID', help: "benchmark id (see 'verdict-agent benchmarks'), or auto: by the node's Kubernetes version" },
  'node-name': { type: 'string', arg: 'NAME', help: "the node name reported (scan: default the kubelet's --hostname-override, else the root's /etc/hostname; run: default $NODE_NAME, else the host name)" },
  role: { type: 'string', default: D.role, arg: 'ROLE', help: 'worker, control-plane or auto (control-plane when an API server runs here)' },
  level: { type: 'string', default: D.level, arg: 'N', help: 'CIS profile level: 1 or 2' },
  exclude: { type: 'string', multiple: true, arg: 'IDS', help: 'check ids to skip as "excluded", e.g. 4.2.6,4.2.7' },
  'kubernetes-version': { type: 'string', arg: 'VERSION', help: 'the Kubernetes version when it cannot be told, e.g. v1.32.4' },
} as const satisfies FlagTable;

/** SCAN_FLAGS as node:util parseArgs options. */
export const SCAN_OPTIONS = parseArgsOptions(SCAN_FLAGS);

export function scanFlags(values: Record<string, unknown>, defaultHostRoot?: string): ScanFlags {
  const hostRoot = (values['host-root'] as string | undefined) ?? defaultHostRoot;
  if (!hostRoot) throw usageError("--host-root DIR is required (the directory that is the node's /, e.g. /host)");
  const role = values.role as string;
  if (!['worker', 'control-plane', 'auto'].includes(role))
    throw usageError(`--role must be worker, control-plane or auto, not "${role}"`);
  const level = values.level as string;
  if (level !== '1' && level !== '2') throw usageError(`--level must be 1 or 2, not "${level}"`);
  const kv = values['kubernetes-version'] as string | undefined;
  if (kv !== undefined && !/^v?\d+\.\d+(\.\d+)?/.test(kv))
    throw usageError(`--kubernetes-version takes a version like v1.32.4, not "${kv}"`);
  const exclude = ((values.exclude as string[] | undefined) ?? [])
    .flatMap((x) => x.split(','))
    .map((x) => x.trim())
    .filter(Boolean);
  for (const id of exclude)
    if (!/^\d+(\.\d+)*$/.test(id)) throw usageError(`--exclude takes check ids like 4.2.6, not "${id}"`);
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
