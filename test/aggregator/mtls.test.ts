import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { agentServiceDefinition, type WireAggregatorMessage } from '../../proto/index.js';
import { HELLO, startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';

// Mutual TLS with a real CA, server and client certificates made by openssl:
// a client certificate names the one node its holder may report as.
function makePki(dir: string): void {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=verdict-test-ca');
  const leaf = (name: string, cn: string, ext: string) => {
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  };
  leaf('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  leaf('node-a', 'system:node:node-a', 'extendedKeyUsage=clientAuth\n');
}

function connect(port: number, dir: string, client: string, node: string): Promise<{ msg?: WireAggregatorMessage; err?: grpc.ServiceError }> {
  const def = agentServiceDefinition().Connect as grpc.MethodDefinition<Record<string, unknown>, WireAggregatorMessage>;
  const creds = grpc.credentials.createSsl(readFileSync(join(dir, 'ca.crt')), readFileSync(join(dir, `${client}.key`)), readFileSync(join(dir, `${client}.crt`)));
  const c = new grpc.Client(`localhost:${port}`, creds);
  const call = c.makeBidiStreamRequest('/verdict.v1.AgentService/Connect', def.requestSerialize, def.responseDeserialize, new grpc.Metadata());
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
  const agg = await startTestAggregator(t, { tls: { cert: join(dir, 'server.crt'), key: join(dir, 'server.key'), ca: join(dir, 'ca.crt') } });
  const ok = await connect(agg.grpcPort, dir, 'node-a', 'node-a');
  t.equal(ok.msg?.kind, 'welcome');
  const spoof = await connect(agg.grpcPort, dir, 'node-a', 'node-b');
  t.equal(spoof.err?.code, grpc.status.PERMISSION_DENIED);
  t.match(spoof.err?.details, /credentials for node node-a cannot report as node-b/);
});
