import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { toDocumentValue } from '../../common/parsed-document.js';
import { docOf, fieldDoc, fieldList, fieldString, type Doc } from '../network-access/document.js';

/**
 * The cluster as a directory of Kubernetes YAML (or JSON) says it is: what `kubectl get pods,namespaces,... -A -o
 * yaml > FILE` writes (a List document whose items are the objects), single objects, and files of several documents
 * separated by `---`. Objects are kept as parsed, to be read through the guards of network-access/document.ts.
 */
export interface ClusterSnapshot {
  /** The directory read. */
  dir: string;
  pods: Doc[];
  namespaces: Doc[];
  serviceAccounts: Doc[];
  services: Doc[];
  /**
   * Network policies and Calico Tiers: networking.k8s.io NetworkPolicy, projectcalico.org (and crd.projectcalico.org)
   * NetworkPolicy, GlobalNetworkPolicy, their Staged kinds, StagedKubernetesNetworkPolicy, Tier; cilium.io
   * CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy; Calico NetworkSet and GlobalNetworkSet (the nets rule
   * selectors may name) and HostEndpoint (endpoints GlobalNetworkPolicies protect), kept with the policies as one
   * configuration.
   */
  policies: Doc[];
  /** Objects of other kinds (Deployments, ConfigMaps, ...), counted and left out. */
  ignored: number;
  /** Files read. */
  files: number;
}

/** One thing in the directory that could not be read, with where it is. */
export interface SnapshotProblem {
  file: string;
  /** 1-based document in the file; 0 for the file itself. */
  document: number;
  reason: string;
}

/** The largest file read (a `kubectl get -A -o yaml` of a big cluster's pods is tens of MiB). */
const MAX_FILE_BYTES = 256 * 1024 * 1024;
const EXTENSIONS = /\.(ya?ml|json)$/i;
const POLICY_KINDS = new Set([
  'networking.k8s.io/NetworkPolicy',
  'projectcalico.org/NetworkPolicy',
  'projectcalico.org/GlobalNetworkPolicy',
  'projectcalico.org/StagedNetworkPolicy',
  'projectcalico.org/StagedGlobalNetworkPolicy',
  'projectcalico.org/StagedKubernetesNetworkPolicy',
  'projectcalico.org/Tier',
  'crd.projectcalico.org/NetworkPolicy',
  'crd.projectcalico.org/GlobalNetworkPolicy',
  'crd.projectcalico.org/StagedNetworkPolicy',
  'crd.projectcalico.org/StagedGlobalNetworkPolicy',
  'crd.projectcalico.org/StagedKubernetesNetworkPolicy',
  'crd.projectcalico.org/Tier',
  'projectcalico.org/NetworkSet',
  'projectcalico.org/GlobalNetworkSet',
  'crd.projectcalico.org/NetworkSet',
  'crd.projectcalico.org/GlobalNetworkSet',
  'projectcalico.org/HostEndpoint',
  'crd.projectcalico.org/HostEndpoint',
  'cilium.io/CiliumNetworkPolicy',
  'cilium.io/CiliumClusterwideNetworkPolicy',
]);
const NAMESPACED = new Set(['Pod', 'ServiceAccount', 'Service']);
const NAMESPACED_POLICIES = new Set([
  'NetworkPolicy',
  'StagedNetworkPolicy',
  'StagedKubernetesNetworkPolicy',
  'CiliumNetworkPolicy',
  'NetworkSet',
]);

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (entry.name.startsWith('.')) continue;
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && EXTENSIONS.test(entry.name)) out.push(path);
    }
  };
  walk(dir);
  return out;
}

/** Why an object cannot be used, or undefined. */
function objectProblem(o: Doc): string | undefined {
  const apiVersion = fieldString(o, 'apiVersion');
  const kind = fieldString(o, 'kind');
  if (!apiVersion) return 'apiVersion is missing or not a string';
  if (!kind) return 'kind is missing or not a string';
  const meta = fieldDoc(o, 'metadata');
  if (!fieldString(meta, 'name')) return `${kind}: metadata.name is missing or not a string`;
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  const namespaced = group === '' ? NAMESPACED.has(kind) : NAMESPACED_POLICIES.has(kind);
  if (namespaced && !fieldString(meta, 'namespace'))
    return `${kind} ${fieldString(meta, 'name')}: metadata.namespace is missing (kubectl get -A -o yaml writes it)`;
  return undefined;
}

