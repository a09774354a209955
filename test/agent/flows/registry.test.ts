import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { hasCode } from '../../../common/errors.js';
import type { FlowRecord } from '../../../common/flow.js';
import { createFlowSource, FLOW_SOURCES, parseFlowSource } from '../../../agent/flows/index.js';
import {
  endpoint,
  InternalNetworks,
  markApiServerDestination,
  type ParseResult,
} from '../../../agent/flows/normalize.js';
import { tempDir } from '../../fixtures/tmp.js';

t.test('parseFlowSource reads --flows by the registry, one kind per form', async (t) => {
  t.same(Object.keys(FLOW_SOURCES), ['calico', 'hubble-file', 'hubble-grpc', 'goldmane']);
  const cases: [string, string, string][] = [
    ['calico:/var/log/calico/flowlogs/flows.log', 'calico', '/var/log/calico/flowlogs/flows.log'],
    ['hubble:/var/run/cilium/hubble/events.log', 'hubble-file', '/var/run/cilium/hubble/events.log'],
    ['hubble:unix:///var/run/cilium/hubble.sock', 'hubble-grpc', 'unix:///var/run/cilium/hubble.sock'],
    ['goldmane:goldmane.calico-system.svc:7443', 'goldmane', 'goldmane.calico-system.svc:7443'],
  ];
  for (const [raw, kind, target] of cases) t.same(parseFlowSource(raw), { raw, kind, target }, raw);
  for (const raw of ['netflow:/x', 'calico:', 'goldmane:host', 'hubble']) {
    let caught: unknown;
    try {
      parseFlowSource(raw);
    } catch (err) {
      caught = err;
    }
    t.ok(hasCode(caught, 'VERDICT_USAGE'), `${raw}: VERDICT_USAGE`);
    t.match(
      (caught as Error).message,
      'VERDICT_USAGE: --flows takes calico:PATH, hubble:PATH, hubble:unix://SOCKET or goldmane:HOST:PORT',
    );
  }
});

t.test('a file source hands every line, malformed or not, to the one onResult callback', async (t) => {
  const file = join(tempDir(t), 'flows.log');
  writeFileSync(file, '');
  const got: { r: ParseResult<FlowRecord>; where: string }[] = [];
  const source = createFlowSource(parseFlowSource(`calico:${file}`), {
    internal: new InternalNetworks(),
    log: pino({ level: 'silent' }),
    startAtEnd: false,
    onResult: (read, where) => got.push({ r: read(), where: where() }),
  });
  source.start();
  const text = 'not json\n{"action":"allow","reporter":"fwd"}\n';
  appendFileSync(file, text);
  source.poll();
  t.same(
    got.map((g) => g.r.kind),
    ['malformed', 'skip'],
  );
  t.match(got[0]?.where, `${file} at byte 0`);
  t.same(source.stats, { lines: 2, tooLong: 0, readFailures: 0 });
  t.match(source.position(), { offset: Buffer.byteLength(text) }, 'the position is after the last line read');
  source.stop();
});

t.test('the API-server special case is written once, for Calico and Goldmane alike', async (t) => {
  const d = endpoint({ kind: 'network', name: 'pub', internet: true });
  t.equal(markApiServerDestination(d, 'default', 'other'), false);
  t.equal(d.kind, 'network');
  t.equal(markApiServerDestination(d, 'default', 'kubernetes'), true);
  t.match(d, { kind: 'apiserver', name: 'kube-apiserver', internet: false });
});
