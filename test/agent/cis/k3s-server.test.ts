import { chownSync } from 'node:fs';
import t from 'tap';
import { scanNode } from '../../../agent/cis/index.js';
import { NodeRootBuilder } from '../../../examples/node-root.js';
import type { CheckResult } from '../../../common/scan-report.js';
import { buildK3sServer, K3S_EMBEDDED_ETCD_CONFIG } from '../../fixtures/distro-nodes.js';
import { tempDir } from '../../fixtures/tmp.js';

/*
 * k3s servers (issue 14): their etcd and their kubelet's drop-ins. k3s runs etcd inside its own process from the
 * config file it writes to /var/lib/rancher/k3s/server/db/etcd/config (test/fixtures/distro-nodes.ts cites the k3s
 * source), or runs without etcd (SQLite through kine). Every verdict below is worked out by hand from the fixture's
 * files.
 */

function scan(root: string, benchmark = 'cis-1.12'): CheckResult[] {
  return scanNode({ hostRoot: root, nodeName: 'n1', benchmark, role: 'auto', level: 2, exclude: [] }).report.checks;
}
const check = (checks: CheckResult[], id: string) => checks.find((c) => c.id === id) as CheckResult;

const CONFIG = '/var/lib/rancher/k3s/server/db/etcd/config';
const DATA_DIR = '/var/lib/rancher/k3s/server/db/etcd';

t.test('k3s with embedded etcd: section 2 is judged on the etcd config file k3s writes', async (t) => {
  const b = buildK3sServer(new NodeRootBuilder(`${tempDir(t)}/k3s-etcd`), { embeddedEtcd: K3S_EMBEDDED_ETCD_CONFIG });
  for (const bench of ['cis-1.9', 'cis-1.10', 'cis-1.11', 'cis-1.12']) {
    const checks = scan(b.root, bench);
    const expected: [string, string][] = [
      // client-transport-security cert-file and key-file
      [
        '2.1',
        '/var/lib/rancher/k3s/server/tls/etcd/server-client.crt; /var/lib/rancher/k3s/server/tls/etcd/server-client.key',
      ],
      ['2.2', 'true'], // client-transport-security.client-cert-auth: true
      ['2.3', 'false'], // auto-tls not in the file: etcd's default false
      [
        '2.4',
        '/var/lib/rancher/k3s/server/tls/etcd/peer-server-client.crt; /var/lib/rancher/k3s/server/tls/etcd/peer-server-client.key',
      ],
      ['2.5', 'true'], // peer-transport-security.client-cert-auth: true
      ['2.6', 'false'], // peer auto-tls not in the file: default false
      ['2.7', '/var/lib/rancher/k3s/server/tls/etcd/server-ca.crt'], // client trusted-ca-file
    ];
    for (const [id, actual] of expected) {
      const c = check(checks, id);
      t.equal(c.status, 'PASS', `${bench} ${id}: ${c.skipReason ?? c.evidence}`);
      t.equal(c.actual, actual, `${bench} ${id}`);
      t.match(c.evidence, `${CONFIG} (etcd embedded in k3s server pid 1201)`, `${bench} ${id}`);
    }
    // 1.1.11: the data directory the file names, 0700 as k3s creates it.
    const dataMode = check(checks, '1.1.11');
    t.equal(dataMode.status, 'PASS', `${bench} 1.1.11`);
    t.equal(dataMode.actual, `${DATA_DIR}: 700`);
    t.match(dataMode.evidence, `--data-dir in ${CONFIG}`);
    // 1.1.12: root:root, as k3s runs etcd as root: there is no etcd user to own it.
    const owner = check(checks, '1.1.12');
    t.equal(owner.status, 'SKIP', `${bench} 1.1.12`);
    t.match(owner.skipReason, 'runs inside k3s server pid 1201 as root, with no etcd user of its own');
    // 1.1.7/1.1.8: no etcd pod specification file, and the reason says why.
    for (const id of ['1.1.7', '1.1.8']) {
      const c = check(checks, id);
      t.equal(c.status, 'SKIP', `${bench} ${id}`);
      t.match(c.skipReason, 'etcd runs inside k3s server pid 1201, not as a static pod', `${bench} ${id}`);
    }
    // The API server's etcd client flags: k3s's built-in client certificate, key and CA for embedded etcd.
    t.equal(check(checks, '1.2.26').status, 'PASS', `${bench} etcd-cafile`);
  }
});

