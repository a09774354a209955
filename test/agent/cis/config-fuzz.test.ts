import fc from 'fast-check';
import t from 'tap';
import { loadBenchmarks, parseBenchmark } from '../../../agent/cis/benchmarks.js';
import { ComponentReader, staticPodContainer } from '../../../agent/cis/components.js';
import { HostView } from '../../../agent/cis/host.js';
import { scanNode } from '../../../agent/cis/index.js';
import { readKubeletSettings } from '../../../agent/cis/kubelet.js';
import { listProcesses } from '../../../agent/cis/processes.js';
import { BenchmarkInvalidError, type BenchmarkSpec } from '../../../agent/cis/schema.js';
import type { CheckResult } from '../../../common/scan-report.js';
import { NodeRootBuilder } from '../../../examples/node-root.js';
import {
  anyValue,
  asPollutingNames,
  dataOf,
  documentText,
  encoding,
  FUZZ_RUNS,
  hostileYaml,
  mutate,
  mutation,
  prototypeSnapshot,
  withInnocentKeys,
  withoutPollutingKeys,
  type Data,
} from '../../fixtures/documents.js';
import { tempDir } from '../../fixtures/tmp.js';

/*
 * Property-based fuzzing of every config document the agent parses: kubelet
 * config files and drop-ins (merged), kube-proxy's --config, static pod
 * manifests, k3s's config.yaml and benchmark files. Documents start valid and
 * are mutated, nulled, retyped, given `__proto__` / `constructor` /
 * `prototype` keys at any depth and hostile YAML (alias bombs, recursive
 * aliases, deep nesting). Whatever the input:
 *   - nothing throws: a bad document is a FAIL or an error with a reason;
 *   - Object.prototype and Array.prototype are untouched;
 *   - a polluting key changes nothing the real component would not change
 *     (the kubelet and kube-proxy ignore unknown keys: same result without it);
 *   - a good node scanned afterwards gives the same result as before (run mode).
 */

const snapshot = prototypeSnapshot();
const cis = loadBenchmarks().find((b) => b.id === 'cis-1.12') as BenchmarkSpec;
// The checks that read the kubelet's settings, directly or through a {kubelet:...} path.
const kubeletBench: BenchmarkSpec = {
  ...cis,
  id: 'kubelet-fuzz',
  checks: cis.checks.filter((c) => /"kubelet"|\{kubelet:/.test(JSON.stringify(c.audit ?? null))),
};
const isKubeletAudit = (id: string) =>
  JSON.stringify(kubeletBench.checks.find((c) => c.id === id)?.audit).includes('"type":"kubelet"');

const KUBELET_KEYS = [
  'authentication',
  'anonymous',
  'enabled',
  'webhook',
  'x509',
  'clientCAFile',
  'authorization',
  'mode',
  'readOnlyPort',
  'rotateCertificates',
  'podPidsLimit',
  'tlsCipherSuites',
  'featureGates',
  'RotateKubeletServerCertificate',
  'serverTLSBootstrap',
  'streamingConnectionIdleTimeout',
  'makeIPTablesUtilChains',
  'eventRecordQPS',
  'tlsCertFile',
  'tlsPrivateKeyFile',
  'seccompDefault',
  'staticPodPath',
];
const KUBELET_CONFIGS: Data[] = [
  dataOf({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: '/etc/kubernetes/pki/ca.crt' },
    },
    authorization: { mode: 'Webhook' },
    staticPodPath: '/etc/kubernetes/manifests',
  }),
  dataOf({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    readOnlyPort: 0,
    rotateCertificates: true,
    podPidsLimit: 4096,
    serverTLSBootstrap: true,
    tlsCipherSuites: ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'],
    featureGates: { RotateKubeletServerCertificate: true },
    streamingConnectionIdleTimeout: '4h0m0s',
    eventRecordQPS: 5,
    tlsCertFile: '/var/lib/kubelet/pki/kubelet.crt',
    tlsPrivateKeyFile: '/var/lib/kubelet/pki/kubelet.key',
  }),
];

const dir = tempDir(t);

