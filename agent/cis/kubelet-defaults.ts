/**
 * The values the kubelet uses for settings nobody set.
 *
 * With a `--config` file the kubelet applies the KubeletConfiguration v1beta1
 * defaults (SetDefaults_KubeletConfiguration). Without one it starts from the same
 * defaults and then `applyLegacyDefaults` (cmd/kubelet/app/options) switches four
 * of them back to their historical, insecure command-line values: anonymous auth
 * on, webhook authentication off, AlwaysAllow authorization, read-only port 10255.
 * Only fields the benchmarks read are listed; keys are KubeletConfiguration JSON
 * paths.
 */
export const KUBELET_CONFIG_DEFAULTS: Readonly<Record<string, string>> = {
  'authentication.anonymous.enabled': 'false',
  'authentication.webhook.enabled': 'true',
  'authentication.webhook.cacheTTL': '2m0s',
  'authentication.x509.clientCAFile': '',
  'authorization.mode': 'Webhook',
  readOnlyPort: '0',
  port: '10250',
  address: '0.0.0.0',
  healthzPort: '10248',
  healthzBindAddress: '127.0.0.1',
  streamingConnectionIdleTimeout: '4h0m0s',
  makeIPTablesUtilChains: 'true',
  eventRecordQPS: '50',
  eventBurst: '100',
  protectKernelDefaults: 'false',
  rotateCertificates: 'false',
  serverTLSBootstrap: 'false',
  podPidsLimit: '-1',
  seccompDefault: 'false',
  tlsCertFile: '',
  tlsPrivateKeyFile: '',
  tlsMinVersion: '',
  enableDebuggingHandlers: 'true',
  enableProfilingHandler: 'true',
  failSwapOn: 'true',
  maxPods: '110',
  cgroupDriver: 'cgroupfs',
  hairpinMode: 'promiscuous-bridge',
  staticPodPath: '',
  // pkg/features/kube_features.go: alpha (default false) in 1.7, beta and default true since 1.12, still beta.
  'featureGates.RotateKubeletServerCertificate': 'true',
};

/** applyLegacyDefaults: what changes when the kubelet runs without a config file. */
export const KUBELET_LEGACY_FLAG_DEFAULTS: Readonly<Record<string, string>> = {
  'authentication.anonymous.enabled': 'true',
  'authentication.webhook.enabled': 'false',
  'authorization.mode': 'AlwaysAllow',
  readOnlyPort: '10255',
};

/** Kubelet flags that are booleans (pflag does not let them take the next word). */
export const KUBELET_BOOLEAN_FLAGS: ReadonlySet<string> = new Set([
  'anonymous-auth',
  'authentication-token-webhook',
  'protect-kernel-defaults',
  'make-iptables-util-chains',
  'rotate-certificates',
  'rotate-server-certificates',
  'seccomp-default',
  'fail-swap-on',
  'register-node',
  'register-schedulable',
  'enable-server',
  'enable-debugging-handlers',
  'enable-controller-attach-detach',
  'cgroups-per-qos',
  'serialize-image-pulls',
  'keep-terminated-pod-volumes',
  'logtostderr',
  'alsologtostderr',
  'exit-on-lock-contention',
  'fail-cgroupv1',
  'help',
  'version',
]);

/**
 * The command-line flag of each KubeletConfiguration field a path template
 * (`{kubelet:FIELD}`) names, so a file check resolves its path the way the
 * kubelet does — flag over drop-ins over the config file over defaults — like
 * the value checks, which name their flag in the benchmark. Names as in the
 * kubelet's `--help` (cmd/kubelet/app/options).
 */
export const KUBELET_SETTING_FLAGS: Readonly<Record<string, string>> = {
  'authentication.x509.clientCAFile': 'client-ca-file',
  tlsCertFile: 'tls-cert-file',
  tlsPrivateKeyFile: 'tls-private-key-file',
  staticPodPath: 'pod-manifest-path',
};

/**
 * KubeletConfiguration fields that SetDefaults_KubeletConfiguration
 * (pkg/kubelet/apis/config/v1beta1/defaults.go) defaults when they hold their
 * type's zero value: non-pointer durations (`== zeroDuration`), integers
 * (`== 0`) and strings (`== ""`). kubeadm writes many of them as `0s`
 * (`streamingConnectionIdleTimeout: 0s` in /var/lib/kubelet/config.yaml), and
 * the kubelet runs with the default, not with 0. Only the --config file is
 * defaulted this way: drop-ins are merged as JSON over the defaulted file and
 * flags are parsed over the result (cmd/kubelet/app/server.go,
 * mergeKubeletConfigurations and kubeletConfigFlagPrecedence), so a zero there
 * is a zero. Pointer fields are defaulted only when absent, so their zero stays:
 * eventRecordQPS (0 = no limit), healthzPort, registryPullQPS, kubeAPIQPS,
 * podPidsLimit (whose negative values become -1); readOnlyPort has no default
 * at all (0 = off).
 */
export const KUBELET_ZERO_MEANS_DEFAULT: Readonly<Record<string, string>> = {
  syncFrequency: '1m0s',
  fileCheckFrequency: '20s',
  httpCheckFrequency: '20s',
  address: '0.0.0.0',
  port: '10250',
  'authentication.webhook.cacheTTL': '2m0s',
  'authorization.mode': 'Webhook',
  'authorization.webhook.cacheAuthorizedTTL': '5m0s',
  'authorization.webhook.cacheUnauthorizedTTL': '30s',
  registryBurst: '10',
  eventBurst: '100',
  healthzBindAddress: '127.0.0.1',
  streamingConnectionIdleTimeout: '4h0m0s',
  nodeStatusUpdateFrequency: '10s',
  nodeLeaseDurationSeconds: '40',
  imageMinimumGCAge: '2m0s',
  volumeStatsAggPeriod: '1m0s',
  cgroupDriver: 'cgroupfs',
  cpuManagerReconcilePeriod: '10s',
  runtimeRequestTimeout: '2m0s',
  hairpinMode: 'promiscuous-bridge',
  maxPods: '110',
  maxOpenFiles: '1000000',
  kubeAPIBurst: '100',
  evictionPressureTransitionPeriod: '5m0s',
};
