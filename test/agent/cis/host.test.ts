import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { HostView } from '../../../agent/cis/host.js';
import { NodeRootBuilder } from '../../../examples/node-root.js';
import { tempDir } from '../../fixtures/tmp.js';

t.test('paths resolve inside the host root and report mode and owner', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`).file('/etc/kubernetes/kubelet.conf', 'x', {
    mode: 0o640,
    uid: 1234,
    gid: 5678,
  });
  const st = new HostView(b.root).stat('/etc/kubernetes/kubelet.conf');
  t.equal(st.kind, 'found');
  if (st.kind !== 'found') return;
  t.equal(st.facts.mode, 0o640);
  t.equal(st.facts.uid, b.ownersFaked ? process.getuid!() : 1234);
  t.equal(st.facts.gid, b.ownersFaked ? process.getgid!() : 5678);
});

t.test("an absolute link target is the node's own path, resolved under the host root", async (t) => {
  const dir = tempDir(t);
  const b = new NodeRootBuilder(`${dir}/node`)
    .file('/etc/real.conf', 'inside', { mode: 0o600 })
    .symlink('/etc/kubernetes/kubelet.conf', '/etc/real.conf');
  writeFileSync(`${dir}/real.conf`, 'OUTSIDE THE HOST ROOT');
  const r = new HostView(b.root).readText('/etc/kubernetes/kubelet.conf');
  t.equal(r.kind, 'found');
  if (r.kind === 'found') {
    t.equal(r.text, 'inside');
    t.equal(r.facts.resolvedPath, '/etc/real.conf');
  }
});

t.test('a relative link that climbs above the host root is refused with the reason', async (t) => {
  const dir = tempDir(t);
  writeFileSync(`${dir}/secret`, 'host secret');
  const b = new NodeRootBuilder(`${dir}/node`).symlink('/etc/kubernetes/kubelet.conf', '../../../secret');
  const view = new HostView(b.root);
  for (const r of [view.stat('/etc/kubernetes/kubelet.conf'), view.readText('/etc/kubernetes/kubelet.conf')]) {
    t.equal(r.kind, 'error');
    if (r.kind === 'error') t.match(r.reason, /climbs above the host root/);
  }
});

t.test('.. in a requested path cannot leave the root either', async (t) => {
  const dir = tempDir(t);
  writeFileSync(`${dir}/secret`, 'host secret');
  const b = new NodeRootBuilder(`${dir}/node`);
  const r = new HostView(b.root).readText('/etc/../../secret');
  t.not(r.kind, 'found');
});

t.test('a link loop fails instead of hanging', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`).symlink('/etc/a', '/etc/b').symlink('/etc/b', '/etc/a');
  const r = new HostView(b.root).stat('/etc/a');
  t.equal(r.kind, 'error');
  if (r.kind === 'error') t.match(r.reason, /too many levels/);
});

t.test('a FIFO is refused without blocking, and so is a directory', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`).dir('/etc/kubernetes');
  execFileSync('mkfifo', [b.path('/etc/kubernetes/kubelet.conf')]);
  const view = new HostView(b.root);
  const fifo = view.readText('/etc/kubernetes/kubelet.conf');
  t.equal(fifo.kind, 'error');
  if (fifo.kind === 'error') t.match(fifo.reason, /not a regular file/);
  const dir = view.readText('/etc/kubernetes');
  t.equal(dir.kind, 'error');
});

t.test('files over the read cap are refused with their size', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`).file('/var/lib/kubelet/config.yaml', 'x'.repeat(2048));
  const r = new HostView(b.root, 1024).readText('/var/lib/kubelet/config.yaml');
  t.equal(r.kind, 'error');
  if (r.kind === 'error') t.match(r.reason, /2048 bytes, over the 1024-byte read limit/);
});

t.test('a missing file is absent, not an error', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  const view = new HostView(b.root);
  t.equal(view.stat('/etc/kubernetes/kubelet.conf').kind, 'absent');
  t.equal(view.readText('/nope/deeper/file').kind, 'absent');
  t.same(view.list('/nope'), []);
});

t.test('glob matches the last path component only', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`)
    .file('/etc/kubernetes/pki/ca.crt', '')
    .file('/etc/kubernetes/pki/ca.key', '')
    .file('/etc/kubernetes/pki/apiserver.crt', '');
  t.same(new HostView(b.root).glob('/etc/kubernetes/pki/*.crt'), [
    '/etc/kubernetes/pki/apiserver.crt',
    '/etc/kubernetes/pki/ca.crt',
  ]);
});

// `verdict-agent scan --host-root /` on the node itself: every path is inside `/`. The check used to ask that a path
// start with `${root}/`, which for `/` is `//`, so every file read as "resolves outside the host root".
t.test('a host root of / reads files and lists directories anywhere on this machine', async (t) => {
  const dir = tempDir(t);
  writeFileSync(`${dir}/kubelet.conf`, 'on the node');
  const view = new HostView('/');
  const r = view.readText(`${dir}/kubelet.conf`);
  t.equal(r.kind, 'found', r.kind === 'error' ? r.reason : '');
  if (r.kind === 'found') t.equal(r.text, 'on the node');
  t.same(view.list(dir), ['kubelet.conf']);
  t.ok(view.list('/proc').includes(String(process.pid)), "this process's /proc entry is listed");
  const comm = view.readText(`/proc/${process.pid}/comm`);
  t.equal(comm.kind, 'found', 'a /proc file reads');
  t.equal(view.readText('/../../etc/../..').kind, 'error', 'and .. above / still goes nowhere but / (a directory)');
});
