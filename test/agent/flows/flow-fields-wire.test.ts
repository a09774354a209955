import t from 'tap';
import { flowKey } from '../../../common/flow.js';
import { flowToWire } from '../../../proto/convert.js';
import { flowFromWire } from '../../../proto/from-wire.js';
import { agentServiceDefinition, type WireFlowRecord } from '../../../proto/index.js';
import { flow } from '../../fixtures/flows.js';

// The two flow fields added for issue 15 cross the wire (FlowEndpoint.reserved = 7, FlowRecord.policy_unknown = 16)
// and are absent, not empty, when not set, so a record without them keeps its key from before they existed.

const def = agentServiceDefinition().Connect;

function roundTrip(r: WireFlowRecord): WireFlowRecord {
  const bytes = def?.requestSerialize({ flowBatch: { seq: 1, records: [r], sources: [] } }) as Buffer;
  const back = def?.requestDeserialize(bytes) as { flowBatch: { records: WireFlowRecord[] } };
  return back.flowBatch.records[0] as WireFlowRecord;
}

t.test('reserved and policyUnknown go over the wire and come back as they were', async (t) => {
  const f = flow({ destination: { kind: 'host', name: 'node-a', namespace: '', labels: [], serviceAccount: '' } });
  f.destination.reserved = 'host';
  f.policyUnknown = true;
  const back = flowFromWire(roundTrip(flowToWire(f)));
  t.same(back, f);
  t.equal(typeof back !== 'string' && back.destination.reserved, 'host');
});

t.test('a record without them, as an older agent sends it, has neither key: its flow key is unchanged', async (t) => {
  const f = flow();
  const wire = flowToWire(f);
  // An older agent's encoder knows neither field.
  delete wire.policyUnknown;
  if (wire.source) delete wire.source.reserved;
  const back = flowFromWire(roundTrip(wire));
  t.same(back, f);
  t.notOk(typeof back !== 'string' && ('policyUnknown' in back || 'reserved' in back.source));
  t.equal(typeof back !== 'string' && flowKey(back), flowKey(f));
});

t.test('a reserved identity that cannot be stored is refused like any other text', async (t) => {
  const f = flow();
  f.source.reserved = 'x'.repeat(65);
  t.match(flowFromWire(roundTrip(flowToWire(f))), /source.reserved is longer than 64/);
});
