import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { stringify as toYaml } from 'yaml';
import { BenchmarkInvalidError } from '../../../agent/cis/schema.js';
import { loadBenchmarks, parseBenchmark } from '../../../agent/cis/benchmarks.js';
import { staticPodContainer } from '../../../agent/cis/components.js';
import { HostView } from '../../../agent/cis/host.js';
import { scanNode, type ScanOptions } from '../../../agent/cis/index.js';
import { readKubeletSettings, resolveSetting } from '../../../agent/cis/kubelet.js';
import { listProcesses } from '../../../agent/cis/processes.js';
import type { CheckResult } from '../../../common/scan-report.js';
import { NodeRootBuilder } from '../../../examples/node-root.js';
import { NodeModel } from '../../fixtures/node-model.js';
import { tempDir } from '../../fixtures/tmp.js';

/*
 * A config document is untrusted text. `__proto__`, `constructor` and
 * `prototype` keys (which the kubelet and the other components ignore, like
 * any unknown key) must change nothing: every merge and lookup of a parsed
 * document gives the same scan as the document without the key, and
 * Object.prototype is left alone, so in run mode nothing outlives the file.
 */

const POLLUTING_KEYS = ['__proto__', 'constructor', 'prototype'] as const;
/** What an attacker would like every object to say: 4.2.10, 4.2.12 and 4.2.13 PASS. */
const FORGED = {
  rotateCertificates: true,
  podPidsLimit: 4096,
  tlsCipherSuites: ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'],
  protectKernelDefaults: true,
};
const FORGED_CHECKS = ['4.2.10', '4.2.12', '4.2.13'];

const benchmarks = loadBenchmarks();
const prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort();

function assertPrototypeUntouched(t: Test): void {
  t.same(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeNames, 'Object.prototype has no new properties');
  for (const k of Object.keys(FORGED))
    t.equal(({} as Record<string, unknown>)[k], undefined, `({}).${k} is still undefined`);
  t.equal(Object.getPrototypeOf({}), Object.prototype);
}

/** A YAML block: one polluting key holding the forged settings. */
function pollutingYaml(key: string, forged: Record<string, unknown> = FORGED): string {
  return `${key}:\n${toYaml(forged).replace(/^(?=.)/gm, '  ')}`;
}

function scan(root: string, extra: Partial<ScanOptions> = {}): CheckResult[] {
  return scanNode({
    hostRoot: root,
    nodeName: 'n',
    benchmark: 'cis-1.12',
    role: 'control-plane',
    level: 2,
    exclude: [],
    benchmarks,
    ...extra,
  }).report.checks;
}

const status = (checks: CheckResult[], id: string) => checks.find((c) => c.id === id)?.status;

/** Scan the model node as built, then with `pollute` applied to its files: the two must be identical. */
function sameWithAndWithout(
  t: Test,
  build: (m: NodeModel) => void,
  pollute: (b: NodeRootBuilder, m: NodeModel) => void,
  extra: Partial<ScanOptions> = {},
): CheckResult[] {
  const dir = tempDir(t);
  const model = new NodeModel();
  build(model);
  model.build(`${dir}/clean`);
  const clean = scan(`${dir}/clean`, extra);
  const b = model.build(`${dir}/polluted`);
  pollute(b, model);
  const polluted = scan(`${dir}/polluted`, extra);
  t.same(polluted, clean, 'the scan is the same as without the polluting key');
  assertPrototypeUntouched(t);
  return polluted;
}

const kubeletYaml = (m: NodeModel) =>
  toYaml({ apiVersion: 'kubelet.config.k8s.io/v1beta1', kind: 'KubeletConfiguration', ...m.kubeletConfig });

