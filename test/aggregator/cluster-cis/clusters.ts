import type { ClusterObjects } from '../../../aggregator/cluster-cis/evaluate.js';

// Two stand-in clusters, as the Kubernetes API lists them (metadata, spec, rules,
// subjects and roleRef in the documented shapes of rbac.authorization.k8s.io/v1,
// core/v1 and networking.k8s.io/v1): a kubeadm-like cluster with the usual
// mistakes, and the same cluster hardened. Expectations in the tests are
// derived by hand from these objects.

const meta = (name: string, namespace?: string, labels?: Record<string, string>) => ({
  name,
  ...(namespace ? { namespace } : {}),
  uid: `uid-${namespace ?? ''}-${name}`,
  resourceVersion: '100',
  creationTimestamp: '2026-11-01T00:00:00Z',
  ...(labels ? { labels } : {}),
});
const RBAC = 'rbac.authorization.k8s.io/v1';
const DEFAULTS = { 'kubernetes.io/bootstrapping': 'rbac-defaults' };

export const clusterRole = (name: string, rules: unknown[], labels?: Record<string, string>) => ({
  apiVersion: RBAC,
  kind: 'ClusterRole',
  metadata: meta(name, undefined, labels),
  rules,
});
export const role = (ns: string, name: string, rules: unknown[]) => ({
  apiVersion: RBAC,
  kind: 'Role',
  metadata: meta(name, ns),
  rules,
});
export const crb = (name: string, roleName: string, subjects: unknown[]) => ({
  apiVersion: RBAC,
  kind: 'ClusterRoleBinding',
  metadata: meta(name),
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
  subjects,
});
export const rb = (ns: string, name: string, ref: { kind: string; name: string }, subjects: unknown[]) => ({
  apiVersion: RBAC,
  kind: 'RoleBinding',
  metadata: meta(name, ns),
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', ...ref },
  subjects,
});
export const user = (name: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name });
export const group = (name: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name });
export const sa = (namespace: string, name: string) => ({ kind: 'ServiceAccount', name, namespace });
export const namespace = (name: string, enforce?: string) => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: meta(name, undefined, {
    'kubernetes.io/metadata.name': name,
    ...(enforce ? { 'pod-security.kubernetes.io/enforce': enforce } : {}),
  }),
  spec: { finalizers: ['kubernetes'] },
  status: { phase: 'Active' },
});
export const serviceAccount = (ns: string, name: string, automount?: boolean) => ({
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: meta(name, ns),
  ...(automount === undefined ? {} : { automountServiceAccountToken: automount }),
});
export const pod = (ns: string, name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: meta(name, ns),
  spec: { restartPolicy: 'Always', dnsPolicy: 'ClusterFirst', ...spec },
  status: { phase: 'Running' },
});
export const netpol = (ns: string, name: string) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: meta(name, ns),
  spec: { podSelector: {}, policyTypes: ['Ingress'] },
});

/** The built-in roles and bindings kubeadm leaves (all excluded from the checks). */
const SYSTEM_RBAC = {
  clusterroles: [
    clusterRole(
      'cluster-admin',
      [
        { apiGroups: ['*'], resources: ['*'], verbs: ['*'] },
        { nonResourceURLs: ['*'], verbs: ['*'] },
      ],
      DEFAULTS,
    ),
    clusterRole(
      'view',
      [{ apiGroups: [''], resources: ['configmaps', 'pods'], verbs: ['get', 'list', 'watch'] }],
      DEFAULTS,
    ),
    clusterRole('system:node', [{ apiGroups: [''], resources: ['nodes/proxy', 'secrets'], verbs: ['get'] }], DEFAULTS),
    clusterRole(
      'system:kube-controller-manager',
      [{ apiGroups: ['*'], resources: ['*'], verbs: ['list', 'watch'] }],
      DEFAULTS,
    ),
  ],
  clusterrolebindings: [
    crb('cluster-admin', 'cluster-admin', [group('system:masters')]),
    crb('kubeadm:cluster-admins', 'cluster-admin', [group('kubeadm:cluster-admins')]),
    crb('system:node', 'system:node', [group('system:nodes')]),
    crb('system:kube-controller-manager', 'system:kube-controller-manager', [user('system:kube-controller-manager')]),
    crb('kube-proxy-admin', 'cluster-admin', [sa('kube-system', 'kube-proxy')]),
  ],
  rolebindings: [
    rb('kube-system', 'kube-proxy', { kind: 'ClusterRole', name: 'cluster-admin' }, [sa('kube-system', 'kube-proxy')]),
  ],
};

const kubeProxy = pod('kube-system', 'kube-proxy-x7k2p', {
  serviceAccountName: 'kube-proxy',
  hostNetwork: true,
  containers: [
    { name: 'kube-proxy', image: 'registry.k8s.io/kube-proxy:v1.32.0', securityContext: { privileged: true } },
  ],
  volumes: [{ name: 'lib-modules', hostPath: { path: '/lib/modules', type: '' } }],
});

const SYSTEM_NS = ['kube-system', 'kube-public', 'kube-node-lease'].map((n) => namespace(n, 'privileged'));

