import t from 'tap';
import { loadBundledBenchmark } from '../../../agent/cis/benchmark-index.js';
import { parseBenchmark } from '../../../agent/cis/benchmarks.js';
import { formatReport } from '../../../agent/cis/format.js';
import { scanNode } from '../../../agent/cis/index.js';
import { buildExampleNodes } from '../../../examples/nodes.js';
import { tempDir } from '../../fixtures/tmp.js';

// The table's section headings come from the benchmark, not from the code. The expected titles are copied from
// kube-bench's cfg/<version>/{master,etcd,controlplane,node,policies}.yaml group texts
// (github.com/aquasecurity/kube-bench @ a73ce37): the CIS document's words, which users know from kube-bench.
const COMMON = {
  '1': 'Control Plane Security Configuration',
  '1.1': 'Control Plane Node Configuration Files',
  '1.2': 'API Server',
  '1.3': 'Controller Manager',
  '1.4': 'Scheduler',
  '2': 'Etcd Node Configuration',
  '3': 'Control Plane Configuration',
  '3.1': 'Authentication and Authorization',
  '3.2': 'Logging',
  '4': 'Worker Node Security Configuration',
  '4.1': 'Worker Node Configuration Files',
  '4.2': 'Kubelet',
  '4.3': 'kube-proxy',
  '5': 'Kubernetes Policies',
  '5.1': 'RBAC and Service Accounts',
  '5.2': 'Pod Security Standards',
  '5.3': 'Network Policies and CNI',
  '5.4': 'Secrets Management',
  '5.5': 'Extensible Admission Control',
};

for (const [id, generalPolicies] of [
  ['cis-1.9', '5.7'],
  ['cis-1.10', '5.7'],
  ['cis-1.11', '5.6'],
  ['cis-1.12', '5.6'],
] as const) {
  t.test(`${id} names its sections as CIS and kube-bench do (General Policies is ${generalPolicies})`, async (t) => {
    const b = loadBundledBenchmark(id);
    t.same(Object.fromEntries((b.sections ?? []).map((s) => [s.id, s.title])), {
      ...COMMON,
      [generalPolicies]: 'General Policies',
    });
  });
}

const CUSTOM = `
id: test-1.0
version: 1.0.0
title: a test benchmark
kubernetesVersions: ["1.32"]
sections:
  - {id: "4", title: "Nodes, as this benchmark calls them"}
  - {id: "4.1", title: "Files on the node"}
checks:
  - { id: "4.1.1", title: service file mode, section: "4.1", level: 1, automated: true, role: worker, remediation: chmod 600,
      audit: { type: file-mode, path: "{kubelet-file:service}", mode: "600" } }
`;

t.test('the table heads sections with the titles of the benchmark scanned', async (t) => {
  const { roots } = buildExampleNodes(tempDir(t));
  const result = scanNode({
    hostRoot: roots['worker-weak'],
    nodeName: 'w1',
    benchmark: 'test-1.0',
    role: 'auto',
    level: 2,
    exclude: [],
    benchmarks: [parseBenchmark(CUSTOM, 'custom.yaml')],
  });
  t.same(result.sectionTitles, { '4': 'Nodes, as this benchmark calls them', '4.1': 'Files on the node' });
  const lines = formatReport(result.report, 'table', { color: false, width: 100 }, result.sectionTitles).split('\n');
  t.same(lines.slice(2, 5), [
    '4 Nodes, as this benchmark calls them',
    '4.1 Files on the node',
    '[FAIL] 4.1.1 service file mode',
  ]);
  t.match(lines.join('\n'), '\n  4.1 Files on the node  pass 0  fail 1  warn 0  skip 0  score 0%\n');
  // Without titles (a benchmark that names none) a section is headed by its id.
  t.same(formatReport(result.report, 'table').split('\n').slice(2, 4), ['4', '4.1']);
});

t.test('a benchmark that names sections must name every one its checks use, chapters too', async (t) => {
  t.throws(
    () => parseBenchmark(CUSTOM.replace('  - {id: "4", title: "Nodes, as this benchmark calls them"}\n', ''), 'x.yaml'),
    {
      code: 'VERDICT_BENCHMARK_INVALID',
      message: /x\.yaml: checks\[0\]\.section: section "4" has no title under sections/,
    },
  );
  t.throws(() => parseBenchmark(CUSTOM.replace('"4", title: "Nodes', '"4.1", title: "Nodes'), 'x.yaml'), {
    code: 'VERDICT_BENCHMARK_INVALID',
    message: /x\.yaml: sections\[1\]\.id: duplicate section id "4\.1"/,
  });
});