/** A node with a kubelet reading /var/lib/kubelet/config.yaml and drop-ins from /etc/kubelet.d. */
function kubeletNode(name: string): NodeRootBuilder {
  const b = new NodeRootBuilder(`${dir}/${name}`);
  b.dir('/etc/kubelet.d');
  b.file('/etc/kubernetes/pki/ca.crt', 'x', { mode: 0o644 });
  b.process(10, ['/usr/bin/kubelet', '--config=/var/lib/kubelet/config.yaml', '--config-dir=/etc/kubelet.d']);
  return b;
}

const scanChecks = (root: string): CheckResult[] =>
  scanNode({
    hostRoot: root,
    nodeName: 'n',
    benchmark: 'kubelet-fuzz',
    role: 'worker',
    level: 2,
    exclude: [],
    benchmarks: [kubeletBench],
  }).report.checks;

const good = kubeletNode('good');
good.file('/var/lib/kubelet/config.yaml', documentText(KUBELET_CONFIGS[1] as Data, 'yaml'), { mode: 0o600 });
const goodChecks = scanChecks(good.root);

const fuzzNode = kubeletNode('fuzz');

/** Scan the fuzz node with `text` as the main config file or as a drop-in next to a valid main file. */
function scanWith(text: string, placement: 'main' | 'drop-in') {
  if (placement === 'main') {
    fuzzNode.file('/var/lib/kubelet/config.yaml', text, { mode: 0o600 });
  } else {
    fuzzNode.file('/var/lib/kubelet/config.yaml', documentText(KUBELET_CONFIGS[0] as Data, 'yaml'), { mode: 0o600 });
    fuzzNode.file('/etc/kubelet.d/50-fuzz.conf', text, { mode: 0o600 });
  }
  const host = new HostView(fuzzNode.root);
  const settings = readKubeletSettings(host, listProcesses(host));
  const checks = scanChecks(fuzzNode.root);
  if (placement === 'drop-in') fuzzNode.file('/etc/kubelet.d/50-fuzz.conf', '', { mode: 0o600 });
  return { checks, configErrors: settings.configErrors };
}

t.test(
  'kubelet config files and drop-ins: any document gives verdicts with reasons, a polluting key changes nothing',
  async (t) => {
    let rejected = 0;
    let polluted = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(...KUBELET_CONFIGS),
        fc.array(mutation(KUBELET_KEYS), { maxLength: 5 }),
        encoding,
        hostileYaml,
        fc.constantFrom('main' as const, 'drop-in' as const),
        (base, mutations, how, hostile, placement) => {
          const doc = mutate(base, mutations);
          const extra = how === 'yaml' ? hostile : '';
          const r = scanWith(documentText(doc, how, extra), placement);
          if (prototypeSnapshot() !== snapshot) return false;
          for (const c of r.checks) {
            if (!['PASS', 'FAIL', 'SKIP'].includes(c.status)) return false;
            if (c.status === 'FAIL' && !c.evidence) return false;
            if (c.status === 'SKIP' && !c.skipReason) return false;
          }
          if (r.configErrors.length > 0) {
            rejected++;
            // A config that could not be used passes no kubelet setting: only what the command line says can.
            if (r.checks.some((c) => isKubeletAudit(c.id) && c.status === 'PASS' && !c.evidence.startsWith('flag ')))
              return false;
          }
          const stripped = withoutPollutingKeys(doc);
          if (JSON.stringify(stripped) !== JSON.stringify(doc)) {
            polluted++;
            const clean = scanWith(documentText(stripped, how, extra), placement);
            if (JSON.stringify(clean.checks) !== JSON.stringify(r.checks)) return false;
          }
          return JSON.stringify(scanChecks(good.root)) === JSON.stringify(goodChecks);
        },
      ),
      FUZZ_RUNS,
    );
    t.ok(rejected > 10, `${rejected} documents were rejected with a reason`);
    t.ok(polluted > 20, `${polluted} documents held a polluting key`);
    t.equal(prototypeSnapshot(), snapshot);
  },
);

