import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import forge from 'node-forge';
import t, { type Test } from 'tap';
import { packageRoot } from '../../../common/package-root.js';
import { startTestAggregator } from '../../fixtures/aggregator.js';
import { tempDir } from '../../fixtures/tmp.js';
import { findTool, skipUnlessFound } from '../../fixtures/tools.js';
import { archiveRun, REPORT, seededDb, sqliteBackend } from './seeded-store.js';

const AGGREGATOR = join(packageRoot(), 'dist', 'aggregator', 'cli.js');
const run = promisify(execFile);
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

async function exitOf(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** An operator's key as `openssl genpkey -algorithm ed25519` writes it: PEM PKCS#8. */
function keyFile(dir: string): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const file = join(dir, 'signing-key.pem');
  writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return file;
}

/** A signed aggregator with one archived run of REPORT, and where its downloads are. */
async function signedAggregator(t: Test) {
  const dir = tempDir(t);
  const agg = await startTestAggregator(t, { signingKeyFile: keyFile(dir) });
  const id = await archiveRun(agg.store, 1);
  const base = `http://127.0.0.1:${agg.httpPort}/api/v1/reports/${REPORT}`;
  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`);
    return { res, body: Buffer.from(await res.arrayBuffer()) };
  };
  return { agg, dir, id, base, get };
}

/** Ed25519's raw 32-byte public key: the end of its DER SPKI (what x-verdict-public-key carries). */
const rawKey = (spkiBase64: string) => Buffer.from(spkiBase64, 'base64').subarray(-32);

t.test('every download of a run is what its manifest hashes, and its signature checks with node-forge', async (t) => {
  const { agg, id, get } = await signedAggregator(t);
  const [sealed] = await agg.store.archivedRuns(REPORT);
  const manifest = await get(`/runs/${id}/download/manifest.json`);
  t.equal(manifest.res.status, 200);
  t.equal(sha256(manifest.body), sealed?.chain?.digest, 'sha256 of manifest.json is the run digest in the chain');
  t.equal(manifest.res.headers.get('x-verdict-run-digest'), sealed?.chain?.digest);
  const listed = (JSON.parse(manifest.body.toString('utf8')) as { files: Record<string, string> }).files;
  t.same(Object.keys(listed).sort(), ['inputs.json', 'node-summary.csv', 'result.json']);
  const publicKey = rawKey(manifest.res.headers.get('x-verdict-public-key') ?? '');
  for (const file of ['manifest.json', ...Object.keys(listed)]) {
    const f = await get(`/runs/${id}/download/${file}`);
    t.equal(f.res.status, 200, file);
    if (file !== 'manifest.json') t.equal(sha256(f.body), listed[file], `${file}'s sha256 is in the manifest`);
    t.equal(f.res.headers.get('x-verdict-sha256'), sha256(f.body));
    const sig = await get(`/runs/${id}/download/${file}.sig`);
    t.equal(sig.body.length, 64, 'a raw Ed25519 signature');
    t.equal(sig.res.headers.get('content-type'), 'application/octet-stream');
    t.ok(
      forge.pki.ed25519.verify({ message: f.body, signature: sig.body, publicKey }),
      `${file}.sig verifies with node-forge`,
    );
    const altered = Buffer.from(f.body);
    altered[altered.length - 3] ^= 1;
    t.notOk(forge.pki.ed25519.verify({ message: altered, signature: sig.body, publicKey }), `altered ${file} does not`);
  }
  const csv = await get(`/runs/${id}/download/node-summary.csv`);
  t.equal(csv.body.toString('utf8'), 'node,status,testsPassing\r\nnode-1,high,11\r\n');
  const unknown = await get(`/runs/${id}/download/nodes.csv`);
  t.equal(unknown.res.status, 404);
  t.match(JSON.parse(unknown.body.toString('utf8')), { error: 'VERDICT_NOT_FOUND', message: /node-summary\.csv/ });
});

