import { mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  bundledBenchmarkDir,
  COMPILE_COMMAND,
  compareVersions,
  compiledBenchmarkDir,
  type BenchmarkIndex,
} from './benchmark-index.js';
import { parseBenchmark } from './benchmarks.js';

// Compiles the benchmark YAML (the source, validated against the schema here) into what a scan reads:
// compiled/index.json and compiled/<id>.json (benchmark-index.ts). Run after editing a benchmark:
//   npm run build && node dist/agent/cis/compile-benchmarks.js
// test/agent/cis/compiled-benchmarks.test.ts fails while the compiled files differ from the YAML.

/** The compiled files for the benchmarks in `dir`, by file name in compiled/. */
export function compiledBenchmarkFiles(dir = bundledBenchmarkDir()): Map<string, string> {
  const sources = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
  const specs = sources
    .map((source) => ({
      source,
      spec: parseBenchmark(readFileSync(join(dir, source), 'utf8'), `benchmarks/${source}`),
    }))
    .sort((a, b) => compareVersions(b.spec.version, a.spec.version));
  for (const [i, { source, spec }] of specs.entries()) {
    const twin = specs.findIndex((o) => o.spec.id === spec.id);
    if (twin !== i) throw new Error(`${source} and ${specs[twin]?.source} both have the id ${spec.id}`);
  }
  const index: BenchmarkIndex = {
    generatedBy: `${COMPILE_COMMAND} from agent/cis/benchmarks/*.yaml: edit the YAML, not this file`,
    benchmarks: specs.map(({ source, spec: b }) => ({
      id: b.id,
      version: b.version,
      title: b.title,
      kubernetesVersions: b.kubernetesVersions,
      source,
      checks: b.checks.length,
      automated: b.checks.filter((c) => c.automated).length,
    })),
  };
  const files = new Map<string, string>([['index.json', JSON.stringify(index, null, 2) + '\n']]);
  for (const { spec } of specs) files.set(`${spec.id}.json`, JSON.stringify(spec, null, 1) + '\n');
  return files;
}

/** Write the compiled files, removing compiled files of benchmarks that no longer exist. */
export function writeCompiledBenchmarks(dir = bundledBenchmarkDir()): string[] {
  const out = compiledBenchmarkDir(dir);
  const files = compiledBenchmarkFiles(dir);
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(out)) if (f.endsWith('.json') && !files.has(f)) rmSync(join(out, f));
  for (const [name, text] of files) writeFileSync(join(out, name), text);
  return [...files.keys()];
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  const written = writeCompiledBenchmarks();
  process.stdout.write(`wrote ${written.map((f) => `compiled/${f}`).join(', ')} in ${bundledBenchmarkDir()}\n`);
}
