import assert from 'node:assert';
import { createServer } from 'node:net';
import t from 'tap';
import { refusedAs, until } from '../fixtures/wait.js';

// The shared wait of the e2e tests (test/fixtures/wait.ts): what it retries, what it does not.

t.test('until answers what the probe answered once it holds', async (t) => {
  let n = 0;
  t.equal(await until(() => (++n >= 3 ? `third` : undefined), 'the third poll', 1000, 1), 'third');
  t.equal(n, 3);
  t.equal(await until(() => true, 'at once'), true);
  t.equal(await until(async () => 0, 'zero holds: only false, undefined and null mean "not yet"'), 0);
});

t.test('a failed assertion means "not yet"; the timeout reports the last one', async (t) => {
  let n = 0;
  await until(
    () => {
      n++;
      assert.equal(n, 4);
      return true;
    },
    'the fourth poll',
    1000,
    1,
  );
  t.equal(n, 4, 'three failed assertions were retried');
  await t.rejects(
    until(() => assert.equal(1, 2, 'one is not two'), 'an assertion that never holds', 50, 5),
    /timed out after 50 ms waiting for an assertion that never holds \(last assertion: one is not two\)/,
  );
});

t.test('any other error fails the wait at once, with that error', async (t) => {
  let n = 0;
  const boom = new TypeError('the code under test broke');
  const started = Date.now();
  await t.rejects(
    until(
      () => {
        n++;
        throw boom;
      },
      'a probe that throws',
      10_000,
    ),
    boom,
  );
  t.equal(n, 1, 'not retried');
  t.ok(Date.now() - started < 5000, 'not after the timeout');
  await t.rejects(
    until(async () => Promise.reject(new RangeError('async too')), 'an async probe that rejects', 10_000),
    { name: 'RangeError', message: 'async too' },
  );
});

t.test('the timeout names what was awaited and adds the detail', async (t) => {
  await t.rejects(
    until(
      () => false,
      'nothing',
      30,
      5,
      () => 'the logs',
    ),
    /^timed out after 30 ms waiting for nothing\nthe logs$/,
  );
});

t.test('refusedAs: a refused connection is the fallback, every other failure stays one', async (t) => {
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  t.equal(await refusedAs(fetch(`http://127.0.0.1:${port}/`), 'refused'), 'refused', 'nothing listens');
  t.equal(await refusedAs(Promise.resolve(1), 'refused'), 1);
  await t.rejects(refusedAs(Promise.reject(new Error('other')), 'refused'), /other/);
  await t.rejects(refusedAs(fetch('http://127.0.0.1:1:2/'), 'refused'), TypeError, 'an invalid URL is no refusal');
});
