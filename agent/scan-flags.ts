import { hostname } from 'node:os';
import type { ScanOptions } from './cis/index.js';
import { usageError } from './errors.js';

// The flags that choose what to scan, shared by `verdict-agent scan` (cli.ts)
// and `verdict-agent run` (run.ts). They live apart from both so that neither
// command imports the other.

/** Options every mode that scans shares, validated once. */
export type ScanFlags = Pick<
  ScanOptions,
  'hostRoot' | 'nodeName' | 'benchmark' | 'role' | 'level' | 'exclude' | 'kubernetesVersion'
>;

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
