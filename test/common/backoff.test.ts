import t from 'tap';
import { Backoff } from '../../common/backoff.js';

/** A random seam that answers the given numbers in turn. */
function randoms(...values: number[]): () => number {
  let i = 0;
  return () => {
    if (i >= values.length) throw new Error('asked for more random numbers than the test gave');
    return values[i++]!;
  };
}

t.test('without jitter the delay doubles from the first up to the cap and stays there', async (t) => {
  const backoff = new Backoff({ initialMs: 1000, maxMs: 30_000 });
  const delays = Array.from({ length: 8 }, () => backoff.next());
  t.same(delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
});

t.test('without jitter no random number is drawn', async (t) => {
  const backoff = new Backoff({ initialMs: 500, maxMs: 2000, random: randoms() });
  t.same([backoff.next(), backoff.next(), backoff.next()], [500, 1000, 2000]);
});

t.test('reset starts over at the first delay', async (t) => {
  const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  backoff.next();
  backoff.next();
  backoff.next();
  backoff.reset();
  t.same([backoff.next(), backoff.next()], [500, 1000]);
});

t.test('jitter 0.2 spreads each delay over 80 % to 120 % of the doubling, rounded to whole ms', async (t) => {
  // random() 0 → 80 %, 0.5 → 100 %, just under 1 → just under 120 %.
  const backoff = new Backoff({ initialMs: 500, maxMs: 30_000, jitter: 0.2, random: randoms(0, 0.5, 0.999999, 0.25) });
  t.same([backoff.next(), backoff.next(), backoff.next(), backoff.next()], [400, 1000, 2400, 3600]);
});

t.test('jitter applies around the cap, and the cap bounds the doubling, not the jittered delay', async (t) => {
  const backoff = new Backoff({ initialMs: 20_000, maxMs: 30_000, jitter: 0.2, random: randoms(0.5, 0.999999, 0) });
  t.same([backoff.next(), backoff.next(), backoff.next()], [20_000, 36_000, 24_000]);
});

t.test('a jittered delay is a whole number of ms', async (t) => {
  const backoff = new Backoff({ initialMs: 333, maxMs: 30_000, jitter: 0.2, random: randoms(0.123) });
  const delay = backoff.next();
  t.equal(delay, Math.round(333 * (0.8 + 0.123 * 0.4)));
  t.ok(Number.isInteger(delay));
});
