import t from 'tap';
import { FlowWindow } from '../../../agent/flows/window.js';
import { flow, T0 } from '../../fixtures/flows.js';

// FlowWindow (agent/flows/window.ts) on its own, with a clock the test moves: which flows merge, what a merge
// sums and widens, what close() hands back and how the next window opens, and the key bound. Every expected
// value is worked out by hand from the inputs.

/** A clock the test sets. */
function clock(start = T0) {
  let now = start;
  return { now: () => now, set: (ms: number) => void (now = ms) };
}

t.test('flows with the same key merge: counts add up, the time range widens to both', async (t) => {
  const c = clock();
  const w = new FlowWindow(c.now, 10);
  w.add(flow({ connections: 2, packets: 20, bytes: 2000, startMs: T0 + 5000, endMs: T0 + 6000 }));
  w.add(flow({ connections: 3, packets: 7, bytes: 300, startMs: T0 + 1000, endMs: T0 + 4000 }));
  w.add(flow({ connections: 1, packets: 1, bytes: 64, startMs: T0 + 2000, endMs: T0 + 9000 }));
  t.equal(w.size, 1, 'one key');
  c.set(T0 + 15_000);
  const out = w.close();
  t.equal(out.records.length, 1);
  t.match(out.records[0], {
    connections: 6, // 2 + 3 + 1
    packets: 28, // 20 + 7 + 1
    bytes: 2364, // 2000 + 300 + 64
    startMs: T0 + 1000, // the earliest start
    endMs: T0 + 9000, // the latest end
  });
  t.same(out.records[0], flow({ connections: 6, packets: 28, bytes: 2364, startMs: T0 + 1000, endMs: T0 + 9000 }));
});

t.test('everything in the key keeps flows apart; counts and times alone never do', async (t) => {
  const w = new FlowWindow(clock().now, 100);
  const variants = [
    flow(),
    flow({ source: { name: 'other' } }),
    flow({ destination: { namespace: 'pay' } }),
    flow({ protocol: 'udp' }),
    flow({ destinationPort: 8081 }),
    flow({ action: 'deny' }),
    flow({ reporter: 'dst' }),
    flow({ policies: [] }),
    flow({
      stagedPolicies: [{ tier: 'default', namespace: 'shop', name: 'staged', action: 'deny', kind: 'NetworkPolicy' }],
    }),
    flow({ unnamedPolicy: true }),
    flow({ policyDecided: false }),
  ];
  for (const f of variants) w.add(f);
  t.equal(w.size, variants.length, 'eleven keys: each field of the key makes a flow of its own');
  w.add(flow({ connections: 9, packets: 1, bytes: 1, startMs: T0, endMs: T0 + 59_000 }));
  t.equal(w.size, variants.length, 'a flow differing only in counts and times merges into the first');
  const first = w.close().records[0];
  t.equal(first?.connections, 10, '1 + 9');
  t.equal(first?.startMs, T0);
  t.equal(first?.endMs, T0 + 59_000);
});

t.test('records come back in the order their keys first appeared', async (t) => {
  const w = new FlowWindow(clock().now, 10);
  for (const port of [30, 10, 20, 10, 30]) w.add(flow({ destinationPort: port }));
  const out = w.close().records;
  t.same(
    out.map((r) => [r.destinationPort, r.connections]),
    [
      [30, 2],
      [10, 2],
      [20, 1],
    ],
  );
});

t.test("add() copies: the caller's record is never changed by later merges", async (t) => {
  const w = new FlowWindow(clock().now, 10);
  const mine = flow({ connections: 4 });
  w.add(mine);
  w.add(flow({ connections: 5 }));
  t.equal(mine.connections, 4, 'the first record handed in still says 4');
  t.equal(w.close().records[0]?.connections, 9);
});

t.test(
  'close(): the window runs from the previous close (or construction) to now, and the next starts there',
  async (t) => {
    const c = clock(T0 + 100);
    const w = new FlowWindow(c.now, 10);
    c.set(T0 + 2000);
    w.add(flow());
    c.set(T0 + 15_100);
    const first = w.close();
    t.equal(first.startMs, T0 + 100, 'opened when constructed');
    t.equal(first.endMs, T0 + 15_100);
    t.equal(first.records.length, 1);
    t.equal(w.size, 0, 'the next window starts empty');

    c.set(T0 + 30_100);
    const empty = w.close();
    t.same(
      { startMs: empty.startMs, endMs: empty.endMs, records: empty.records, dropped: empty.dropped },
      { startMs: T0 + 15_100, endMs: T0 + 30_100, records: [], dropped: 0 },
      'an empty window still closes',
    );

    w.add(flow({ connections: 7 }));
    c.set(T0 + 45_100);
    const third = w.close();
    t.equal(third.startMs, T0 + 30_100, 'contiguous: each window starts where the last ended');
    t.equal(third.records[0]?.connections, 7, 'nothing of an earlier window is carried over');
  },
);

t.test('records handed out by close() are not touched by later windows', async (t) => {
  const w = new FlowWindow(clock().now, 10);
  w.add(flow({ connections: 1 }));
  const closed = w.close().records;
  w.add(flow({ connections: 100 }));
  t.equal(closed[0]?.connections, 1);
  t.equal(w.close().records[0]?.connections, 100);
});

t.test('bounded: past maxKeys distinct keys new keys are dropped and counted; known keys still merge', async (t) => {
  const w = new FlowWindow(clock().now, 3);
  for (const port of [1, 2, 3]) w.add(flow({ destinationPort: port }));
  t.equal(w.size, 3);
  w.add(flow({ destinationPort: 4 })); // a fourth key: dropped
  w.add(flow({ destinationPort: 5, connections: 50 })); // a fifth: dropped (one flow, whatever its count)
  w.add(flow({ destinationPort: 4 })); // the fourth again: still dropped, counted again
  w.add(flow({ destinationPort: 2, connections: 6 })); // a known key: merges
  t.equal(w.size, 3, 'never more than three keys');
  t.equal(w.dropped, 3, 'three flows dropped');
  const out = w.close();
  t.same(
    out.records.map((r) => [r.destinationPort, r.connections]),
    [
      [1, 1],
      [2, 7],
      [3, 1],
    ],
  );
  t.equal(out.dropped, 3, 'the closed window reports its drops');
  t.equal(w.dropped, 0, 'and the count starts over');
  w.add(flow({ destinationPort: 9 }));
  t.equal(w.size, 1, 'the bound is per window: a new key fits again');
  t.equal(w.close().dropped, 0);
});

t.test('maxKeys 0 keeps nothing and counts every flow', async (t) => {
  const w = new FlowWindow(clock().now, 0);
  w.add(flow());
  w.add(flow());
  const out = w.close();
  t.same(
    { startMs: out.startMs, endMs: out.endMs, records: out.records, dropped: out.dropped },
    {
      startMs: T0,
      endMs: T0,
      records: [],
      dropped: 2,
    },
  );
});
