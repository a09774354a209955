import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { parseRunArgs, startAgent } from '../../agent/run.js';
import { NodeRootBuilder } from '../../examples/node-root.js';
import { buildHardenedWorker } from '../../examples/nodes.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

// There is no Kubernetes API server to install here: this in-process HTTP server
// answers GET /api/v1/nodes/{name} and GET /api/v1/nodes/{name}/proxy/configz with
// the response shapes of the Kubernetes API documentation (a v1 Node; the
// kubelet's configz wrapper {"kubeletconfig": KubeletConfiguration}).
function fakeApiServer(t: Test, opts: { configz: 'ok' | 'forbidden' }) {
  const seen: { path: string; auth?: string }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push({ path: req.url ?? '', auth: req.headers.authorization });
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== 'Bearer test-sa-token')
      return send(401, {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        message: 'Unauthorized',
        reason: 'Unauthorized',
        code: 401,
      });
    if (req.url === '/api/v1/nodes/cz-1') {
      return send(200, {
        kind: 'Node',
        apiVersion: 'v1',
        metadata: {
          name: 'cz-1',
          labels: { 'kubernetes.io/hostname': 'cz-1', 'topology.kubernetes.io/zone': 'eu-1a' },
        },
        status: { nodeInfo: { kubeletVersion: 'v1.31.5', kubeProxyVersion: 'v1.31.5', osImage: 'Ubuntu 24.04.1 LTS' } },
      });
    }
    if (req.url === '/api/v1/nodes/cz-1/proxy/configz') {
      if (opts.configz === 'forbidden') {
        return send(403, {
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          message:
            'nodes "cz-1" is forbidden: User "system:serviceaccount:verdict:agent" cannot get resource "nodes/proxy"',
          reason: 'Forbidden',
          details: { name: 'cz-1', kind: 'nodes' },
          code: 403,
        });
      }
      // What a running kubelet answers: defaults applied, zero values omitted (omitempty).
      return send(200, {
        kubeletconfig: {
          enableServer: true,
          staticPodPath: '/etc/kubernetes/manifests',
          authentication: {
            x509: { clientCAFile: '/etc/kubernetes/pki/ca.crt' },
            webhook: { enabled: true, cacheTTL: '2m0s' },
            anonymous: { enabled: false },
          },
          authorization: { mode: 'Webhook', webhook: { cacheAuthorizedTTL: '5m0s', cacheUnauthorizedTTL: '30s' } },
          readOnlyPort: 10255,
          streamingConnectionIdleTimeout: '4h0m0s',
          eventRecordQPS: 50,
          rotateCertificates: true,
          podPidsLimit: -1,
          makeIPTablesUtilChains: true,
        },
      });
    }
    send(404, {
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      message: 'not found',
      reason: 'NotFound',
      code: 404,
    });
  });
  return new Promise<{ port: number; seen: typeof seen }>((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      t.teardown(() => new Promise<void>((r) => server.close(() => r())));
      resolve({ port: (server.address() as { port: number }).port, seen });
    }),
  );
}

function kubeconfig(dir: string, port: number): string {
  const file = join(dir, 'kubeconfig');
  writeFileSync(
    file,
    `apiVersion: v1\nkind: Config\ncurrent-context: test\ncontexts:\n- name: test\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: "http://127.0.0.1:${port}"}\nusers:\n- name: u\n  user: {token: test-sa-token}\n`,
  );
  return file;
}

async function runAgentOnce(t: Test, configz: 'ok' | 'forbidden') {
  const dir = tempDir(t);
  const api = await fakeApiServer(t, { configz });
  const agg = await startTestAggregator(t);
  const b = new NodeRootBuilder(join(dir, 'node'));
  buildHardenedWorker(b);
  const agent = startAgent(
    parseRunArgs([
      '--aggregator',
      `127.0.0.1:${agg.grpcPort}`,
      '--host-root',
      b.root,
      '--node-name',
      'cz-1',
      '--kubelet-configz',
      '--kubeconfig',
      kubeconfig(dir, api.port),
    ]),
    pino({ level: 'silent' }),
  );
  t.teardown(() => agent.stop());
  const report = await until(() => agg.store.nodeReport('cz-1'), "the agent's run of cz-1 stored");
  return {
    report,
    node: (await agg.store.listNodes()).find((n) => n.name === 'cz-1')!,
    api,
  };
}

t.test(
  'with --kubelet-configz the live kubelet config is the source of truth, over the files on the node',
  async (t) => {
    const { report, node, api } = await runAgentOnce(t, 'ok');
    const ro = report.checks.find((c) => c.id === '4.2.4')!;
    t.equal(ro.status, 'FAIL', 'the files say readOnlyPort 0, the running kubelet says 10255');
    t.equal(ro.actual, '10255');
    t.match(ro.evidence, /kubelet configz via the API server/);
    const pk = report.checks.find((c) => c.id === '4.2.6')!;
    t.equal(pk.status, 'PASS');
    const seccomp = report.checks.find((c) => c.id === '4.2.14')!;
    t.equal(seccomp.actual, 'false', "a field configz omits is its zero value, not the file's");
    t.equal(node.kubeletVersion, 'v1.31.5', 'the Node object gives the kubelet version');
    t.equal(node.labels['topology.kubernetes.io/zone'], 'eu-1a', 'and the labels');
    t.equal(report.benchmark.id, 'cis-1.11', 'the benchmark follows the kubelet version');
    t.ok(
      api.seen.every((s) => s.auth === 'Bearer test-sa-token'),
      'every call carried the token',
    );
  },
);

t.test('when configz is forbidden, the agent falls back to the node files and says so', async (t) => {
  const { report, api } = await runAgentOnce(t, 'forbidden');
  const ro = report.checks.find((c) => c.id === '4.2.4')!;
  t.equal(ro.status, 'PASS');
  t.match(ro.evidence, /50-hardening\.conf/);
  t.ok(
    api.seen.some((s) => s.path.endsWith('/proxy/configz')),
    'configz was asked for',
  );
});