/** Every kind; the Calico and Cilium APIs absent. */
export function weakCluster(): ClusterObjects {
  return {
    clusterroles: {
      items: [
        ...SYSTEM_RBAC.clusterroles,
        clusterRole('ci-deployer', [
          { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
          { apiGroups: [''], resources: ['pods'], verbs: ['create'] },
          { apiGroups: [''], resources: ['persistentvolumes'], verbs: ['create'] },
          { apiGroups: [''], resources: ['nodes/proxy'], verbs: ['get'] },
          { apiGroups: ['certificates.k8s.io'], resources: ['certificatesigningrequests/approval'], verbs: ['update'] },
          {
            apiGroups: ['admissionregistration.k8s.io'],
            resources: ['validatingwebhookconfigurations'],
            verbs: ['create'],
          },
          { apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] },
          { apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles'], verbs: ['bind'] },
        ]),
      ],
    },
    roles: {
      items: [role('team-a', 'dev-all', [{ apiGroups: [''], resources: ['pods', 'configmaps'], verbs: ['*'] }])],
    },
    clusterrolebindings: {
      items: [
        ...SYSTEM_RBAC.clusterrolebindings,
        crb('dev-admin', 'cluster-admin', [user('jane@example.com')]),
        crb('ci-deployer', 'ci-deployer', [sa('ci', 'deployer')]),
      ],
    },
    rolebindings: {
      items: [
        ...SYSTEM_RBAC.rolebindings,
        rb('team-a', 'dev-all', { kind: 'Role', name: 'dev-all' }, [user('bob@example.com')]),
        rb('team-a', 'default-view', { kind: 'ClusterRole', name: 'view' }, [sa('team-a', 'default')]),
      ],
    },
    namespaces: {
      items: [
        ...SYSTEM_NS,
        namespace('default'),
        namespace('team-a'),
        namespace('team-b', 'baseline'),
        namespace('ci', 'privileged'),
      ],
    },
    serviceaccounts: {
      items: [
        serviceAccount('kube-system', 'default'),
        serviceAccount('kube-system', 'kube-proxy'),
        serviceAccount('default', 'default'),
        serviceAccount('team-a', 'default', false),
        serviceAccount('team-b', 'default', false),
        serviceAccount('ci', 'default'),
        serviceAccount('ci', 'deployer'),
      ],
    },
    pods: {
      items: [
        kubeProxy,
        pod('team-a', 'web', {
          serviceAccountName: 'default',
          containers: [
            {
              name: 'web',
              image: 'nginx:1.27',
              env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }],
            },
          ],
        }),
        pod('team-a', 'priv', {
          serviceAccountName: 'priv-sa',
          hostPID: true,
          containers: [{ name: 'debug', image: 'busybox', securityContext: { privileged: true } }],
        }),
        pod('default', 'nginx', { containers: [{ name: 'nginx', image: 'nginx' }] }),
        pod('ci', 'deploy-job', {
          serviceAccountName: 'deployer',
          automountServiceAccountToken: true,
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'deploy',
              image: 'ci/deploy',
              envFrom: [{ secretRef: { name: 'registry-token' } }],
              securityContext: { allowPrivilegeEscalation: false },
            },
          ],
        }),
      ],
    },
    networkpolicies: { items: [netpol('team-b', 'default-deny')] },
    'calico-networkpolicies': { unavailable: 'no Calico NetworkPolicy API in this cluster' },
    'cilium-networkpolicies': { unavailable: 'no CiliumNetworkPolicy API in this cluster' },
  };
}

const hardenedContainer = {
  name: 'app',
  image: 'registry.example.com/app@sha256:0f0f',
  volumeMounts: [{ name: 'db', mountPath: '/etc/db', readOnly: true }],
  securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
};

/** The same cluster with every automated recommendation met; Calico present. */
export function hardenedCluster(): ClusterObjects {
  return {
    clusterroles: {
      items: [
        ...SYSTEM_RBAC.clusterroles,
        clusterRole('app-reader', [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }]),
      ],
    },
    roles: {
      items: [role('team-a', 'app', [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'update'] }])],
    },
    clusterrolebindings: {
      items: [...SYSTEM_RBAC.clusterrolebindings, crb('app-reader', 'app-reader', [user('alice@example.com')])],
    },
    rolebindings: {
      items: [...SYSTEM_RBAC.rolebindings, rb('team-a', 'app', { kind: 'Role', name: 'app' }, [group('team-a-devs')])],
    },
    namespaces: {
      items: [
        ...SYSTEM_NS,
        namespace('default', 'restricted'),
        namespace('team-a', 'restricted'),
        namespace('team-b', 'restricted'),
      ],
    },
    serviceaccounts: {
      items: [
        serviceAccount('kube-system', 'default'),
        serviceAccount('kube-system', 'kube-proxy'),
        serviceAccount('default', 'default', false),
        serviceAccount('team-a', 'default', false),
        serviceAccount('team-a', 'app', false),
        serviceAccount('team-b', 'default', false),
      ],
    },
    pods: {
      items: [
        kubeProxy,
        pod('team-a', 'app-6d4f9', {
          serviceAccountName: 'app',
          securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [hardenedContainer],
          volumes: [{ name: 'db', secret: { secretName: 'db' } }],
        }),
        pod('team-b', 'batch', {
          automountServiceAccountToken: false,
          containers: [
            {
              ...hardenedContainer,
              securityContext: {
                ...hardenedContainer.securityContext,
                runAsUser: 1000,
                seccompProfile: { type: 'Localhost', localhostProfile: 'batch.json' },
              },
            },
          ],
        }),
      ],
    },
    networkpolicies: { items: [netpol('default', 'deny-all'), netpol('team-a', 'deny-all')] },
    'calico-networkpolicies': {
      items: [
        {
          apiVersion: 'projectcalico.org/v3',
          kind: 'NetworkPolicy',
          metadata: meta('allow-dns', 'team-b'),
          spec: {
            selector: 'all()',
            types: ['Egress'],
            egress: [{ action: 'Allow', protocol: 'UDP', destination: { ports: [53] } }],
          },
        },
      ],
    },
    'cilium-networkpolicies': { unavailable: 'no CiliumNetworkPolicy API in this cluster' },
  };
}