/**
 * Read a snapshot directory (every .yaml, .yml and .json file under it, in name order). Strict: a file that is not
 * YAML, a document that is not an object, an object without apiVersion, kind or name (or namespace where the kind
 * has one) is a problem, and every problem is returned with its file and document so the caller can refuse the whole
 * snapshot naming them; objects of kinds no report reads are counted in `ignored`.
 */
export function readClusterSnapshot(dir: string): { snapshot: ClusterSnapshot; problems: SnapshotProblem[] } {
  const snapshot: ClusterSnapshot = {
    dir,
    pods: [],
    namespaces: [],
    serviceAccounts: [],
    services: [],
    policies: [],
    ignored: 0,
    files: 0,
  };
  const problems: SnapshotProblem[] = [];
  for (const path of filesUnder(dir)) {
    const file = relative(dir, path) || path;
    const size = statSync(path).size;
    if (size > MAX_FILE_BYTES) {
      problems.push({ file, document: 0, reason: `larger than ${MAX_FILE_BYTES} bytes; split it` });
      continue;
    }
    snapshot.files++;
    const docs = parseAllDocuments(readFileSync(path, 'utf8'), {
      uniqueKeys: true,
      prettyErrors: false,
      logLevel: 'error',
    });
    const list = Array.isArray(docs) ? docs : [docs];
    for (const [i, d] of list.entries()) {
      const at = { file, document: i + 1 };
      const err = d.errors[0];
      if (err) {
        problems.push({ ...at, reason: `not valid YAML: ${err.message.split('\n')[0] ?? err.code}` });
        continue;
      }
      let value: unknown;
      try {
        value = d.toJS({ maxAliasCount: 100 });
      } catch (err) {
        // An alias bomb, or nesting too deep for the stack, is this document's problem, not the end of the read.
        problems.push({ ...at, reason: `not valid YAML: ${firstLine(err)}` });
        continue;
      }
      if (value === null || value === undefined) continue; // an empty document (a trailing ---)
      const o = docOf(value);
      if (!o) {
        problems.push({ ...at, reason: 'not an object' });
        continue;
      }
      const kind = fieldString(o, 'kind') ?? '';
      const items = kind.endsWith('List') ? fieldList(o, 'items') : undefined;
      const objects = items ?? [o];
      if (kind.endsWith('List') && items === undefined) {
        problems.push({ ...at, reason: `${kind} without an items list` });
        continue;
      }
      for (const [j, item] of objects.entries()) {
        const where = items ? `items[${j}]: ` : '';
        // Each object as null-prototype data (a "__proto__" key is a plain key; a cycle, a !!binary value, too deep
        // or too large is a problem), copied one object at a time so a List of a big cluster is not one huge value.
        let obj: Doc | undefined;
        try {
          obj = docOf(toDocumentValue(item));
        } catch (err) {
          problems.push({ ...at, reason: `${where}${firstLine(err)}` });
          continue;
        }
        const bad = obj ? objectProblem(obj) : 'not an object';
        if (bad || !obj) {
          problems.push({ ...at, reason: `${where}${bad ?? 'not an object'}` });
          continue;
        }
        fileObject(snapshot, obj);
      }
    }
  }
  return { snapshot, problems };
}

function fileObject(s: ClusterSnapshot, o: Doc): void {
  const apiVersion = fieldString(o, 'apiVersion') ?? '';
  const kind = fieldString(o, 'kind') ?? '';
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  if (group === '' && apiVersion === 'v1') {
    if (kind === 'Pod') return void s.pods.push(o);
    if (kind === 'Namespace') return void s.namespaces.push(o);
    if (kind === 'ServiceAccount') return void s.serviceAccounts.push(o);
    if (kind === 'Service') return void s.services.push(o);
  }
  if (POLICY_KINDS.has(`${group}/${kind}`)) return void s.policies.push(o);
  s.ignored++;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] as string;
}
