import { execFileSync } from 'node:child_process';
import { chmodSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { scanNode } from '../../agent/cis/index.js';
import { buildExampleNodes } from '../../examples/nodes.js';
import { tempDir } from '../fixtures/tmp.js';

// A FIFO, a device or a socket where the kubelet's config file or kubeconfig should be is no file a kubelet can use,
// and no CIS file check can pass on it: the permission and ownership checks of those paths (4.1.5, 4.1.6, 4.1.9,
// 4.1.10) read the special file's own mode and owner, so a root-owned FIFO of mode 600 at /var/lib/kubelet/config.yaml
// passed both. Each is a FAIL naming what is there, and reading it never blocks.

const scan = (root: string) =>
  scanNode({ hostRoot: root, benchmark: 'cis-1.12', role: 'auto', level: 2, exclude: [], nodeName: 'n' }).report;

t.test('a FIFO, a device or a socket at a checked file path fails the file checks, with the reason', async (t) => {
  const root = buildExampleNodes(tempDir(t)).roots['worker-hardened'];
  const config = join(root, 'var/lib/kubelet/config.yaml');
  const kubeconfig = join(root, 'etc/kubernetes/kubelet.conf');
  const before = scan(root);
  const kinds: [string, () => void, RegExp][] = [
    ['a FIFO', () => execFileSync('mkfifo', ['-m', '600', config]), /FIFO/],
    ['a socket', () => {}, /socket/],
  ];
  if (process.getuid?.() === 0)
    kinds.push(['a character device', () => execFileSync('mknod', ['-m', '600', config, 'c', '1', '3']), /device/]);
  for (const [what, make, named] of kinds) {
    rmSync(config, { force: true });
    let server: ReturnType<typeof createServer> | undefined;
    if (what === 'a socket') {
      server = createServer();
      await new Promise<void>((resolve) => server!.listen(config, resolve));
      chmodSync(config, 0o600);
    } else make();
    const after = scan(root);
    for (const id of ['4.1.9', '4.1.10']) {
      const check = after.checks.find((c) => c.id === id);
      t.equal(
        check?.status,
        'FAIL',
        `${what} at the --config path: ${id} fails (was ${before.checks.find((c) => c.id === id)?.status}, now ${check?.status}: ${check?.actual})`,
      );
      t.match(check?.actual, named, `${id} says what is there: ${check?.actual}`);
    }
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
  // The kubeconfig too.
  rmSync(kubeconfig);
  execFileSync('mkfifo', ['-m', '600', kubeconfig]);
  const fifoKubeconfig = scan(root);
  for (const id of ['4.1.5', '4.1.6'])
    t.equal(fifoKubeconfig.checks.find((c) => c.id === id)?.status, 'FAIL', `a FIFO kubeconfig: ${id} fails`);
  // A directory where a directory is expected (the PKI directory) is still judged by its mode and owner.
  t.equal(before.checks.find((c) => c.id === '4.1.9')?.status, 'PASS', 'the hardened node passes 4.1.9 as built');
});
