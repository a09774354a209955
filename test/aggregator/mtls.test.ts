import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { agentServiceDefinition, type WireAggregatorMessage } from '../../proto/index.js';
import { HELLO, startTestAggregator } from '../fixtures/aggregator.js';
import { makeTestCa, writeIdentity } from '../fixtures/pki.js';
import { tempDir } from '../fixtures/tmp.js';

// Mutual TLS with a real CA, server and client certificates (made in
// JavaScript, test/fixtures/pki.ts): a client certificate names the one node
// its holder may report as, and only certificates from the aggregator's CA get in.
function makePki(dir: string): void {
  const ca = makeTestCa('verdict-test-ca');
  writeIdentity(dir, 'ca', ca);
  writeIdentity(
    dir,
    'server',
    ca.issue({ commonName: 'localhost', usage: 'server', dnsNames: ['localhost'], ips: ['127.0.0.1'] }),
  );
  writeIdentity(dir, 'node-a', ca.issue({ commonName: 'system:node:node-a', usage: 'client' }));
  // The same node name, signed by a CA the aggregator does not trust.
  writeIdentity(
    dir,
    'rogue-node-a',
    makeTestCa('verdict-rogue-ca').issue({ commonName: 'system:node:node-a', usage: 'client' }),
  );
}

function connect(
  port: number,
  dir: string,
  client: string,
  node: string,
  host = 'localhost',
): Promise<{ msg?: WireAggregatorMessage; err?: grpc.ServiceError }> {
  const def = agentServiceDefinition().Connect as grpc.MethodDefinition<Record<string, unknown>, WireAggregatorMessage>;
  const creds = grpc.credentials.createSsl(
    readFileSync(join(dir, 'ca.crt')),
    readFileSync(join(dir, `${client}.key`)),
    readFileSync(join(dir, `${client}.crt`)),
  );
  const c = new grpc.Client(`${host}:${port}`, creds);
  const call = c.makeBidiStreamRequest(
    '/verdict.v1.AgentService/Connect',
    def.requestSerialize,
    def.responseDeserialize,
    new grpc.Metadata(),
  );
  return new Promise((resolve) => {
    call.on('data', (m: WireAggregatorMessage) => {
      resolve({ msg: m });
      call.end();
      c.close();
    });
    call.on('error', (e: grpc.ServiceError) => {
      resolve({ err: e });
      c.close();
    });
    call.write(HELLO(node));
  });
}

t.test('a client certificate binds the stream to the node in its common name', async (t) => {
  const dir = tempDir(t);
  makePki(dir);
  const agg = await startTestAggregator(t, {
    tls: { cert: join(dir, 'server.crt'), key: join(dir, 'server.key'), ca: join(dir, 'ca.crt') },
  });
  const ok = await connect(agg.grpcPort, dir, 'node-a', 'node-a');
  t.equal(ok.msg?.kind, 'welcome');
  const byAddress = await connect(agg.grpcPort, dir, 'node-a', 'node-a', '127.0.0.1');
  t.equal(byAddress.msg?.kind, 'welcome', 'the server certificate also names 127.0.0.1');
  const spoof = await connect(agg.grpcPort, dir, 'node-a', 'node-b');
  t.equal(spoof.err?.code, grpc.status.PERMISSION_DENIED);
  t.match(spoof.err?.details, /credentials for node node-a cannot report as node-b/);
});

t.test('a client certificate from another CA is refused before any message', async (t) => {
  const dir = tempDir(t);
  makePki(dir);
  const agg = await startTestAggregator(t, {
    tls: { cert: join(dir, 'server.crt'), key: join(dir, 'server.key'), ca: join(dir, 'ca.crt') },
  });
  const rogue = await connect(agg.grpcPort, dir, 'rogue-node-a', 'node-a');
  t.equal(rogue.msg, undefined, 'no welcome');
  t.equal(rogue.err?.code, grpc.status.UNAVAILABLE, `the TLS handshake fails (${rogue.err?.details})`);
  const ok = await connect(agg.grpcPort, dir, 'node-a', 'node-a');
  t.equal(ok.msg?.kind, 'welcome', 'the CA it trusts still gets in');
});
