import { chmodSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { HostView } from '../../../agent/cis/host.js';
import { NodeRootBuilder } from '../../../examples/node-root.js';
import { tempDir } from '../../fixtures/tmp.js';

t.test('a snapshot view (one scan) keeps its first look at a path; a polling view sees every change', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`).file('/etc/kubernetes/kubelet.conf', 'x', { mode: 0o600 });
  const snapshot = HostView.snapshot(b.root);
  const polling = new HostView(b.root);
  const mode = (v: HostView) => {
    const r = v.stat('/etc/kubernetes/kubelet.conf');
    return r.kind === 'found' ? r.facts.mode : r.kind;
  };
  t.equal(mode(snapshot), 0o600);
  t.equal(mode(polling), 0o600);
  chmodSync(b.path('/etc/kubernetes/kubelet.conf'), 0o644);
  t.equal(mode(snapshot), 0o600, 'the scan judges the node as it first saw it');
  t.equal(mode(polling), 0o644, 'ChangeWatch sees the chmod');
  t.equal(mode(HostView.snapshot(b.root)), 0o644, 'the next scan sees it');
});

t.test('text is read whole: a 200 kB file, an empty one, and a file rewritten larger between two views', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  const big = 'a: 1\n'.repeat(40_000); // 200,000 bytes
  b.file('/etc/big.yaml', big);
  b.file('/etc/empty', '');
  const view = HostView.snapshot(b.root);
  const r = view.readText('/etc/big.yaml');
  t.equal(r.kind === 'found' ? r.text : r.kind, big);
  const e = view.readText('/etc/empty');
  t.equal(e.kind === 'found' ? e.text : e.kind, '');
  writeFileSync(b.path('/etc/big.yaml'), big + 'b'.repeat(5000));
  const grown = new HostView(b.root).readText('/etc/big.yaml');
  t.equal(grown.kind === 'found' ? grown.text.length : grown.kind, 205_000);
});