t.test('k3s with embedded etcd: a weakened etcd config FAILs, a data dir owned by someone else FAILs', async (t) => {
  const weak = K3S_EMBEDDED_ETCD_CONFIG.replace(
    'client-transport-security:\n  cert-file: /var/lib/rancher/k3s/server/tls/etcd/server-client.crt\n  client-cert-auth: true\n',
    'client-transport-security:\n  auto-tls: true\n  cert-file: /var/lib/rancher/k3s/server/tls/etcd/server-client.crt\n  client-cert-auth: false\n',
  );
  t.not(weak, K3S_EMBEDDED_ETCD_CONFIG, 'the fixture was changed');
  const b = buildK3sServer(new NodeRootBuilder(`${tempDir(t)}/k3s-etcd-weak`), { embeddedEtcd: weak });
  chownSync(b.path(DATA_DIR), 1000, 1000);
  const checks = scan(b.root);
  t.equal(check(checks, '2.2').status, 'FAIL');
  t.equal(check(checks, '2.2').actual, 'false');
  t.equal(check(checks, '2.3').status, 'FAIL');
  t.equal(check(checks, '2.3').actual, 'true');
  t.equal(check(checks, '2.5').status, 'PASS', 'the peer section is unchanged');
  const owner = check(checks, '1.1.12');
  t.equal(owner.status, 'FAIL', 'uid 1000 is neither etcd nor the root k3s runs etcd as');
  t.equal(owner.actual, `${DATA_DIR}: 1000:1000 (1000:1000)`);
});

t.test('k3s on SQLite (kine): etcd checks are not applicable, and say why', async (t) => {
  const b = buildK3sServer(new NodeRootBuilder(`${tempDir(t)}/k3s-kine`));
  const checks = scan(b.root);
  for (const id of ['2.1', '2.2', '2.3', '2.4', '2.5', '2.6', '2.7', '1.1.11', '1.1.12']) {
    const c = check(checks, id);
    t.equal(c.status, 'SKIP', id);
    t.match(c.skipReason, 'k3s server pid 1201 runs without embedded etcd', id);
  }
  // The API server talks to kine on a unix socket: its etcd TLS flags have nothing to apply to.
  for (const id of ['1.2.23', '1.2.26']) {
    const c = check(checks, id);
    t.equal(c.status, 'SKIP', id);
    t.match(c.skipReason, 'over the local socket --etcd-servers=unix://kine.sock', id);
  }
});

t.test('k3s with an external datastore: etcd checks are not applicable, and say why', async (t) => {
  const b = buildK3sServer(new NodeRootBuilder(`${tempDir(t)}/k3s-ext`), {
    extraArgs: ['--datastore-endpoint=postgres://k3s:secret@db.example:5432/k3s'],
  });
  const c = check(scan(b.root), '2.1');
  t.equal(c.status, 'SKIP');
  t.match(c.skipReason, 'keeps its data in the external datastore --datastore-endpoint names');
});

t.test(
  "k3s with kubelet drop-ins: the user's drop-in after k3s's defaults counts, as the kubelet merges them",
  async (t) => {
    const b = buildK3sServer(new NodeRootBuilder(`${tempDir(t)}/k3s-dropins`), { kubeletDropIn: true });
    const DIR = '/var/lib/rancher/k3s/agent/etc/kubelet.conf.d';
    let checks = scan(b.root);
    // k3s's defaults: anonymous auth off, webhook authorization, its client CA, 4h idle timeout.
    t.equal(check(checks, '4.2.1').status, 'PASS');
    t.equal(check(checks, '4.2.1').evidence, `${DIR}/00-k3s-defaults.conf`);
    t.equal(check(checks, '4.2.3').actual, '/var/lib/rancher/k3s/agent/client-ca.crt');
    t.equal(check(checks, '4.2.4').actual, '0', 'k3s passes --read-only-port=0');
    // A drop-in of the user's that turns anonymous auth on wins over k3s's defaults (lexical order): FAIL.
    b.file(
      `${DIR}/50-anonymous.conf`,
      'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nauthentication:\n  anonymous:\n    enabled: true\n',
      { mode: 0o600 },
    );
    checks = scan(b.root);
    t.equal(check(checks, '4.2.1').status, 'FAIL');
    t.equal(check(checks, '4.2.1').actual, 'true');
    t.equal(check(checks, '4.2.1').evidence, `${DIR}/50-anonymous.conf`);
    // 4.1.9: the drop-ins are the kubelet's config files here, 0600 root:root.
    t.equal(check(checks, '4.1.9').status, 'PASS');
  },
);