t.test('an altered downloaded CSV: verify --file names the digest and the signature that no longer hold', async (t) => {
  const { id, dir, get } = await signedAggregator(t);
  const save = async (file: string) => {
    const { body } = await get(`/runs/${id}/download/${file}`);
    writeFileSync(join(dir, file), body);
    return join(dir, file);
  };
  const manifest = await save('manifest.json');
  const csv = await save('node-summary.csv');
  await save('node-summary.csv.sig');
  const status = (await get('/verify')).body.toString('utf8');
  const pem = (JSON.parse(status) as { signingPublicKey: string }).signingPublicKey;
  writeFileSync(join(dir, 'verdict.pub'), pem);
  const args = ['--file', csv, '--manifest', manifest, '--public-key', join(dir, 'verdict.pub')];
  const intact = await exitOf(process.execPath, [AGGREGATOR, 'verify', ...args]);
  t.equal(intact.code, 0, intact.stdout + intact.stderr);
  t.match(intact.stdout, /file node-summary\.csv\s+1\s+-\s+intact/);

  writeFileSync(csv, readFileSync(csv, 'utf8').replace('node-1,high', 'node-1,low'));
  const broken = await exitOf(process.execPath, [AGGREGATOR, 'verify', ...args, '--json']);
  t.equal(broken.code, 1);
  const out = JSON.parse(broken.stdout) as { ok: boolean; chains: { breaks: { kind: string; message: string }[] }[] };
  t.equal(out.ok, false);
  t.same(
    out.chains[0]?.breaks.map((b) => b.kind),
    ['digest', 'signature'],
  );
  t.match(out.chains[0]?.breaks[0]?.message, /is not node-summary\.csv of .*manifest\.json/);
  const text = await exitOf(process.execPath, [AGGREGATOR, 'verify', ...args]);
  t.equal(text.code, 1);
  t.match(text.stdout, /BROKEN \(2\)/);
  t.match(text.stdout, `found    ${sha256(readFileSync(csv))}`);
});

const openssl = findTool('openssl');
t.test(
  'openssl checks a download and its .sig with the published public key (the README auditor steps)',
  { skip: skipUnlessFound({ openssl }, 'apt-get install openssl') },
  async (t) => {
    const { id, dir, get } = await signedAggregator(t);
    const csv = join(dir, 'node-summary.csv');
    writeFileSync(csv, (await get(`/runs/${id}/download/node-summary.csv`)).body);
    writeFileSync(`${csv}.sig`, (await get(`/runs/${id}/download/node-summary.csv.sig`)).body);
    const pem = (JSON.parse((await get('/verify')).body.toString('utf8')) as { signingPublicKey: string })
      .signingPublicKey;
    writeFileSync(join(dir, 'verdict.pub'), pem);
    const verify = (file: string) =>
      exitOf(openssl as string, [
        'pkeyutl',
        '-verify',
        '-pubin',
        '-inkey',
        join(dir, 'verdict.pub'),
        '-rawin',
        '-in',
        file,
        '-sigfile',
        `${csv}.sig`,
      ]);
    const ok = await verify(csv);
    t.equal(ok.code, 0, ok.stderr);
    t.match(ok.stdout, /Signature Verified Successfully/);
    writeFileSync(join(dir, 'altered.csv'), readFileSync(csv, 'utf8').replace('11', '12'));
    t.not((await verify(join(dir, 'altered.csv'))).code, 0, 'an altered file fails');
  },
);

t.test('a run changed in the database is not served or signed, and the verify route says why', async (t) => {
  const { agg, id, get } = await signedAggregator(t);
  await sqliteBackend.tamper(`sqlite:${agg.dbFile}`, [
    `UPDATE report_runs SET result_json = REPLACE(result_json, '"high"', '"low"') WHERE id = '${id}'`,
  ]);
  for (const file of ['node-summary.csv', 'node-summary.csv.sig', 'manifest.json']) {
    const r = await get(`/runs/${id}/download/${file}`);
    t.equal(r.res.status, 409, file);
    t.match(JSON.parse(r.body.toString('utf8')), { error: 'VERDICT_EVIDENCE_BROKEN', message: /sealed digest/ });
  }
  const v = JSON.parse((await get(`/verify?run=${id}`)).body.toString('utf8')) as {
    ok: boolean;
    chains: { chain: string; breaks: { kind: string; id: string }[] }[];
  };
  t.equal(v.ok, false);
  t.match(v.chains[0], { chain: `report ${REPORT}`, breaks: [{ kind: 'digest', id: `run ${id}` }] });
});