const PROXY_KEYS = [
  'kind',
  'apiVersion',
  'metricsBindAddress',
  'clientConnection',
  'kubeconfig',
  'mode',
  'bindAddress',
];
const PROXY_CONFIG = dataOf({
  apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
  kind: 'KubeProxyConfiguration',
  metricsBindAddress: '127.0.0.1:10249',
  clientConnection: { kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf' },
});

t.test(
  'kube-proxy --config: any document gives a value or an error with a reason, a polluting key changes nothing',
  async (t) => {
    const b = new NodeRootBuilder(`${dir}/proxy`);
    b.process(70, ['kube-proxy', '--config=/var/lib/kube-proxy/config.conf']);
    const read = (text: string, field: string) => {
      b.file('/var/lib/kube-proxy/config.conf', text);
      const host = new HostView(b.root);
      return new ComponentReader(host, listProcesses(host), '/etc/kubernetes/manifests').configValue(
        'kube-proxy',
        field,
      );
    };
    fc.assert(
      fc.property(
        fc.array(mutation(PROXY_KEYS), { maxLength: 5 }),
        encoding,
        hostileYaml,
        fc.constantFrom(
          'metricsBindAddress',
          'clientConnection.kubeconfig',
          'mode',
          'toString',
          'clientConnection.hasOwnProperty',
        ),
        (mutations, how, hostile, field) => {
          const doc = mutate(PROXY_CONFIG, mutations);
          const extra = how === 'yaml' ? hostile : '';
          const r = read(documentText(doc, how, extra), field);
          if (prototypeSnapshot() !== snapshot) return false;
          if (r.kind === 'error' && !r.reason) return false;
          if (r.kind === 'value' && r.value !== undefined && typeof r.value !== 'string') return false;
          return JSON.stringify(read(documentText(withoutPollutingKeys(doc), how, extra), field)) === JSON.stringify(r);
        },
      ),
      FUZZ_RUNS,
    );
    t.equal(prototypeSnapshot(), snapshot);
  },
);

const POD_KEYS = [
  'apiVersion',
  'kind',
  'metadata',
  'spec',
  'containers',
  'name',
  'command',
  'args',
  'env',
  'value',
  'image',
];
const POD = dataOf({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'kube-apiserver', namespace: 'kube-system' },
  spec: {
    containers: [
      {
        name: 'kube-apiserver',
        image: 'registry.k8s.io/kube-apiserver:v1.32.2',
        command: ['kube-apiserver', '--anonymous-auth=false', '--profiling=false'],
        env: [{ name: 'A', value: 'b' }],
      },
    ],
  },
});

t.test('static pod manifests: any document gives flags or a reason, a polluting key changes nothing', async (t) => {
  const read = (text: string) => {
    const r = staticPodContainer(text, 'kube-apiserver');
    return typeof r === 'string' ? r : { args: r.args, env: [...r.env] };
  };
  fc.assert(
    fc.property(fc.array(mutation(POD_KEYS), { maxLength: 5 }), encoding, hostileYaml, (mutations, how, hostile) => {
      const doc = mutate(POD, mutations);
      const extra = how === 'yaml' ? hostile : '';
      const r = read(documentText(doc, how, extra));
      if (prototypeSnapshot() !== snapshot) return false;
      if (typeof r === 'string' ? r.length === 0 : !r.args.every((a) => typeof a === 'string')) return false;
      return JSON.stringify(read(documentText(withoutPollutingKeys(doc), how, extra))) === JSON.stringify(r);
    }),
    FUZZ_RUNS,
  );
  t.equal(prototypeSnapshot(), snapshot);
});