for (const key of POLLUTING_KEYS) {
  t.test(`a "${key}" key in the kubelet config file forges no PASS (4.2.10, 4.2.12, 4.2.13 stay FAIL)`, async (t) => {
    const checks = sameWithAndWithout(
      t,
      () => undefined,
      (b, m) => b.file('/var/lib/kubelet/config.yaml', kubeletYaml(m) + pollutingYaml(key), { mode: 0o600 }),
    );
    for (const id of FORGED_CHECKS) t.equal(status(checks, id), 'FAIL', `${id} FAIL: the real setting is absent`);
  });

  t.test(`a "${key}" key nested inside a kubelet config object changes nothing`, async (t) => {
    sameWithAndWithout(
      t,
      () => undefined,
      (b, m) =>
        b.file(
          '/var/lib/kubelet/config.yaml',
          kubeletYaml(m) + `evictionHard:\n  memory.available: 100Mi\n${pollutingYaml(key).replace(/^(?=.)/gm, '  ')}`,
          { mode: 0o600 },
        ),
    );
  });

  t.test(`a "${key}" key in a JSON kubelet config file changes nothing`, async (t) => {
    sameWithAndWithout(
      t,
      () => undefined,
      (b, m) => {
        const text = JSON.stringify({
          apiVersion: 'kubelet.config.k8s.io/v1beta1',
          kind: 'KubeletConfiguration',
          ...m.kubeletConfig,
        });
        b.file(
          '/var/lib/kubelet/config.yaml',
          `${text.slice(0, -1)},${JSON.stringify(key)}:${JSON.stringify(FORGED)}}`,
          { mode: 0o600 },
        );
      },
    );
  });

  t.test(`a "${key}" key in a --config-dir drop-in changes nothing (kubelet config + drop-in merge)`, async (t) => {
    const dropIns = (extra: string) => (m: NodeModel) => {
      m.setKubeletFlag('config-dir', '/etc/kubernetes/kubelet.conf.d');
      m.extraFiles.set(
        '/etc/kubernetes/kubelet.conf.d/10-site.conf',
        `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 50\n${extra}`,
      );
    };
    const dir = tempDir(t);
    const clean = new NodeModel();
    dropIns('')(clean);
    clean.build(`${dir}/clean`);
    const polluted = new NodeModel();
    dropIns(
      pollutingYaml(key) +
        `authentication:\n${pollutingYaml(key, { webhook: { enabled: true } }).replace(/^(?=.)/gm, '  ')}`,
    )(polluted);
    polluted.build(`${dir}/polluted`);
    const checks = scan(`${dir}/polluted`);
    t.same(checks, scan(`${dir}/clean`));
    for (const id of FORGED_CHECKS) t.equal(status(checks, id), 'FAIL', `${id} FAIL`);
    assertPrototypeUntouched(t);
  });

  t.test(`a "${key}" key in the kubelet's configz (JSON from the API server) changes nothing`, async (t) => {
    const live = (extra: string) => ({
      config: JSON.parse(`{"authentication":{"anonymous":{"enabled":false}},"readOnlyPort":0${extra}}`) as unknown,
      source: 'configz',
    });
    const dir = tempDir(t);
    new NodeModel().build(`${dir}/node`);
    const clean = scan(`${dir}/node`, { liveKubeletConfig: live('') });
    const polluted = scan(`${dir}/node`, {
      liveKubeletConfig: live(
        `,${JSON.stringify(key)}:${JSON.stringify(FORGED)},"authentication2":{${JSON.stringify(key)}:${JSON.stringify(FORGED)}}`,
      ),
    });
    t.same(polluted, clean);
    for (const id of FORGED_CHECKS) t.equal(status(polluted, id), 'FAIL', `${id} FAIL`);
    assertPrototypeUntouched(t);
  });

  t.test(`a "${key}" key in a static pod manifest changes nothing`, async (t) => {
    const dir = tempDir(t);
    const manifest = () => {
      // The API server read from its manifest, not its process.
      const m = new NodeModel();
      m.componentArgs.delete('kube-apiserver');
      return m;
    };
    manifest().build(`${dir}/clean`);
    const path = '/etc/kubernetes/manifests/kube-apiserver.yaml';
    const text = readFileSync(`${dir}/clean${path}`, 'utf8');
    const b = manifest().build(`${dir}/polluted`);
    const forgedPod = {
      spec: {
        containers: [
          { name: 'kube-apiserver', command: ['kube-apiserver', '--anonymous-auth=false', '--profiling=false'] },
        ],
      },
    };
    b.file(path, `${pollutingYaml(key, forgedPod)}\n${text}`, { mode: 0o600 });
    t.same(scan(`${dir}/polluted`), scan(`${dir}/clean`));
    t.same(
      staticPodContainer(`${pollutingYaml(key, forgedPod)}\n${text}`, 'kube-apiserver'),
      staticPodContainer(text, 'kube-apiserver'),
    );
    assertPrototypeUntouched(t);
  });

  t.test(`a "${key}" key in kube-proxy's --config file changes nothing`, async (t) => {
    sameWithAndWithout(
      t,
      (m) => {
        m.kubeProxyConfig = { kind: 'KubeProxyConfiguration', metricsBindAddress: '0.0.0.0:10249' };
      },
      (b, m) =>
        b.file(
          '/var/lib/kube-proxy/config.conf',
          toYaml(m.kubeProxyConfig) +
            pollutingYaml(key, {
              metricsBindAddress: '127.0.0.1:10249',
              clientConnection: { kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf' },
            }),
        ),
    );
  });

  t.test(`a "${key}" key in k3s's config.yaml adds no --kubelet-arg`, async (t) => {
    const dir = tempDir(t);
    const node = (name: string, extra: string) => {
      const b = new NodeRootBuilder(`${dir}/${name}`);
      b.file('/etc/rancher/k3s/config.yaml', `kubelet-arg:\n  - streaming-connection-idle-timeout=5m\n${extra}`);
      b.process(400, ['/usr/local/bin/k3s', 'agent']);
      return b;
    };
    const settings = (b: NodeRootBuilder) => {
      const host = new HostView(b.root);
      return readKubeletSettings(host, listProcesses(host));
    };
    const clean = settings(node('clean', ''));
    const polluted = settings(
      node('polluted', pollutingYaml(key, { 'kubelet-arg': ['pod-max-pids=4096', 'rotate-certificates=true'] })),
    );
    t.same([...polluted.flags], [...clean.flags]);
    t.equal(resolveSetting(polluted, 'podPidsLimit', 'pod-max-pids').value, '-1');
    assertPrototypeUntouched(t);
  });
}

t.test(
  'a polluted config file does not outlive itself: the next scan of a clean node still FAILs (run mode)',
  async (t) => {
    const dir = tempDir(t);
    const b = new NodeModel().build(`${dir}/node`);
    const cleanChecks = scan(`${dir}/node`);
    const text = readFileSync(b.path('/var/lib/kubelet/config.yaml'), 'utf8');
    b.file('/var/lib/kubelet/config.yaml', text + pollutingYaml('__proto__'), { mode: 0o600 });
    scan(`${dir}/node`);
    b.file('/var/lib/kubelet/config.yaml', text, { mode: 0o600 });
    const after = scan(`${dir}/node`);
    t.same(after, cleanChecks);
    for (const id of FORGED_CHECKS) t.equal(status(after, id), 'FAIL');
    assertPrototypeUntouched(t);
  },
);

t.test(
  "lookups read only a document's own keys: a prototype polluted by something else forges no PASS either",
  async (t) => {
    const dir = tempDir(t);
    const model = new NodeModel();
    model.kubeProxyConfig = {
      kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig: '/var/lib/kube-proxy/kubeconfig.conf' },
    };
    model.build(`${dir}/node`);
    const k3s = new NodeRootBuilder(`${dir}/k3s`);
    k3s.file('/etc/rancher/k3s/config.yaml', 'token: x\n');
    k3s.process(400, ['/usr/local/bin/k3s', 'agent']);
    const live = {
      config: JSON.parse('{"authentication":{"anonymous":{"enabled":false}}}') as unknown,
      source: 'configz',
    };
    const observe = () => {
      const host = new HostView(k3s.root);
      return {
        files: scan(`${dir}/node`),
        live: scan(`${dir}/node`, { liveKubeletConfig: live }),
        k3s: [...readKubeletSettings(host, listProcesses(host)).flags],
      };
    };
    const before = observe();
    const planted = { ...FORGED, 'kubelet-arg': ['pod-max-pids=4096'], metricsBindAddress: '127.0.0.1:10249' };
    const proto = Object.prototype as Record<string, unknown>;
    let during: ReturnType<typeof observe>;
    try {
      for (const [k, v] of Object.entries(planted)) proto[k] = v;
      during = observe();
    } finally {
      for (const k of Object.keys(planted)) delete proto[k];
    }
    t.same(during.files, before.files, 'kubelet config files and kube-proxy config');
    t.same(during.live, before.live, 'configz');
    t.same(during.k3s, before.k3s, 'k3s config.yaml');
    for (const id of FORGED_CHECKS) t.equal(status(during.files, id), 'FAIL', `${id} FAIL`);
    assertPrototypeUntouched(t);
  },
);

