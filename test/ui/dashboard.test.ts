import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { eventList, policyAuditEvent } from '../fixtures/audit.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';
import { launch, openPage, rendered, SCREENSHOTS, show, skip, unreachedByTab } from './browser.js';

// The compliance dashboard (issue 17) in a real headless Chromium against the running demo (`npm start`'s program):
// every page loads without a console error and shows the demo's nodes, scores, reports, network access and policy
// changes; a download saves the file the API serves; Tab reaches every control. Screenshots of every page are written
// to .tap/ui-screenshots/ (or $VERDICT_UI_SCREENSHOTS) for a person to look at.
const root = packageRoot();

/** The demo on free loopback ports; its dashboard URL as it prints it. */
async function startDemo(t: Test): Promise<string> {
  const dir = tempDir(t, 'verdict-ui-demo-');
  const demo = spawn(
    process.execPath,
    [join(root, 'dist/examples/demo.js'), '--http-port', '0', '--grpc-port', '0', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  demo.stdout.on('data', (b: Buffer) => (out += b.toString()));
  demo.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise((r) => demo.once('exit', r));
  t.teardown(async () => {
    demo.kill('SIGTERM');
    await exited;
  });
  await until(() => out.includes('Verdict is running') || demo.exitCode !== null, 'the demo to start', 120_000, 200);
  const url = /dashboard {2}(http:\/\/127\.0\.0\.1:\d+\/ui\/)/.exec(out)?.[1];
  if (!url) throw new Error(`the demo printed no dashboard URL:\n${out}`);
  return url;
}

t.test('the dashboard on the running demo', { skip }, async (t) => {
  const base = await startDemo(t);
  const api = base.replace(/\/ui\/$/, '');
  const get = async <T>(path: string) => (await (await fetch(`${api}${path}`)).json()) as T;
  // Two policy changes through the audit webhook: one in the protected namespace payments (a tamper alert), one not.
  const minuteAgo = new Date(Date.now() - 60_000).toISOString();
  const posted = await fetch(`${api}/api/v1/audit/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(
      eventList([
        policyAuditEvent({ id: 'ui-1', at: minuteAgo, namespace: 'payments', name: 'allow-api', user: 'mallory' }),
        policyAuditEvent({
          id: 'ui-2',
          at: minuteAgo,
          verb: 'create',
          namespace: 'shop',
          name: 'allow-cart',
          user: 'alice',
          spec: { podSelector: { matchLabels: { app: 'cart' } } },
        }),
      ]),
    ),
  });
  t.equal(posted.status, 200, 'the audit webhook took the two changes');
  mkdirSync(SCREENSHOTS, { recursive: true });
  const browser = await launch(t);
  const { page, errors } = await openPage(browser);

  const redirected = await page.goto(base.replace(/ui\/$/, ''));
  t.match(page.url(), /\/ui\/$/, '/ redirects to /ui/');
  t.equal(redirected?.status(), 200);

  const summary = await get<{ scorePercent: number }>('/api/v1/cis/summary');
  await show(page, base, '#/');
  t.equal(
    await page.textContent('[data-testid=cluster-score]'),
    `${Math.round(summary.scorePercent * 10) / 10}%`,
    'the overview shows the cluster score',
  );
  t.equal(await page.textContent('[data-testid=agents-connected]'), '3 of 3', 'three agents connected');
  t.equal(await page.locator('svg.bars g[data-label]').count(), 3, 'the band chart has three bars');
  t.match(await page.textContent('main'), /daily-network-access/, 'the last report runs include the demo run');
  t.match(await page.textContent('main'), /1 tamper alert in the last 7 days/, 'open findings count the tamper alert');
  await page.screenshot({ path: join(SCREENSHOTS, 'overview.png'), fullPage: true });

  const nodes = await get<{ items: { name: string; scorePercent: number }[] }>('/api/v1/nodes');
  await show(page, base, '#/nodes');
  const rows = await page.locator('[data-testid=nodes-table] tbody tr').allTextContents();
  t.same(rows.length, 3, 'the node table shows the three demo nodes');
  for (const n of nodes.items)
    t.ok(
      rows.some((r) => r.includes(n.name) && r.includes(`${n.scorePercent}%`)),
      `${n.name} is listed with ${n.scorePercent}%`,
    );
  await page.getByRole('button', { name: 'Score' }).click();
  await page.waitForURL(/sort=score/);
  await rendered(page);
  const byScore = await page.locator('[data-testid=nodes-table] tbody tr td:first-child').allTextContents();
  t.same(
    byScore,
    [...nodes.items].sort((a, b) => a.scorePercent - b.scorePercent).map((n) => n.name),
    'sorted by score by the API',
  );
  await page.screenshot({ path: join(SCREENSHOTS, 'nodes.png'), fullPage: true });

  const weak = await get<{ summary: { scorePercent: number }; checks: { id: string; status: string }[] }>(
    '/api/v1/nodes/worker-weak/cis',
  );
  await show(page, base, '#/nodes/worker-weak');
  t.equal(await page.textContent('[data-testid=node-score]'), `${weak.summary.scorePercent}%`, "the node's score");
  t.equal(await page.locator('tr[data-check]').count(), weak.checks.length, 'every check of the scan is listed');
  const failed = weak.checks.find((c) => c.status === 'FAIL');
  t.ok(failed, 'the weak worker fails a check');
  t.match(await page.textContent(`tr[data-check="${failed?.id}"]`), /FAIL/, 'with its status');
  t.ok(await page.locator('svg.line path.score').count(), 'the score history is drawn');
  await page.screenshot({ path: join(SCREENSHOTS, 'node.png'), fullPage: true });

  await show(page, base, '#/reports');
  const reportRows = await page.locator('[data-testid=reports-table] tbody tr').allTextContents();
  for (const name of ['daily-network-access', 'policy-changes', 'weekly-cis'])
    t.ok(
      reportRows.some((r) => r.startsWith(name)),
      `report ${name} is listed`,
    );
  await page.screenshot({ path: join(SCREENSHOTS, 'reports.png'), fullPage: true });

  const runs = await get<{ items: { id: string; status: string }[] }>('/api/v1/reports/daily-network-access/runs');
  const run = runs.items.find((r) => r.status === 'succeeded');
  t.ok(run, 'the demo ran the network-access report');
  await show(page, base, `#/reports/daily-network-access/runs/${run?.id}`);
  t.equal(await page.locator('svg.bars').count(), 2, 'the run page charts ingress and egress protection');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download endpoints.csv' }).click(),
  ]);
  const saved = readFileSync((await download.path()) as string, 'utf8');
  const served = await (
    await fetch(`${api}/api/v1/reports/daily-network-access/runs/${run?.id}?format=csv&file=endpoints.csv`)
  ).text();
  t.equal(saved, served, 'the downloaded endpoints.csv is the file the API serves');
  t.match(
    download.suggestedFilename(),
    /^daily-network-access-\d{4}-\d\d-\d\d-endpoints\.csv$/,
    'named as the API names it',
  );
  t.match(saved.split('\n')[0], /endpoint/i, 'a CSV with its header');
  await page.waitForSelector('[data-testid=download-status]:has-text("Saved")');
  await page.screenshot({ path: join(SCREENSHOTS, 'run.png'), fullPage: true });

  await show(page, base, '#/network');
  t.match(
    await page.textContent('[data-testid=endpoints-table]'),
    /shop\/frontend/,
    'network access lists the demo endpoints',
  );
  const findings = await get<{ items: unknown[] }>('/api/v1/network-access/findings');
  t.equal(
    await page.locator('[data-testid=findings-table] tbody tr:not(:has(td.empty))').count(),
    findings.items.length,
    'configured-vs-observed findings are listed as the API gives them',
  );
  await page.screenshot({ path: join(SCREENSHOTS, 'network.png'), fullPage: true });
  await show(page, base, '#/network?flag=ingressFromInternet');
  const exposed = await page
    .locator('[data-testid=endpoints-table] tbody tr')
    .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-endpoint')));
  type Access = { endpoints: { endpoint: string; ingressFromInternet: boolean }[] };
  const everyEndpoint = (await get<Access>('/api/v1/network-access')).endpoints;
  const fromInternet = everyEndpoint.filter((e) => e.ingressFromInternet).map((e) => e.endpoint);
  t.ok(fromInternet.length > 0 && fromInternet.length < everyEndpoint.length, 'the demo has endpoints on both sides');
  t.same(
    [...exposed].sort(),
    fromInternet.sort(),
    'the internet filter leaves the endpoints reached from the internet, and only those',
  );

  await show(page, base, '#/audit');
  const changes = page.locator('[data-testid=audit-timeline] li.change');
  t.equal(await changes.count(), 2, 'the timeline shows both policy changes');
  t.match(
    await page.textContent('li.change.tamper'),
    /payments\/allow-api[\s\S]*mallory[\s\S]*tamper alert/,
    'the payments change is a highlighted tamper alert',
  );
  t.match(await page.textContent('li.change:not(.tamper)'), /shop\/allow-cart[\s\S]*alice/, 'the other is not');
  await page.locator('li.change:not(.tamper) summary').click();
  t.match(await page.textContent('li.change:not(.tamper) table.diff'), /matchLabels|podSelector/, 'with its diff');
  await page.screenshot({ path: join(SCREENSHOTS, 'audit.png'), fullPage: true });

  t.same(errors, [], 'no page logged a console error');

  await t.test('Tab reaches every control of every page', async (t) => {
    for (const hash of [
      '#/',
      '#/nodes',
      '#/nodes/worker-weak',
      '#/reports',
      `#/reports/daily-network-access/runs/${run?.id}`,
      '#/network',
      '#/audit',
    ]) {
      await show(page, base, hash);
      t.same(await unreachedByTab(page), [], `${hash}: every control is reached with Tab`);
    }
    await show(page, base, '#/nodes');
    await page.getByRole('button', { name: 'Failed' }).focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(/sort=fail/);
    t.pass('a sort button works from the keyboard');
  });

  await t.test('dark mode follows prefers-color-scheme', async (t) => {
    const dark = await openPage(browser, { colorScheme: 'dark' });
    await show(dark.page, base, '#/');
    const bg = await dark.page.evaluate<string>('getComputedStyle(document.body).backgroundColor');
    t.equal(bg, 'rgb(20, 23, 27)', 'the dark background');
    await dark.page.screenshot({ path: join(SCREENSHOTS, 'overview-dark.png'), fullPage: true });
    t.same(dark.errors, [], 'no console error');
  });
});
