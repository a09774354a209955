import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { CLUSTER_CIS_RBAC_RULES } from '../../../aggregator/cluster-cis/read.js';
import { packageRoot } from '../../../common/package-root.js';

// The aggregator's ClusterRole as shipped must let the section 5 reader list every kind it reads: a missing rule
// would make those checks SKIP "forbidden" in every cluster that applies the manifests.

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
}

const file = join(packageRoot(), 'manifests', 'base', '11-rbac-aggregator.yaml');
const docs = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Record<string, unknown>);
const role = docs.find(
  (d) => d.kind === 'ClusterRole' && (d.metadata as { name?: string } | undefined)?.name === 'verdict-aggregator',
);
const rules = (role?.rules ?? []) as PolicyRule[];

/** Whether some rule grants `verb` on `group`/`resource` cluster-wide (no resourceNames), as RBAC matches it. */
const granted = (group: string, resource: string, verb: string) =>
  rules.some(
    (r) =>
      (r.apiGroups ?? []).some((g) => g === group || g === '*') &&
      (r.resources ?? []).some((x) => x === resource || x === '*') &&
      (r.verbs ?? []).some((v) => v === verb || v === '*') &&
      (r.resourceNames ?? []).length === 0,
  );

t.test("the aggregator's ClusterRole grants list on every kind section 5 reads", async (t) => {
  t.ok(role, `${file} has the verdict-aggregator ClusterRole`);
  for (const need of CLUSTER_CIS_RBAC_RULES)
    for (const group of need.apiGroups)
      for (const resource of need.resources)
        for (const verb of need.verbs) t.ok(granted(group, resource, verb), `${verb} ${resource}.${group || 'core'}`);
});

t.test('it reads RBAC objects and never binds, escalates or reads secrets', async (t) => {
  for (const resource of ['roles', 'clusterroles', 'rolebindings', 'clusterrolebindings'])
    t.ok(granted('rbac.authorization.k8s.io', resource, 'watch'), `watch ${resource}`);
  for (const verb of ['bind', 'escalate', 'create', 'update', 'patch', 'delete'])
    t.notOk(granted('rbac.authorization.k8s.io', 'clusterroles', verb), `no ${verb} on clusterroles`);
  t.notOk(granted('', 'secrets', 'list'), 'no secrets');
  t.notOk(granted('', 'secrets', 'get'), 'no secrets');
});
