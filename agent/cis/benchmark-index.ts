import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../common/package-root.js';
import { AGENT_ERROR_CODES, agentError } from '../errors.js';
import type { BenchmarkSpec } from './schema.js';

// The bundled benchmarks as a scan reads them: the YAML files in benchmarks/ are the source, validated against the
// schema when compiled (compile-benchmarks.ts) into benchmarks/compiled/: an index of every benchmark (what picking
// one and listing them need) and one JSON file per benchmark. A scan reads the index and the one benchmark it uses,
// with JSON.parse and no YAML parser or schema library (test/agent/cis/compiled-benchmarks.test.ts holds the compiled
// files to the YAML).

/** What the index says about one benchmark: enough to choose it and to list it. */
export interface BenchmarkSummary {
  id: string;
  version: string;
  title: string;
  kubernetesVersions: string[];
  /** The YAML file it was compiled from, in benchmarks/. */
  source: string;
  /** Number of checks, and of Automated (scored) ones. */
  checks: number;
  automated: number;
}

/** The compiled index's shape (benchmarks newest first). */
export interface BenchmarkIndex {
  generatedBy: string;
  benchmarks: BenchmarkSummary[];
}

/** Where the bundled benchmark files live (data, not code). */
export function bundledBenchmarkDir(): string {
  return join(packageRoot(), 'agent', 'cis', 'benchmarks');
}

/** Where their compiled form lives. */
export function compiledBenchmarkDir(benchmarkDir = bundledBenchmarkDir()): string {
  return join(benchmarkDir, 'compiled');
}

export const COMPILE_COMMAND = 'node dist/agent/cis/compile-benchmarks.js';

let index: BenchmarkSummary[] | undefined;
const loaded = new Map<string, BenchmarkSpec>();

function readCompiled(file: string): unknown {
  const path = join(compiledBenchmarkDir(), file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw agentError(
      AGENT_ERROR_CODES.BENCHMARK_NONE,
      `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the compiled benchmarks ship with the package (${COMPILE_COMMAND} writes them)`,
      { cause: err },
    );
  }
  return JSON.parse(text) as unknown;
}

/** Every bundled benchmark, newest version first, from the compiled index (no benchmark is parsed). */
export function bundledBenchmarkIndex(): BenchmarkSummary[] {
  index ??= (readCompiled('index.json') as BenchmarkIndex).benchmarks;
  return index;
}

/** One bundled benchmark by id, read once per process. */
export function loadBundledBenchmark(id: string): BenchmarkSpec {
  let spec = loaded.get(id);
  if (!spec) {
    if (!bundledBenchmarkIndex().some((b) => b.id === id)) throw unknownBenchmark(id);
    spec = readCompiled(`${id}.json`) as BenchmarkSpec;
    loaded.set(id, spec);
  }
  return spec;
}

const unknownBenchmark = (id: string) =>
  agentError(AGENT_ERROR_CODES.BENCHMARK_UNKNOWN, `no benchmark "${id}"; run 'verdict-agent benchmarks' to list them`);

/**
 * The benchmark a scan uses: `choice` by id, or "auto" by the Kubernetes version (pickBenchmark); from `benchmarks`
 * when given (already loaded), else the bundled ones, of which only the chosen one is read.
 */
export function chooseBenchmark(
  choice: string,
  kubernetesVersion: string | undefined,
  benchmarks?: BenchmarkSpec[],
): { benchmark: BenchmarkSpec; why?: string } {
  const list: readonly { id: string; kubernetesVersions: string[] }[] = benchmarks ?? bundledBenchmarkIndex();
  let id: string;
  let why: string | undefined;
  if (choice === 'auto') {
    const pick = pickBenchmark(list, kubernetesVersion);
    id = pick.benchmark.id;
    why = pick.why;
  } else {
    if (!list.some((b) => b.id === choice)) throw unknownBenchmark(choice);
    id = choice;
  }
  const benchmark = benchmarks ? (benchmarks.find((b) => b.id === id) as BenchmarkSpec) : loadBundledBenchmark(id);
  return why === undefined ? { benchmark } : { benchmark, why };
}

/**
 * The benchmark for a Kubernetes version ("v1.32.4", "1.32"): the newest one that
 * lists that minor; the newest of all when the version is unknown or newer than
 * every benchmark (a newer cluster is judged by the newest rules we have).
 * `benchmarks` is newest first.
 */
export function pickBenchmark<B extends { id: string; kubernetesVersions: string[] }>(
  benchmarks: readonly B[],
  kubernetesVersion: string | undefined,
): { benchmark: B; why: string } {
  const newest = benchmarks[0];
  if (!newest) throw agentError(AGENT_ERROR_CODES.BENCHMARK_NONE, 'no benchmark files found');
  const minor = /(\d+)\.(\d+)/.exec(kubernetesVersion ?? '');
  if (!minor) return { benchmark: newest, why: 'Kubernetes version unknown: newest benchmark' };
  const key = `${minor[1]}.${minor[2]}`;
  const match = benchmarks.find((b) => b.kubernetesVersions.includes(key));
  if (match) return { benchmark: match, why: `Kubernetes ${key} maps to ${match.id}` };
  return { benchmark: newest, why: `no benchmark lists Kubernetes ${key}: newest benchmark` };
}

/** Dotted versions compared numerically ("1.10.0" after "1.9.0"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