t.test('a kubelet setting named like an Object.prototype member resolves to nothing', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.file('/var/lib/kubelet/config.yaml', 'kind: KubeletConfiguration\n');
  b.process(10, ['/usr/bin/kubelet', '--config=/var/lib/kubelet/config.yaml']);
  const host = new HostView(b.root);
  const s = readKubeletSettings(host, listProcesses(host));
  for (const setting of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'authentication.constructor']) {
    t.equal(resolveSetting(s, setting).value, undefined, setting);
  }
  s.live = { config: Object.create(null) as Record<string, unknown>, source: 'configz' };
  t.equal(resolveSetting(s, 'constructor').value, undefined, 'configz: constructor');
});

const BENCH_HEAD = 'id: keys-1.0\nversion: 1.0.0\ntitle: keys\nkubernetesVersions: ["1.32"]\n';
const CHECK = (audit: string) =>
  `checks:\n  - { id: "9.1", title: t, section: "9", level: 1, automated: true, role: worker, remediation: r, audit: ${audit} }\n`;

for (const key of POLLUTING_KEYS) {
  t.test(`a "${key}" key in a benchmark file is an unknown field, reported, not merged`, async (t) => {
    t.throws(
      () => parseBenchmark(BENCH_HEAD + pollutingYaml(key, { id: 'other' }) + CHECK('{ type: manual }'), 'b.yaml'),
      { code: 'VERDICT_BENCHMARK_INVALID', message: new RegExp(`b\\.yaml: ${key}: unknown field`) },
    );
    t.throws(
      () =>
        parseBenchmark(
          BENCH_HEAD + CHECK(`{ type: kubelet, setting: x, expect: { op: set }, ${key}: { flag: y } }`),
          'b.yaml',
        ),
      { code: 'VERDICT_BENCHMARK_INVALID' },
    );
    assertPrototypeUntouched(t);
  });

  t.test(`an audit type "${key}" is named as not a known type, not looked up`, async (t) => {
    const err = t.throws(() =>
      parseBenchmark(BENCH_HEAD + CHECK(`{ type: ${JSON.stringify(key)} }`), 'b.yaml'),
    ) as Error;
    t.ok(err instanceof BenchmarkInvalidError, err?.message);
    t.match(err?.message, /checks\[0\]\.audit\.type: expected one of/);
  });
}

t.test('a benchmark path template naming a component "constructor" is not applicable, not a crash', async (t) => {
  const bench = parseBenchmark(
    BENCH_HEAD + CHECK('{ type: file-mode, path: "{flag:constructor:data-dir|config:constructor:x}", mode: "600" }'),
    'b.yaml',
  );
  const dir = tempDir(t);
  new NodeModel().build(`${dir}/node`);
  const checks = scanNode({
    hostRoot: `${dir}/node`,
    nodeName: 'n',
    benchmark: 'keys-1.0',
    role: 'worker',
    level: 2,
    exclude: [],
    benchmarks: [bench],
  }).report.checks;
  t.equal(checks[0]?.status, 'SKIP');
  t.match(checks[0]?.skipReason, /constructor is not running/);
});
