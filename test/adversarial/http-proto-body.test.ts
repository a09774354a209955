import t from 'tap';
import { startTestAggregator } from '../fixtures/aggregator.js';

// A JSON body with a "__proto__" or "constructor.prototype" key is refused by fastify's parser with the same error as
// broken JSON; its message said "the body is not valid JSON (Body is not valid JSON ...)" for a body that is valid
// JSON, which leaves the client nothing to fix. The answer names the key as a reason.

t.test('a body refused for a prototype key says so', async (t) => {
  const agg = await startTestAggregator(t);
  for (const body of [
    '{"__proto__": {"admin": true}, "start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}',
    '{"constructor": {"prototype": {"admin": true}}}',
  ]) {
    const res = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/reports/weekly-cis/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    const answer = (await res.json()) as { error: string; message: string };
    t.equal(res.status, 400, body);
    t.equal(answer.error, 'VERDICT_INVALID_JSON', body);
    t.match(answer.message, /__proto__/, `the message names the key it refuses: ${answer.message}`);
  }
});
