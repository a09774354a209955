import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { FileFollower, type FollowPosition } from '../../../agent/flows/follow.js';
import { RotatingLog, type RotationNaming } from '../../fixtures/rotating-log.js';
import { fuzzParams } from '../../fixtures/fuzz.js';

/** What the writer, its rotator and the agent do, one step at a time. */
type Op =
  | { kind: 'append'; count: number }
  | { kind: 'partial' }
  | { kind: 'rotate'; create: boolean }
  | { kind: 'copytruncate' }
  | { kind: 'poll'; maxBytes: number | undefined }
  | { kind: 'save' }
  | { kind: 'restart' };

/**
 * The cases the follower's design calls detectable: rotated files are never
 * removed or compressed before being read, and every change to a file moves its
 * mtime forward (`clock: 'fake'` steps a second per write; with the real clock,
 * timestamps may be equal, and only rotation by rename is generated). Reads of
 * 80 bytes still hold a whole line (lines are at most 45 bytes).
 */
function opsFor(withCopytruncate: boolean): fc.Arbitrary<Op[]> {
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 5, arbitrary: fc.integer({ min: 1, max: 4 }).map((count): Op => ({ kind: 'append', count })) },
    { weight: 1, arbitrary: fc.constant<Op>({ kind: 'partial' }) },
    { weight: 2, arbitrary: fc.boolean().map((create): Op => ({ kind: 'rotate', create })) },
    { weight: withCopytruncate ? 2 : 0, arbitrary: fc.constant<Op>({ kind: 'copytruncate' }) },
    { weight: 4, arbitrary: fc.constantFrom(80, 300, undefined).map((maxBytes): Op => ({ kind: 'poll', maxBytes })) },
    { weight: 1, arbitrary: fc.constant<Op>({ kind: 'save' }) },
    { weight: 1, arbitrary: fc.constant<Op>({ kind: 'restart' }) },
  );
  return fc.array(op, { maxLength: 40 });
}

/**
 * Run the operations against real files. A restart resumes from the last saved
 * position (through JSON, as the spool keeps it), and lines delivered after that
 * save are forgotten: their batch was never written. Answers the lines delivered
 * and written and every event.
 */
function run(
  naming: RotationNaming,
  clock: 'fake' | 'real',
  ops: Op[],
): { delivered: string[]; written: string[]; events: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'verdict-follow-'));
  try {
    let now = 1_700_000_000_000;
    const log = new RotatingLog(dir, naming, 'flows.log', clock === 'fake' ? () => (now += 1000) : undefined);
    log.create();
    let follower = new FileFollower(log.path);
    let delivered: string[] = [];
    const events: string[] = [];
    const poll = (maxBytes?: number) => {
      const r = follower.poll(maxBytes);
      delivered.push(...r.lines.map((l) => l.line));
      events.push(...r.events);
    };
    poll();
    let saved = { position: JSON.stringify(follower.saved), delivered: delivered.length };
    for (const op of ops) {
      if (op.kind === 'append') log.append(op.count);
      else if (op.kind === 'partial') log.partial();
      else if (op.kind === 'rotate') log.rotate({ create: op.create });
      else if (op.kind === 'copytruncate') log.copytruncate();
      else if (op.kind === 'poll') poll(op.maxBytes);
      else if (op.kind === 'save') saved = { position: JSON.stringify(follower.saved), delivered: delivered.length };
      else {
        follower = new FileFollower(log.path, JSON.parse(saved.position) as FollowPosition);
        delivered = delivered.slice(0, saved.delivered);
      }
    }
    log.append(0); // the writer finishes a partial line
    for (let i = 0; i < 50; i++) poll();
    return { delivered, written: log.written, events };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const cases: { name: string; clock: 'fake' | 'real'; copytruncate: boolean }[] = [
  { name: 'rename rotation and copytruncate, distinct mtimes', clock: 'fake', copytruncate: true },
  { name: 'rename rotation, real (possibly equal) mtimes', clock: 'real', copytruncate: false },
];

for (const c of cases) {
  t.test(`every line written is delivered exactly once, in order (${c.name})`, async (t) => {
    const scenario = fc.record({
      naming: fc.constantFrom<RotationNaming>('logrotate', 'lumberjack'),
      ops: opsFor(c.copytruncate),
    });
    fc.assert(
      fc.property(scenario, ({ naming, ops }) => {
        const { delivered, written, events } = run(naming, c.clock, ops);
        if (events.some((e) => /lost/.test(e))) throw new Error(`a loss was reported: ${events.join(' | ')}`);
        if (JSON.stringify(delivered) !== JSON.stringify(written)) {
          throw new Error(
            `delivered ${delivered.length} lines, written ${written.length}\ndelivered: ${delivered.join(' ')}\nwritten:   ${written.join(' ')}\nevents: ${events.join(' | ')}`,
          );
        }
      }),
      fuzzParams(100),
    );
    t.pass('100 generated runs');
  });
}
