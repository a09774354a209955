import t from 'tap';
import { parseRunArgs } from '../../agent/run.js';

const base = ['--aggregator', 'verdict-aggregator.verdict.svc:9090', '--host-root', '/host'];

t.test('run flags are validated once, with messages that say what to do', async (t) => {
  const c = parseRunArgs([
    ...base,
    '--flows',
    'goldmane:goldmane.calico-system.svc:7443',
    '--goldmane-ca',
    '/certs/ca.crt',
    '--goldmane-cert',
    '/certs/tls.crt',
    '--goldmane-key',
    '/certs/tls.key',
    '--internal-cidr',
    '10.0.0.0/8,192.168.0.0/16',
  ]);
  t.same(c.goldmaneTls, {
    caFile: '/certs/ca.crt',
    certFile: '/certs/tls.crt',
    keyFile: '/certs/tls.key',
    serverName: undefined,
  });
  t.same(c.internalCidrs, ['10.0.0.0/8', '192.168.0.0/16']);
  t.equal(c.flowWindowMs, 15000);
  for (const [args, message] of [
    [['--goldmane-cert', '/c'], /need --goldmane-ca/],
    [['--goldmane-ca', '/ca', '--goldmane-cert', '/c'], /go together/],
    [['--flows', 'netflow:/x'], /--flows takes/],
    [['--internal-cidr', '10.0.0.0'], /not a CIDR/],
    // Each was read as a range before: '/' with nothing after it, a second '/', a zone, a prefix that fits no family.
    [['--internal-cidr', '10.0.0.0/8/9'], /"10\.0\.0\.0\/8\/9" is not a CIDR/],
    [['--internal-cidr', 'fe80::1%eth0/64'], /not a CIDR/],
    [['--internal-cidr', '10.0.0.0/08'], /not a CIDR/],
    [['--internal-cidr', '10.0.0.0/33'], /not a CIDR/],
    [['--internal-cidr', '10.0.0.0/8,1.2.3.4/\n'], /not a CIDR/],
    [['--flow-window-ms', '5'], /--flow-window-ms must be an integer of at least 100/],
  ] as const)
    t.throws(() => parseRunArgs([...base, ...args]), { message }, args.join(' '));
  t.throws(() => parseRunArgs(['--host-root', '/host']), { message: /--aggregator HOST:PORT is required/ });
});
