import { pino } from 'pino';
import t from 'tap';
import { ResourceWatch, type WatchEventType } from '../../aggregator/kube/watch.js';
import { KubeClient, kubeconfigConnection } from '../../common/kube-client.js';
import { startFakeApiServer } from '../fixtures/fake-apiserver.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

// A watch whose connection dies without a FIN or RST (a partitioned API server, a NAT that forgot the flow) sends
// nothing more, and TCP alone notices after hours: the watcher's copy of the cluster would stay as it was, and the
// network-access evidence with it. The fake API server (test/fixtures/fake-apiserver.ts; there is no API server here)
// holds a watch open and silent, as such a connection looks; with a 1 s timeoutSeconds and 200 ms of grace the
// watcher must give it up and watch again, and the new watch must deliver.
t.test('a watch silent past timeoutSeconds plus the grace is watched again, and the new one delivers', async (t) => {
  const api = await startFakeApiServer(t, tempDir(t));
  const path = '/api/v1/namespaces';
  api.lists.set(path, [{ metadata: { name: 'a', resourceVersion: '1' } }]);
  const kube = new KubeClient(kubeconfigConnection(api.kubeconfig));
  t.teardown(() => kube.close());
  const events: [WatchEventType, string][] = [];
  const watch = new ResourceWatch({
    kube,
    path,
    log: pino({ level: 'silent' }),
    watchTimeoutSeconds: 1,
    watchIdleGraceMs: 200,
    onEvent: (type, obj) => events.push([type, obj.metadata.name]),
  });
  watch.start();
  t.teardown(() => watch.stop());
  const watches = () => api.calls.filter((c) => c.path.startsWith(`${path}?`) && c.path.includes('watch=1')).length;
  await until(
    () => watches() >= 2,
    'a second watch after the first went silent',
    15_000,
    50,
    () => JSON.stringify(api.calls),
  );
  t.same(events[0], ['SYNC', 'a'], 'the list before');
  api.emitTo(path, 'ADDED', { metadata: { name: 'b' } });
  await until(() => events.some(([type, name]) => type === 'ADDED' && name === 'b'), 'the new watch delivers', 15_000);
  t.ok(
    watch.snapshot().some((o) => o.metadata.name === 'b'),
    'and the copy has it',
  );
});
