import t from 'tap';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { reportOf } from '../fixtures/reports.js';
import { launch, openPage, show, skip } from './browser.js';
import { helloFields } from '../fixtures/node-hello.js';

// 5,000 nodes: the node table reads one page of them from the API (filtered, sorted and paged there), never the whole
// list, so the page stays as light as with three.
const NODES = 5000;

t.test('the node table on 5,000 nodes reads one page at a time', { skip }, async (t) => {
  const agg = await startTestAggregator(t);
  const hello = helloFields({ kubeletVersion: 'v1.32.1', agentVersion: '0.1.0' });
  const names = Array.from({ length: NODES }, (_, i) => `node-${String(i).padStart(4, '0')}`);
  await Promise.all(
    names.map(async (name, i) => {
      await agg.store.recordHello({ name, ...hello }, Date.now());
      await agg.store.recordBenchmarkRun(
        name,
        'b',
        1,
        reportOf(name, { '4.1.1': i % 3 === 0 ? 'FAIL' : 'PASS', '4.1.2': i % 5 === 0 ? 'FAIL' : 'PASS' }),
        2000,
      );
    }),
  );
  const browser = await launch(t);
  const { page, errors } = await openPage(browser);
  const nodeReplies: { url: string; bytes: number }[] = [];
  page.on('response', async (res) => {
    if (new URL(res.url()).pathname === '/api/v1/nodes')
      nodeReplies.push({ url: res.url(), bytes: (await res.body()).length });
  });
  const base = `http://127.0.0.1:${agg.httpPort}/ui/`;
  await show(page, base, '#/nodes?rating=low&sort=name');
  // Every third node fails 4.1.1, every fifth 4.1.2: failing both is 0%, low (one of two is 50%, medium).
  const expected = names.filter((_, i) => i % 3 === 0 && i % 5 === 0).length;
  t.match(await page.textContent('main [role=status]'), `${expected} nodes match.`, 'the total of the filter');
  t.equal(await page.locator('[data-testid=nodes-table] tbody tr').count(), 50, 'one page of 50 rows');
  await show(page, base, '#/nodes?sort=name&page=100');
  t.match(await page.textContent('main nav.pager'), 'Page 100 of 100', 'the last of 100 pages');
  t.equal(
    await page.locator('[data-testid=nodes-table] tbody tr td:first-child').first().textContent(),
    'node-4950',
    'page 100 starts at the 4,951st node by name',
  );
  t.ok(nodeReplies.length >= 2, 'the pages asked the API');
  for (const r of nodeReplies) {
    t.match(r.url, /[?&]limit=50(&|$)/, 'each asked for one page');
    t.ok(r.bytes < 30_000, `and got one page (${r.bytes} bytes), not 5,000 nodes`);
  }
  t.same(errors, [], 'no console error');
});