t.test('without --signing-key downloads carry no signature and .sig is 404', async (t) => {
  const agg = await startTestAggregator(t);
  const id = await archiveRun(agg.store, 1);
  const base = `http://127.0.0.1:${agg.httpPort}/api/v1/reports/${REPORT}/runs/${id}/download`;
  const csv = await fetch(`${base}/node-summary.csv`);
  t.equal(csv.status, 200);
  t.equal(csv.headers.get('x-verdict-signature'), null);
  t.equal(csv.headers.get('x-verdict-public-key'), null);
  const sig = await fetch(`${base}/node-summary.csv.sig`);
  t.equal(sig.status, 404);
  t.match(await sig.json(), { message: /--signing-key/ });
});

t.test('the evidence routes are access-controlled per report like the other report routes', async (t) => {
  const dir = tempDir(t);
  const token = 'other-report-reader-token';
  writeFileSync(
    join(dir, 'tokens.yaml'),
    `tokens:\n- {user: other, token: ${token}, verbs: [get], reports: [other-report]}\n`,
  );
  const agg = await startTestAggregator(t, { httpTokensFile: join(dir, 'tokens.yaml') });
  const id = await archiveRun(agg.store, 1);
  const base = `http://127.0.0.1:${agg.httpPort}/api/v1/reports/${REPORT}`;
  for (const path of [`/runs/${id}/download/manifest.json`, '/verify']) {
    t.equal((await fetch(`${base}${path}`)).status, 401, `${path} without a token`);
    const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
    t.equal(r.status, 403, `${path} with a token for another report`);
  }
});

t.test('verify: a reader of the report sees scan-chain breaks; their node names only with get on nodes', async (t) => {
  const dir = tempDir(t);
  const { db, scans } = await seededDb(t, sqliteBackend);
  await sqliteBackend.tamper(db, [`UPDATE benchmark_runs SET chain_seq = 100 WHERE id = ${scans[1]}`]);
  writeFileSync(
    join(dir, 'tokens.yaml'),
    'tokens:\n' +
      `- {user: report-only, token: report-only-token-0123, verbs: [get], reports: [${REPORT}]}\n` +
      `- {user: with-nodes, token: with-nodes-token-01234, verbs: [get], reports: [${REPORT}], resources: [globalreports, nodes]}\n`,
  );
  const agg = await startTestAggregator(t, { db, httpTokensFile: join(dir, 'tokens.yaml') });
  const verify = async (token: string) => {
    const r = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/reports/${REPORT}/verify`, {
      headers: { authorization: `Bearer ${token}` },
    });
    t.equal(r.status, 200);
    const body = (await r.json()) as {
      ok: boolean;
      chains: { chain: string; breaks: { id: string; message: string }[] }[];
    };
    return { ok: body.ok, scans: body.chains.find((c) => c.chain === 'scans')!.breaks };
  };
  const full = await verify('with-nodes-token-01234');
  t.equal(full.ok, false);
  t.ok(full.scans.length > 0, 'the renumbered scan breaks the scan chain');
  t.ok(
    full.scans.some((b) => b.id === `scan ${scans[1]} (node n1)`),
    'a reader of nodes sees which node',
  );
  const limited = await verify('report-only-token-0123');
  t.equal(limited.ok, false, 'the other reader is told the chain is broken too');
  t.equal(limited.scans.length, full.scans.length, 'the same breaks');
  t.same(
    limited.scans.map((b) => b.id),
    full.scans.map((b) => b.id?.replace(/\(node n1\)$/, '(node hidden: reading node names needs get on nodes)')),
  );
  t.notOk(JSON.stringify(limited).includes('n1'), 'the node name appears nowhere');
});

t.test('a --signing-key that is missing or not Ed25519 stops the start with one line, exit 2', async (t) => {
  const dir = tempDir(t);
  const rsa = join(dir, 'rsa.pem');
  writeFileSync(
    rsa,
    generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
  );
  for (const [file, why] of [
    [join(dir, 'absent.pem'), /ENOENT|no such file/],
    [rsa, /is a rsa key; give an Ed25519 one/],
  ] as const) {
    const r = await exitOf(process.execPath, [
      AGGREGATOR,
      '--http',
      '127.0.0.1:0',
      '--grpc',
      '127.0.0.1:0',
      '--db',
      `sqlite:${join(dir, 'v.db')}`,
      '--signing-key',
      file,
    ]);
    t.equal(r.code, 2, r.stderr);
    t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    t.match(r.stderr, /^verdict-aggregator: VERDICT_CONFIG_INVALID: --signing-key /);
    t.match(r.stderr, why);
  }
});
