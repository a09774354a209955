import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Test } from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { findChromium, skipUnlessFound } from '../fixtures/tools.js';

// What the dashboard's browser tests share: Debian's Chromium driven by playwright-core, pages that record console
// errors, waiting for a view to render, and the keyboard walk.
const root = packageRoot();
const chromiumPath = findChromium();
/** A tap skip reason when there is no Chromium. */
export const skip = skipUnlessFound({ chromium: chromiumPath }, 'apt-get install chromium');
export const SCREENSHOTS = process.env.VERDICT_UI_SCREENSHOTS ?? join(root, '.tap', 'ui-screenshots');

/** A page that records every console error and uncaught exception. */
export async function openPage(browser: Browser, opts: { colorScheme?: 'light' | 'dark' } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...opts });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => errors.push(`exception: ${e.message}`));
  return { page, errors, context };
}

/** Go to a dashboard view and wait until it has rendered (the shell marks the body when a page is in place). */
export async function show(page: Page, base: string, hash: string): Promise<void> {
  await page.goto(`${base}${hash}`);
  await rendered(page);
}

/**
 * Wait until the shell has put the current view in place. (Browser code in these tests is given as text, since they
 * have no DOM types; waits use locators, as the pages' CSP forbids the eval a waitForFunction text would need.)
 */
export async function rendered(page: Page): Promise<void> {
  await page.locator('main[aria-busy="false"]').waitFor();
}

export async function launch(t: Test): Promise<Browser> {
  // As root (CI, containers) Chromium refuses its sandbox; the pages are our own, served from loopback.
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  return browser;
}

/**
 * Tab through the page from its start and return the controls never focused: every link, button, field and summary
 * that is shown must be reached by keyboard alone.
 */
export async function unreachedByTab(page: Page): Promise<string[]> {
  const count = await page.evaluate<number>(`(() => {
    const controls = [...document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]')]
      .filter((e) => !e.disabled && e.tabIndex >= 0 && e.getClientRects().length > 0);
    controls.forEach((e, i) => (e.dataset.control = String(i)));
    document.activeElement?.blur();
    return controls.length;
  })()`);
  const reached = new Set<string>();
  // The walk may start part-way (the focus is on the view after a navigation) and wraps round: twice the controls.
  for (let i = 0; i < 2 * count + 4 && reached.size < count; i++) {
    await page.keyboard.press('Tab');
    const k = await page.evaluate<string | undefined>('document.activeElement?.dataset.control');
    if (k !== undefined) reached.add(k);
  }
  return page.evaluate<string[]>(`[...document.querySelectorAll('[data-control]')]
    .filter((e) => !${JSON.stringify([...reached])}.includes(e.dataset.control))
    .map((e) => e.tagName.toLowerCase() + ' "' + e.textContent.trim().slice(0, 40) + '"')`);
}