t.test(
  'k3s config.yaml: any document adds only its own kubelet-arg values, a polluting key changes nothing',
  async (t) => {
    const b = new NodeRootBuilder(`${dir}/k3s`);
    b.process(400, ['/usr/local/bin/k3s', 'agent', '--kubelet-arg=v=2']);
    const flags = (text: string) => {
      b.file('/etc/rancher/k3s/config.yaml', text);
      const host = new HostView(b.root);
      return [...readKubeletSettings(host, listProcesses(host)).flags];
    };
    const base = dataOf({ token: 'x', 'kubelet-arg': ['read-only-port=0', 'pod-max-pids=100'] });
    fc.assert(
      fc.property(
        fc.array(mutation(['kubelet-arg', 'token', 'server']), { maxLength: 4 }),
        encoding,
        hostileYaml,
        (mutations, how, hostile) => {
          const doc = mutate(base, mutations);
          const extra = how === 'yaml' ? hostile : '';
          const r = flags(documentText(doc, how, extra));
          if (prototypeSnapshot() !== snapshot) return false;
          if (!r.every(([k, v]) => typeof k === 'string' && typeof v === 'string')) return false;
          return JSON.stringify(flags(documentText(withoutPollutingKeys(doc), how, extra))) === JSON.stringify(r);
        },
      ),
      FUZZ_RUNS,
    );
    t.equal(prototypeSnapshot(), snapshot);
  },
);

const BENCH_KEYS = [
  'id',
  'version',
  'title',
  'kubernetesVersions',
  'checks',
  'section',
  'level',
  'automated',
  'role',
  'audit',
  'type',
  'setting',
  'flag',
  'expect',
  'op',
  'value',
  'values',
  'of',
  'path',
  'mode',
  'remediation',
];
const BENCH = dataOf({
  id: 'fuzz-1.0',
  version: '1.0.0',
  title: 'fuzz',
  kubernetesVersions: ['1.32'],
  checks: [
    {
      id: '4.2.10',
      title: 'rotate',
      section: '4.2',
      level: 1,
      automated: true,
      role: 'worker',
      remediation: 'r',
      audit: {
        type: 'kubelet',
        setting: 'rotateCertificates',
        flag: 'rotate-certificates',
        expect: { op: 'neq', value: 'false' },
      },
    },
    {
      id: '4.2.11',
      title: 'any',
      section: '4.2',
      level: 1,
      automated: false,
      role: 'worker',
      remediation: 'r',
      audit: {
        type: 'any',
        of: [
          { type: 'kubelet', setting: 'serverTLSBootstrap', expect: { op: 'eq', value: 'true' } },
          { type: 'file-mode', path: '{kubelet-file:config}', mode: '600' },
        ],
      },
    },
  ],
});

t.test(
  'benchmark files: any document is a benchmark or a VERDICT_BENCHMARK_INVALID naming the field; a polluting key is an unknown field like any other',
  async (t) => {
    const parse = (doc: Data, how: 'yaml' | 'json', extra: string) => {
      try {
        return { ok: parseBenchmark(documentText(doc, how, extra), 'fuzz.yaml').checks.length };
      } catch (err) {
        if (!(err instanceof BenchmarkInvalidError)) throw err;
        return { error: err.message };
      }
    };
    fc.assert(
      fc.property(
        fc.array(mutation(BENCH_KEYS), { maxLength: 4 }),
        encoding,
        hostileYaml,
        (mutations, how, hostile) => {
          const doc = mutate(BENCH, mutations);
          const extra = how === 'yaml' ? hostile : '';
          const r = parse(doc, how, extra);
          if (prototypeSnapshot() !== snapshot) return false;
          if ('error' in r && !/^VERDICT_BENCHMARK_INVALID: fuzz\.yaml: \S/.test(r.error as string)) return false;
          const innocent = parse(withInnocentKeys(doc), how, extra);
          return asPollutingNames(JSON.stringify(innocent)) === JSON.stringify(r);
        },
      ),
      FUZZ_RUNS,
    );
    t.equal(prototypeSnapshot(), snapshot);
  },
);

t.test('the fuzzed values include every kind of value (the generator is not degenerate)', async (t) => {
  const kinds = new Set(
    fc
      .sample(anyValue(KUBELET_KEYS), { seed: 42, numRuns: 300 })
      .map((v) => (Array.isArray(v) ? 'list' : v === null ? 'null' : typeof v)),
  );
  t.same([...kinds].sort(), ['boolean', 'list', 'null', 'number', 'object', 'string']);
});
