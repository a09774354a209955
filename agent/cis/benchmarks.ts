import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseYamlDocument } from '../../common/parsed-document.js';
import { packageRoot } from '../../common/package-root.js';
import { AGENT_ERROR_CODES, agentError } from '../errors.js';
import { BenchmarkInvalidError, validateBenchmark, type BenchmarkSpec } from './schema.js';

/** Where the bundled benchmark files live (data, not code). */
export function bundledBenchmarkDir(): string {
  return join(packageRoot(), 'agent', 'cis', 'benchmarks');
}

/** Parse and validate one benchmark file's text. */
export function parseBenchmark(text: string, file: string): BenchmarkSpec {
  let doc: unknown;
  try {
    doc = parseYamlDocument(text);
  } catch (err) {
    throw new BenchmarkInvalidError(file, '(yaml)', (err as Error).message);
  }
  return validateBenchmark(doc, file);
}

/** Every benchmark in a directory, newest version first. */
export function loadBenchmarks(dir = bundledBenchmarkDir()): BenchmarkSpec[] {
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
  return files
    .map((f) => parseBenchmark(readFileSync(join(dir, f), 'utf8'), `benchmarks/${f}`))
    .sort((a, b) => compareVersions(b.version, a.version));
}

/**
 * The benchmark for a Kubernetes version ("v1.32.4", "1.32"): the newest one that
 * lists that minor; the newest of all when the version is unknown or newer than
 * every benchmark (a newer cluster is judged by the newest rules we have).
 */
export function pickBenchmark(
  benchmarks: BenchmarkSpec[],
  kubernetesVersion: string | undefined,
): { benchmark: BenchmarkSpec; why: string } {
  const newest = benchmarks[0];
  if (!newest) throw agentError(AGENT_ERROR_CODES.BENCHMARK_NONE, 'no benchmark files found');
  const minor = /(\d+)\.(\d+)/.exec(kubernetesVersion ?? '');
  if (!minor) return { benchmark: newest, why: 'Kubernetes version unknown: newest benchmark' };
  const key = `${minor[1]}.${minor[2]}`;
  const match = benchmarks.find((b) => b.kubernetesVersions.includes(key));
  if (match) return { benchmark: match, why: `Kubernetes ${key} maps to ${match.id}` };
  return { benchmark: newest, why: `no benchmark lists Kubernetes ${key}: newest benchmark` };
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
