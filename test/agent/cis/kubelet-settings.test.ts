import t from 'tap';
import { HostView } from '../../../agent/cis/host.js';
import { readKubeletSettings, resolveSetting } from '../../../agent/cis/kubelet.js';
import { listProcesses, parseFlags } from '../../../agent/cis/processes.js';
import { NodeRootBuilder } from '../../../examples/node-root.js';
import { tempDir } from '../../fixtures/tmp.js';

const KC = (extra: Record<string, unknown>) => ({
  apiVersion: 'kubelet.config.k8s.io/v1beta1',
  kind: 'KubeletConfiguration',
  ...extra,
});

function settingsOf(b: NodeRootBuilder) {
  const host = new HostView(b.root);
  return readKubeletSettings(host, listProcesses(host));
}

t.test('flags parse in both --a=b and --a b forms; a boolean flag never takes the next word', async (t) => {
  const f = parseFlags(
    ['--config', '/etc/k.yaml', '--anonymous-auth', 'false', '--read-only-port=0', '--v=2'],
    new Set(['anonymous-auth']),
  );
  t.equal(f.get('config'), '/etc/k.yaml');
  t.equal(
    f.get('anonymous-auth'),
    'true',
    'pflag: "--anonymous-auth false" sets true and leaves "false" as an argument',
  );
  t.equal(f.get('read-only-port'), '0');
  t.equal(f.get('v'), '2');
});

t.test('a repeated flag keeps its last value', async (t) => {
  t.equal(parseFlags(['--read-only-port=10255', '--read-only-port=0']).get('read-only-port'), '0');
});

const cases: {
  name: string;
  build: (b: NodeRootBuilder) => void;
  setting: string;
  flag?: string;
  value: string | undefined;
  source: RegExp;
}[] = [
  {
    name: 'a setting only in a drop-in is found (kube-bench misses it)',
    build: (b) => {
      b.yaml('/var/lib/kubelet/config.yaml', KC({}), { mode: 0o600 });
      b.yaml(
        '/etc/kubernetes/kubelet.conf.d/10-ro.conf',
        KC({ readOnlyPort: 0, authentication: { anonymous: { enabled: false } } }),
      );
      b.process(10, [
        '/usr/bin/kubelet',
        '--config=/var/lib/kubelet/config.yaml',
        '--config-dir=/etc/kubernetes/kubelet.conf.d',
      ]);
    },
    setting: 'authentication.anonymous.enabled',
    flag: 'anonymous-auth',
    value: 'false',
    source: /10-ro\.conf/,
  },
  {
    name: 'a drop-in overrides the main config file',
    build: (b) => {
      b.yaml('/var/lib/kubelet/config.yaml', KC({ readOnlyPort: 10255 }));
      b.yaml('/etc/kubelet.d/50-fix.conf', KC({ readOnlyPort: 0 }));
      b.process(10, ['/usr/bin/kubelet', '--config=/var/lib/kubelet/config.yaml', '--config-dir=/etc/kubelet.d']);
    },
    setting: 'readOnlyPort',
    value: '0',
    source: /50-fix\.conf/,
  },
  {
    name: 'drop-ins merge in lexical order, the last one wins, and only *.conf counts',
    build: (b) => {
      b.yaml('/var/lib/kubelet/config.yaml', KC({}));
      b.yaml('/etc/kubelet.d/20-b.conf', KC({ podPidsLimit: 200 }));
      b.yaml('/etc/kubelet.d/10-a.conf', KC({ podPidsLimit: 100 }));
      b.yaml('/etc/kubelet.d/99-z.conf.bak', KC({ podPidsLimit: 999 }));
      b.process(10, ['/usr/bin/kubelet', '--config', '/var/lib/kubelet/config.yaml', '--config-dir', '/etc/kubelet.d']);
    },
    setting: 'podPidsLimit',
    value: '200',
    source: /20-b\.conf/,
  },
  {
    name: 'drop-ins merge objects key by key',
    build: (b) => {
      b.yaml(
        '/var/lib/kubelet/config.yaml',
        KC({ authentication: { x509: { clientCAFile: '/etc/kubernetes/pki/ca.crt' }, anonymous: { enabled: true } } }),
      );
      b.yaml('/etc/kubelet.d/10.conf', KC({ authentication: { anonymous: { enabled: false } } }));
      b.process(10, ['/usr/bin/kubelet', '--config=/var/lib/kubelet/config.yaml', '--config-dir=/etc/kubelet.d']);
    },
    setting: 'authentication.x509.clientCAFile',
    value: '/etc/kubernetes/pki/ca.crt',
    source: /config\.yaml/,
  },
  {
    name: 'a kubelet config at a non-standard path given by --config is read',
    build: (b) => {
      b.yaml('/opt/site/kubelet/settings.yaml', KC({ streamingConnectionIdleTimeout: '5m' }));
      b.process(10, ['/usr/bin/kubelet', '--config=/opt/site/kubelet/settings.yaml']);
    },
    setting: 'streamingConnectionIdleTimeout',
    flag: 'streaming-connection-idle-timeout',
    value: '5m',
    source: /settings\.yaml/,
  },
  {
    name: 'a command-line flag overrides the config file and the drop-ins',
    build: (b) => {
      b.yaml('/var/lib/kubelet/config.yaml', KC({ readOnlyPort: 0 }));
      b.yaml('/etc/kubelet.d/10.conf', KC({ readOnlyPort: 0 }));
      b.process(10, [
        '/usr/bin/kubelet',
        '--config=/var/lib/kubelet/config.yaml',
        '--config-dir=/etc/kubelet.d',
        '--read-only-port=10255',
      ]);
    },
    setting: 'readOnlyPort',
    flag: 'read-only-port',
    value: '10255',
    source: /flag --read-only-port \(pid 10\)/,
  },
  {
    name: 'with a config file, unset settings take the KubeletConfiguration v1beta1 defaults',
    build: (b) => {
      b.yaml('/var/lib/kubelet/config.yaml', KC({}));
      b.process(10, ['/usr/bin/kubelet', '--config=/var/lib/kubelet/config.yaml']);
    },
    setting: 'authentication.anonymous.enabled',
    flag: 'anonymous-auth',
    value: 'false',
    source: /v1beta1 default/,
  },
  {
    name: 'without a config file, the legacy flag defaults apply (anonymous auth on)',
    build: (b) => {
      b.process(10, ['/usr/bin/kubelet', '--kubeconfig=/etc/kubernetes/kubelet.conf']);
    },
    setting: 'authentication.anonymous.enabled',
    flag: 'anonymous-auth',
    value: 'true',
    source: /without a --config file/,
  },
  {
    name: 'without a config file the read-only port is 10255',
    build: (b) => b.process(10, ['/usr/bin/kubelet']),
    setting: 'readOnlyPort',
    flag: 'read-only-port',
    value: '10255',
    source: /without a --config file/,
  },
  {
    name: 'a feature gate on the command line answers featureGates.X',
    build: (b) => {
      b.yaml('/var/lib/kubelet/config.yaml', KC({ featureGates: { RotateKubeletServerCertificate: false } }));
      b.process(10, [
        '/usr/bin/kubelet',
        '--config=/var/lib/kubelet/config.yaml',
        '--feature-gates=Foo=false,RotateKubeletServerCertificate=true',
      ]);
    },
    setting: 'featureGates.RotateKubeletServerCertificate',
    flag: 'feature-gates',
    value: 'true',
    source: /flag --feature-gates/,
  },
  {
    name: 'lists in the config file read as comma-separated values',
    build: (b) => {
      b.yaml('/var/lib/kubelet/config.yaml', KC({ tlsCipherSuites: ['TLS_A', 'TLS_B'] }));
      b.process(10, ['/usr/bin/kubelet', '--config=/var/lib/kubelet/config.yaml']);
    },
    setting: 'tlsCipherSuites',
    flag: 'tls-cipher-suites',
    value: 'TLS_A,TLS_B',
    source: /config\.yaml/,
  },
  {
    name: 'when the kubelet is not running, its systemd unit, drop-ins and environment files give the command line',
    build: (b) => {
      b.file('/usr/lib/systemd/system/kubelet.service', '[Service]\nExecStart=/usr/bin/kubelet\n');
      b.file(
        '/etc/systemd/system/kubelet.service.d/10-kubeadm.conf',
        '[Service]\nEnvironment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS\n',
      );
      b.file('/var/lib/kubelet/kubeadm-flags.env', 'KUBELET_KUBEADM_ARGS="--read-only-port=10255 --v=2"\n');
      b.yaml('/var/lib/kubelet/config.yaml', KC({ readOnlyPort: 0 }));
    },
    setting: 'readOnlyPort',
    flag: 'read-only-port',
    value: '10255',
    source: /10-kubeadm\.conf \(kubelet not running\)/,
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const b = new NodeRootBuilder(`${tempDir(t)}/node`);
    c.build(b);
    const r = resolveSetting(settingsOf(b), c.setting, c.flag);
    t.equal(r.value, c.value);
    t.match(r.source, c.source);
  });
}

