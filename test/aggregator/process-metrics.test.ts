import { closeSync, openSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';
import t from 'tap';
import { HandleSampler, openFds, processMetrics, PROCESS_METRICS_PREFIX } from '../../aggregator/process-metrics.js';

// Issue 13: with 5,000 agents connected, prom-client's process collectors walked every socket at each scrape
// (listing /proc/self/fd, enumerating every handle). The aggregator counts descriptors through the kernel and samples
// the handle counts off the scrape's path; what it exports must stay what prom-client exports.

/** Each family's name, HELP, type and label names, as a registry answers them. */
async function shapes(registry: Registry) {
  const families = await registry.getMetricsAsJSON();
  return Object.fromEntries(
    families.map((f) => [
      f.name,
      { help: f.help, type: f.type, labels: [...new Set(f.values.flatMap((v) => Object.keys(v.labels)))].sort() },
    ]),
  );
}

const handlesOf = async (registry: Registry, type: string): Promise<number> => {
  const family = await registry.getSingleMetric(`${PROCESS_METRICS_PREFIX}nodejs_active_handles`)!.get();
  return family.values.find((v) => v.labels.type === type)?.value ?? 0;
};

// Servers stay open until every test is done: a closed one is still listed while libuv closes it.
const opened: Server[] = [];
t.teardown(() => Promise.all(opened.map((s) => new Promise((r) => s.close(r)))));

/** `n` more servers listening on loopback (n more 'Server' handles and 'TCPServerWrap' resources). */
async function listening(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const server = createServer();
    opened.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  }
}

t.test("the process metrics are prom-client's: names, HELP, types and labels", async (t) => {
  const ours = new Registry();
  processMetrics(ours);
  const theirs = new Registry();
  collectDefaultMetrics({ register: theirs, prefix: PROCESS_METRICS_PREFIX });
  // promtool rejects gauges named *_total: the aggregator never exported these three.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'])
    theirs.removeSingleMetric(`${PROCESS_METRICS_PREFIX}${name}`);
  t.strictSame(await shapes(ours), await shapes(theirs));
});

t.test(
  'process_open_fds counts the open descriptors, as listing /proc/self/fd does',
  { skip: process.platform !== 'linux' },
  async (t) => {
    const before = openFds();
    const opened = Array.from({ length: 25 }, () => openSync('/dev/null', 'r'));
    t.teardown(() => opened.forEach((fd) => closeSync(fd)));
    // The listing's own descriptor is not counted, as prom-client does not count it.
    t.equal(openFds(), readdirSync('/proc/self/fd').length - 1);
    t.equal(openFds(), before! + 25);
    const registry = new Registry();
    processMetrics(registry);
    const family = await registry.getSingleMetric(`${PROCESS_METRICS_PREFIX}process_open_fds`)!.get();
    t.equal(family.values[0]?.value, readdirSync('/proc/self/fd').length - 1);
  },
);

t.test('a scrape exports the handle counts sampled before it, and does not walk the handles itself', async (t) => {
  const registry = new Registry();
  processMetrics(registry);
  const before = await handlesOf(registry, 'Server');
  await listening(5);
  t.equal(await handlesOf(registry, 'Server'), before, 'the next scrape shows the sample its predecessor took');
});

t.test(
  'handle counts: a fresh sample is kept, an older one is replaced after the scrape, a stale one at once',
  async (t) => {
    let now = 1_000_000;
    const sampler = new HandleSampler(() => now);
    const first = sampler.counts().handles.get('Server') ?? 0;
    const firstResources = sampler.counts().resources.get('TCPServerWrap') ?? 0;
    await listening(3);
    now += 500;
    t.equal(sampler.counts().handles.get('Server') ?? 0, first, 'half a second on: the same sample');
    await new Promise((r) => setImmediate(r));
    t.equal(sampler.counts().handles.get('Server') ?? 0, first, 'nothing was sampled after it');
    now += 5_000;
    t.equal(sampler.counts().handles.get('Server') ?? 0, first, 'five seconds on: the sample kept is exported...');
    await new Promise((r) => setImmediate(r));
    t.equal(sampler.counts().handles.get('Server') ?? 0, first + 3, '...and a new one is taken after that scrape');
    t.equal(sampler.counts().resources.get('TCPServerWrap') ?? 0, firstResources + 3, 'resources are counted by type');
    await listening(2);
    now += 200_000;
    t.equal(sampler.counts().handles.get('Server') ?? 0, first + 5, 'a sample past two minutes is taken again at once');
  },
);

t.test(
  'handle counts: with no scrape a sample is taken in the background, and the first scrape exports it without walking',
  async (t) => {
    let now = 1_000_000;
    // A sample at start, then one every 300 ms while nothing asks: the next falls some 180 ms after the check below.
    const sampler = new HandleSampler(() => now, 300);
    const atStart = sampler.counts().handles.get('Server') ?? 0;
    await listening(3);
    now += 60_000;
    await new Promise((r) => setTimeout(r, 420));
    await listening(2);
    // The two servers opened since the last background sample are not there: this scrape walked no handle.
    t.equal(sampler.counts().handles.get('Server') ?? 0, atStart + 3, 'the background sample is exported');
  },
);
