import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { buildExampleNodes } from '../../examples/nodes.js';
import { tempDir } from '../fixtures/tmp.js';
import type { ScanReport } from '../../common/scan-report.js';

// Issue 14, item 4 (formats), through the built CLI.
const CLI = join(packageRoot(), 'dist', 'agent', 'cli.js');
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

// worker-weak fails, by hand from examples/nodes.ts: 4.1.1 (unit 644), 4.1.5 (kubeconfig 644), 4.1.9/4.1.10
// (config.yaml 644, uid 1000), 4.2.1 (anonymous auth), 4.2.2 (AlwaysAllow), 4.2.3 (no client CA), 4.2.6
// (makeIPTablesUtilChains false), 4.2.10 (no TLS cert) scored; 4.2.4, 4.2.5, 4.2.7, 4.2.9, 4.2.12, 4.2.13, 4.2.14 not.
const SCORED_FAILS = ['4.1.1', '4.1.5', '4.1.9', '4.1.10', '4.2.1', '4.2.2', '4.2.3', '4.2.6', '4.2.10'];
const UNSCORED_FAILS = ['4.2.4', '4.2.5', '4.2.7', '4.2.9', '4.2.12', '4.2.13', '4.2.14'];

interface Sarif {
  $schema: string;
  version: string;
  runs: {
    tool: {
      driver: { name: string; rules: { id: string; shortDescription: { text: string }; help?: { text: string } }[] };
    };
    results: {
      ruleId: string;
      level: string;
      message: { text: string };
      locations?: { physicalLocation: { artifactLocation: { uri: string } } }[];
    }[];
  }[];
}

t.test('--format sarif: SARIF 2.1.0, one rule per check, one result per FAIL', async (t) => {
  const { roots } = buildExampleNodes(tempDir(t));
  const r = run(['scan', '--host-root', roots['worker-weak'], '--format', 'sarif']);
  t.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as Sarif;
  const json = JSON.parse(run(['scan', '--host-root', roots['worker-weak'], '--format', 'json']).stdout) as ScanReport;
  // The properties SARIF 2.1.0 requires of these objects.
  t.equal(s.version, '2.1.0');
  t.equal(s.$schema, 'https://json.schemastore.org/sarif-2.1.0.json');
  t.equal(s.runs.length, 1);
  const [runObj] = s.runs;
  t.equal(runObj!.tool.driver.name, 'verdict-agent');
  t.same(
    runObj!.tool.driver.rules.map((x) => x.id),
    json.checks.map((c) => c.id),
  );
  const rule421 = runObj!.tool.driver.rules.find((x) => x.id === '4.2.1')!;
  const c421 = json.checks.find((c) => c.id === '4.2.1')!;
  t.equal(rule421.shortDescription.text, c421.title);
  t.equal(rule421.help?.text, c421.remediation.trim().replace(/\s+/g, ' '));
  for (const res of runObj!.results) {
    t.type(res.ruleId, 'string');
    t.type(res.message.text, 'string');
    t.ok(res.message.text.length > 0);
  }
  t.same(
    runObj!.results.filter((x) => x.level === 'error').map((x) => x.ruleId),
    SCORED_FAILS,
  );
  t.same(
    runObj!.results.filter((x) => x.level === 'warning').map((x) => x.ruleId),
    UNSCORED_FAILS,
  );
  const loc = (id: string) =>
    runObj!.results.find((x) => x.ruleId === id)?.locations?.[0]?.physicalLocation.artifactLocation.uri;
  t.equal(loc('4.2.1'), 'file:///var/lib/kubelet/config.yaml', 'the evidence file');
  t.equal(loc('4.2.4'), undefined, 'a flag is no file');
  // --exit-code counts scored failures in every format.
  t.equal(run(['scan', '--host-root', roots['worker-weak'], '--format', 'sarif', '--exit-code']).status, 1);
});
