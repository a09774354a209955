import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseYamlDocument } from '../../common/parsed-document.js';
import { bundledBenchmarkDir, compareVersions } from './benchmark-index.js';
import { BenchmarkInvalidError, validateBenchmark, type BenchmarkSpec } from './schema.js';

// Benchmark YAML read and validated: the source of the compiled benchmarks a scan reads (benchmark-index.ts), and
// what tests and tools load. Picking and the bundled directory live in benchmark-index.ts, which loads neither the
// YAML parser nor the schema library; they stay exported here for code that has always found them here.
export { bundledBenchmarkDir, pickBenchmark } from './benchmark-index.js';

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
