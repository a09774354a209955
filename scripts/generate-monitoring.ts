// Generates the monitoring manifests that are derived from hand-edited sources:
//   manifests/monitoring/prometheusrule.yaml   from manifests/monitoring/rules.yaml
//   manifests/monitoring/grafana-dashboard.yaml from manifests/monitoring/dashboards/verdict.json
// Run with `npm run generate` (builds, then runs dist/scripts/generate-monitoring.js).
// test/monitoring/prometheus.test.ts fails when the shipped files differ from what
// this produces. The module only writes when run as a program; importing it does not.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../common/package-root.js';

const LABELS = `    app.kubernetes.io/name: verdict
    app.kubernetes.io/component: monitoring
    app.kubernetes.io/part-of: verdict`;

const indent = (text: string, n: number) =>
  text
    .split('\n')
    .map((l) => (l === '' ? l : ' '.repeat(n) + l))
    .join('\n');

/** prometheusrule.yaml: the `groups:` of rules.yaml (from that line on) under a PrometheusRule's spec. */
export function renderPrometheusRule(rulesText: string): string {
  const at = rulesText.indexOf('\ngroups:');
  if (at < 0) throw new Error('rules.yaml has no top-level "groups:" line');
  const groups = rulesText.slice(at + 1);
  return `# GENERATED from rules.yaml (edit that, then run npm run generate).
# The same alerting rules for prometheus-operator. Its Prometheus picks
# PrometheusRules by label: kube-prometheus-stack by default only those labelled
# release: <its Helm release name>, so add that label (or set
# prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues: false).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: verdict
  namespace: verdict
  labels:
${LABELS}
spec:
${indent(groups, 2)}`;
}

/** grafana-dashboard.yaml: a ConfigMap holding dashboards/verdict.json byte for byte (a literal block). */
export function renderDashboardConfigMap(json: string): string {
  return `# GENERATED from dashboards/verdict.json (edit that, then run npm run generate).
# The Verdict Grafana dashboard for the Grafana dashboard sidecar
# (kube-prometheus-stack), which imports ConfigMaps labelled grafana_dashboard: "1"
# (from every namespace with sidecar.dashboards.searchNamespace: ALL; into the
# folder named by the grafana_folder annotation with
# sidecar.dashboards.folderAnnotation: grafana_folder). Without the sidecar see
# grafana-provisioning.yaml.
apiVersion: v1
kind: ConfigMap
metadata:
  name: verdict-grafana-dashboard
  namespace: verdict
  labels:
    grafana_dashboard: "1"
${LABELS}
  annotations:
    grafana_folder: Verdict
data:
  verdict.json: |
${indent(json.replace(/\n$/, ''), 4)}
`;
}

/** Every generated file under `root` (the package root), with the content it must have. */
export function monitoringOutputs(root = packageRoot()): { file: string; content: string }[] {
  const mon = join(root, 'manifests', 'monitoring');
  return [
    {
      file: join(mon, 'prometheusrule.yaml'),
      content: renderPrometheusRule(readFileSync(join(mon, 'rules.yaml'), 'utf8')),
    },
    {
      file: join(mon, 'grafana-dashboard.yaml'),
      content: renderDashboardConfigMap(readFileSync(join(mon, 'dashboards', 'verdict.json'), 'utf8')),
    },
  ];
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const root = packageRoot();
  for (const { file, content } of monitoringOutputs(root)) {
    let old: string | undefined;
    try {
      old = readFileSync(file, 'utf8');
    } catch {
      old = undefined;
    }
    if (old === content) continue;
    writeFileSync(file, content);
    process.stdout.write(`wrote ${relative(root, file)}\n`);
  }
}
