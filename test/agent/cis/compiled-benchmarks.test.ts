import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../../common/package-root.js';
import { buildExampleNodes } from '../../../examples/nodes.js';
import {
  bundledBenchmarkDir,
  bundledBenchmarkIndex,
  chooseBenchmark,
  compiledBenchmarkDir,
  loadBundledBenchmark,
} from '../../../agent/cis/benchmark-index.js';
import { loadBenchmarks } from '../../../agent/cis/benchmarks.js';
import { compiledBenchmarkFiles } from '../../../agent/cis/compile-benchmarks.js';
import { tempDir } from '../../fixtures/tmp.js';
import { importedModules, importLoggingFlags } from '../../fixtures/import-log.js';

// The YAML in agent/cis/benchmarks/ is the source; a scan reads its compiled form (compiled/index.json and one
// compiled/<id>.json). These tests hold the two together and keep the scan's start-up to the one benchmark it uses.

const FIX = 'edit the YAML, then: npm run build && node dist/agent/cis/compile-benchmarks.js';

t.test('the compiled benchmarks are exactly what the YAML compiles to, and no other', async (t) => {
  const want = compiledBenchmarkFiles();
  const onDisk = readdirSync(compiledBenchmarkDir()).filter((f) => f.endsWith('.json'));
  t.same(onDisk.sort(), [...want.keys()].sort(), `no compiled file missing or left over (${FIX})`);
  for (const [name, text] of want)
    t.equal(readFileSync(join(compiledBenchmarkDir(), name), 'utf8'), text, `compiled/${name} is current (${FIX})`);
});

t.test('each bundled benchmark read from its compiled file equals the validated YAML', async (t) => {
  const fromYaml = loadBenchmarks();
  t.same(
    bundledBenchmarkIndex().map((b) => b.id),
    fromYaml.map((b) => b.id),
    'the index lists every YAML benchmark, newest first',
  );
  for (const spec of fromYaml) {
    const compiled = loadBundledBenchmark(spec.id);
    // The YAML parser makes null-prototype objects; compare the data.
    t.same(compiled, JSON.parse(JSON.stringify(spec)), `${spec.id}: same checks, audits and sections`);
    const entry = bundledBenchmarkIndex().find((b) => b.id === spec.id);
    t.equal(entry?.checks, spec.checks.length, `${spec.id}: check count`);
    t.equal(entry?.automated, spec.checks.filter((c) => c.automated).length, `${spec.id}: automated count`);
    t.ok(readdirSync(bundledBenchmarkDir()).includes(entry?.source ?? ''), `${spec.id}: its source file is named`);
  }
});

t.test('choosing a bundled benchmark reads only that one', async (t) => {
  t.equal(chooseBenchmark('auto', 'v1.30.2').benchmark.id, 'cis-1.11', 'Kubernetes 1.30 is in cis-1.11');
  t.equal(chooseBenchmark('auto', undefined).why, 'Kubernetes version unknown: newest benchmark');
  t.equal(chooseBenchmark('cis-1.9', undefined).benchmark.version, '1.9.0');
  t.throws(() => chooseBenchmark('cis-0.1', undefined), { code: 'VERDICT_BENCHMARK_UNKNOWN' });
});

t.test('verdict-agent scan loads neither the schema library, the YAML of benchmarks, nor gRPC', async (t) => {
  // A module hook in the scan's own process records every package it imports and every file it opens by name
  // through the ESM loader; the built CLI is run as users run it.
  const dir = tempDir(t);
  const { roots } = buildExampleNodes(dir);
  const log = join(dir, 'imports.log');
  const r = spawnSync(
    process.execPath,
    [
      ...importLoggingFlags(log),
      join(packageRoot(), 'dist', 'agent', 'cli.js'),
      'scan',
      '--host-root',
      roots['worker-hardened'],
      '--format',
      'json',
    ],
    { encoding: 'utf8' },
  );
  t.equal(r.status, 0, r.stderr);
  const { urls, packages } = importedModules(log);
  t.same([...packages].sort(), ['yaml'], 'yaml (the kubelet config) is the only package a scan imports');
  t.notOk(
    urls.some((u) => /\/agent\/cis\/(schema|benchmarks|compile-benchmarks)\.js$/.test(u)),
    'the benchmark schema and YAML loader stay unloaded',
  );
});
