import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';
import { launch, openPage, SCREENSHOTS, show, skip } from './browser.js';

// The dashboard has the API's access control: its pages are static and public, and what a reader sees is what the
// API lets their bearer token read. A token limited to one report sees that report and nothing else.
const AUDITOR = 'auditor-weekly-cis-0123456789';

t.test('a reader token limited to one report sees only that report', { skip }, async (t) => {
  const dir = tempDir(t, 'verdict-ui-access-');
  const tokens = join(dir, 'tokens.yaml');
  writeFileSync(
    tokens,
    `tokens:\n- {user: auditor, token: ${AUDITOR}, verbs: [get, list], reports: [weekly-cis], resources: [globalreports]}\n`,
  );
  const agg = await startTestAggregator(t, {
    reportsDir: join(packageRoot(), 'examples', 'reports'),
    httpTokensFile: tokens,
  });
  const base = `http://127.0.0.1:${agg.httpPort}/ui/`;
  const api = (path: string, token?: string) =>
    fetch(`http://127.0.0.1:${agg.httpPort}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  t.equal((await api('/ui/')).status, 200, 'the page itself needs no token: it holds no data');
  t.equal((await api('/api/v1/reports')).status, 401, 'the API does');

  const browser = await launch(t);
  const { page, errors } = await openPage(browser);
  await show(page, base, '#/reports');
  t.match(await page.textContent('main [role=alert]'), /Sign-in needed/, 'without a token the page asks for one');

  // Pasted and sent from the keyboard.
  await page.getByLabel('Bearer token').fill(AUDITOR);
  await page.getByLabel('Bearer token').press('Enter');
  await page.locator('[data-testid=reports-table]').waitFor();
  const listed = await page.locator('[data-testid=reports-table] tbody tr td:first-child').allTextContents();
  t.same(listed, ['weekly-cis'], 'the list holds the one report the token may read, of the three configured');
  t.equal(await page.getByLabel('Bearer token').inputValue(), '', 'the field is emptied: the token is not shown');
  await page.screenshot({ path: join(SCREENSHOTS, 'reports-one-report-token.png'), fullPage: true });

  await show(page, base, '#/reports/weekly-cis');
  await page.locator('[data-testid=runs-table]').waitFor();
  t.pass("the report's own runs are readable");
  await show(page, base, '#/reports/daily-network-access');
  t.match(
    await page.textContent('main [role=alert]'),
    /may not read this: user auditor may not get globalreports "daily-network-access"/,
    'another report is refused with the reason',
  );
  await show(page, base, '#/nodes');
  t.match(await page.textContent('main [role=alert]'), /may not read this/, 'node data needs its own grant');

  // The token lives in this tab's sessionStorage: a reload keeps it, Forget drops it.
  await page.reload();
  await show(page, base, '#/reports');
  await page.locator('[data-testid=reports-table]').waitFor();
  t.same(
    await page.locator('[data-testid=reports-table] tbody tr td:first-child').allTextContents(),
    ['weekly-cis'],
    'a reload keeps the token for this tab',
  );
  await page.getByRole('button', { name: 'Forget' }).click();
  await page.locator('main [role=alert]').waitFor();
  t.match(await page.textContent('main [role=alert]'), /Sign-in needed/, 'Forget drops it');
  t.same(
    errors.filter((e) => e.startsWith('exception')),
    [],
    'no script error',
  );
});
