import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { bundledBenchmarkDir, loadBenchmarks, parseBenchmark, pickBenchmark } from '../../../agent/cis/benchmarks.js';

t.test('every shipped benchmark file validates against the schema', async (t) => {
  const files = readdirSync(bundledBenchmarkDir()).filter((f) => f.endsWith('.yaml'));
  t.ok(files.includes('cis-1.12.yaml'));
  for (const f of files) {
    const b = parseBenchmark(readFileSync(join(bundledBenchmarkDir(), f), 'utf8'), f);
    t.ok(b.checks.length > 100, `${f} has every section (${b.checks.length} checks)`);
    const sections = new Set(b.checks.map((c) => c.id.split('.')[0]));
    t.same([...sections].sort(), ['1', '2', '3', '4', '5'], `${f} covers sections 1-5`);
    for (const c of b.checks) t.ok(c.id.startsWith(`${c.section}.`), `${f} ${c.id} is in section ${c.section}`);
  }
});

t.test('benchmarks load newest first', async (t) => {
  const versions = loadBenchmarks().map((b) => b.version);
  t.equal(versions[0], '1.12.0');
});

const BASE = `id: x-1
version: "1.0"
title: t
kubernetesVersions: ["1.30"]
checks:
`;
const broken: [string, string, RegExp][] = [
  [
    'an audit mode that is not octal',
    `${BASE}  - { id: "4.1.1", title: a, section: "4.1", level: 1, automated: true, role: worker, remediation: r, audit: { type: file-mode, path: /etc/x, mode: "rw-" } }`,
    /x\.yaml: checks\[0\]\.audit\.mode: expected an octal string like "600"/,
  ],
  [
    'an unknown audit type',
    `${BASE}  - { id: "4.1.1", title: a, section: "4.1", level: 1, automated: true, role: worker, remediation: r, audit: { type: shell, cmd: ls } }`,
    /checks\[0\]\.audit\.type: expected one of file-mode, file-owner, kubelet, component-flag, component-file, systemd-property, manual, all, any, got "shell"/,
  ],
  [
    'a missing title',
    `${BASE}  - { id: "4.1.1", section: "4.1", level: 1, automated: true, role: worker, remediation: r }`,
    /checks\[0\]/,
  ],
  [
    'a duplicate id',
    `${BASE}  - { id: "4.1.1", title: a, section: "4.1", level: 1, automated: true, role: worker, remediation: r }\n  - { id: "4.1.1", title: b, section: "4.1", level: 1, automated: true, role: worker, remediation: r }`,
    /checks\[1\]\.id: duplicate check id "4\.1\.1"/,
  ],
  [
    'an op without its value',
    `${BASE}  - { id: "4.2.1", title: a, section: "4.2", level: 1, automated: true, role: worker, remediation: r, audit: { type: kubelet, setting: readOnlyPort, expect: { op: eq } } }`,
    /checks\[0\]\.audit\.expect\.value: op "eq" needs a value/,
  ],
  [
    'a numeric op on a word',
    `${BASE}  - { id: "4.2.1", title: a, section: "4.2", level: 1, automated: true, role: worker, remediation: r, audit: { type: kubelet, setting: readOnlyPort, expect: { op: gte, value: lots } } }`,
    /needs a number or a duration/,
  ],
  [
    'an unknown field',
    `${BASE}  - { id: "4.2.1", title: a, section: "4.2", level: 1, automated: true, role: worker, remediation: r, scored: true }`,
    /checks\[0\]\.scored: unknown field/,
  ],
  ['broken YAML', `id: [unclosed`, /x\.yaml: \(yaml\): /],
];
for (const [name, text, message] of broken) {
  t.test(`a benchmark file with ${name} fails with VERDICT_BENCHMARK_INVALID naming file and field`, async (t) => {
    t.throws(() => parseBenchmark(text, 'benchmarks/x.yaml'), { code: 'VERDICT_BENCHMARK_INVALID', message });
  });
}

t.test('--benchmark auto maps a Kubernetes version to the benchmark that lists it', async (t) => {
  const all = loadBenchmarks();
  t.equal(pickBenchmark(all, 'v1.32.4').benchmark.id, 'cis-1.12');
  t.equal(pickBenchmark(all, '1.27').benchmark.id, 'cis-1.9');
  t.equal(pickBenchmark(all, '1.30.1').benchmark.id, 'cis-1.11');
  t.equal(pickBenchmark(all, 'v1.40.0').benchmark.id, 'cis-1.12', 'newer than every benchmark: the newest');
  t.match(pickBenchmark(all, undefined).why, /unknown/);
});