t.test('an unreadable or broken config file is reported, not silently defaulted', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.file('/var/lib/kubelet/config.yaml', 'authentication: [unclosed');
  b.process(10, ['/usr/bin/kubelet', '--config=/var/lib/kubelet/config.yaml']);
  const s = settingsOf(b);
  t.equal(s.configErrors.length, 1);
  t.match(s.configErrors[0], /config\.yaml: not valid YAML/);
});

t.test('a --config file that does not exist is an error; the service unit file is found', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  b.file('/etc/systemd/system/kubelet.service', '[Service]\nExecStart=/usr/bin/kubelet --config=/x.yaml\n');
  b.process(10, ['/usr/bin/kubelet', '--config=/x.yaml']);
  const s = settingsOf(b);
  t.equal(s.origin, 'process');
  t.equal(s.serviceFile, '/etc/systemd/system/kubelet.service');
  t.match(s.configErrors[0], /does not exist/);
});

t.test('no kubelet at all is origin none', async (t) => {
  const b = new NodeRootBuilder(`${tempDir(t)}/node`);
  t.equal(settingsOf(b).origin, 'none');
});

t.test(
  'a --config-dir that cannot be read (a link out of the root) makes the config unknown, not defaulted',
  async (t) => {
    const dir = tempDir(t);
    const b = new NodeRootBuilder(`${dir}/node`);
    b.yaml('/var/lib/kubelet/config.yaml', KC({ readOnlyPort: 0 }));
    b.symlink('/etc/kubelet.d', '../../../../../../../tmp');
    b.process(10, ['/usr/bin/kubelet', '--config=/var/lib/kubelet/config.yaml', '--config-dir=/etc/kubelet.d']);
    const s = settingsOf(b);
    t.match(s.configErrors[0], /--config-dir \/etc\/kubelet\.d: .*climbs above the host root/);
  },
);
