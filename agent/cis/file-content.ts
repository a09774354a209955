import { documentField, isDocumentMap } from '../../common/parsed-document.js';

/** A verdict on a file's contents: `actual` says what was found, `reason` why it fails. */
export interface ContentVerdict {
  pass: boolean;
  actual: string;
  reason?: string;
}

/** Providers that encrypt (EncryptionConfiguration, apiserver.config.k8s.io/v1); identity stores plain text. */
const ENCRYPTING_PROVIDERS = new Set(['aescbc', 'aesgcm', 'secretbox', 'kms']);

/**
 * CIS 1.2.28 "Ensure that encryption providers are appropriately configured": Secrets must be written encrypted. The
 * API server uses, for a resource, the first `resources` entry that names it (`secrets`, `*.` for every core resource,
 * `*.*` for every resource) and writes with that entry's first provider; later providers only read. PASS when that
 * first provider is aescbc, aesgcm, secretbox or kms; identity first (or no entry for secrets) stores them in plain
 * text.
 */
export function judgeEncryptionConfig(doc: unknown): ContentVerdict {
  if (!isDocumentMap(doc))
    return fail('(not an EncryptionConfiguration)', 'the file is not an EncryptionConfiguration object');
  const kind = documentField(doc, 'kind');
  if (kind !== 'EncryptionConfiguration')
    return fail(`kind ${String(kind)}`, `kind is ${JSON.stringify(kind)}, not EncryptionConfiguration`);
  const entries = documentField(doc, 'resources');
  if (!Array.isArray(entries)) return fail('(no resources)', 'no resources list: nothing is encrypted');
  for (const entry of entries as unknown[]) {
    const names = documentField(entry, 'resources');
    if (!Array.isArray(names) || !names.some((n) => n === 'secrets' || n === '*.' || n === '*.*')) continue;
    const providers = documentField(entry, 'providers');
    const first = Array.isArray(providers) ? (providers as unknown[])[0] : undefined;
    const firstName = isDocumentMap(first) ? Object.keys(first)[0] : undefined;
    const all = Array.isArray(providers)
      ? (providers as unknown[]).map((p) => (isDocumentMap(p) ? (Object.keys(p)[0] ?? '?') : '?'))
      : [];
    const actual = `secrets (entry ${names.map(String).join(', ')}): ${all.length > 0 ? all.join(', ') : 'no providers'}`;
    if (firstName === undefined) return fail(actual, 'the entry for secrets has no provider');
    if (ENCRYPTING_PROVIDERS.has(firstName)) return { pass: true, actual };
    return fail(actual, `the first provider for secrets is ${firstName}: new Secrets are written unencrypted`);
  }
  return fail('secrets: no entry', 'no resources entry names secrets: Secrets are stored unencrypted');
}

const LEVELS = ['None', 'Metadata', 'Request', 'RequestResponse'];

/** The requests 3.2.2 asks about, as an ordinary authenticated user would make them. */
const PROBES: { what: string; group: string; resource: string; verb: string; namespace: string }[] = [
  { what: 'secrets', group: '', resource: 'secrets', verb: 'get', namespace: 'default' },
  { what: 'configmaps', group: '', resource: 'configmaps', verb: 'get', namespace: 'default' },
  { what: 'tokenreviews', group: 'authentication.k8s.io', resource: 'tokenreviews', verb: 'create', namespace: '' },
];

/**
 * CIS 3.2.2 "Ensure that the audit policy covers key security concerns": the policy has rules, and "care should be
 * taken to only log Metadata for requests to Secrets, ConfigMaps, and TokenReviews, in order to avoid risk of logging
 * sensitive data" (the CIS rationale). So a get of a Secret or ConfigMap and a TokenReview create must be logged
 * (level not None) at Metadata, not Request or RequestResponse, which would write Secret data and tokens into the
 * log. The level is the first rule that matches, as k8s.io/apiserver's policy checker decides it (users, userGroups,
 * verbs, namespaces, resources with group, "*", "resource/*" and resourceNames; a rule with only nonResourceURLs
 * matches no resource request; no matching rule means None), for a user the policy does not name, in the
 * system:authenticated group.
 */
export function judgeAuditPolicy(doc: unknown): ContentVerdict {
  if (!isDocumentMap(doc) || documentField(doc, 'kind') !== 'Policy')
    return fail('(not an audit Policy)', 'the file is not an audit.k8s.io Policy');
  const rules = documentField(doc, 'rules');
  if (!Array.isArray(rules) || rules.length === 0)
    return fail('no rules', 'the policy has no rules: nothing is logged');
  const found: string[] = [];
  const problems: string[] = [];
  for (const p of PROBES) {
    const index = (rules as unknown[]).findIndex((r) => ruleMatches(r, p));
    const level = index < 0 ? 'None' : String(documentField(rules[index], 'level') ?? 'None');
    found.push(`${p.what}: ${level}${index < 0 ? ' (no rule matches)' : ` (rule ${index + 1})`}`);
    if (!LEVELS.includes(level)) problems.push(`${p.what} at unknown level ${level}`);
    else if (level === 'None') problems.push(`${p.what} requests are not logged`);
    else if (level !== 'Metadata') problems.push(`${p.what} are logged at ${level}, which records their contents`);
  }
  const actual = found.join(', ');
  return problems.length === 0 ? { pass: true, actual } : fail(actual, problems.join('; '));
}

function ruleMatches(rule: unknown, p: (typeof PROBES)[number]): boolean {
  const list = (key: string): unknown[] | undefined => {
    const v = documentField(rule, key);
    return Array.isArray(v) && v.length > 0 ? v : undefined;
  };
  if (list('users')) return false; // names specific users, not the ordinary one
  const groups = list('userGroups');
  if (groups && !groups.includes('system:authenticated')) return false;
  const verbs = list('verbs');
  if (verbs && !verbs.includes(p.verb)) return false;
  const namespaces = list('namespaces');
  const resources = list('resources');
  if (namespaces || resources) {
    if (namespaces && !namespaces.includes(p.namespace)) return false;
    if (!resources) return true;
    return resources.some((gr) => {
      if ((documentField(gr, 'group') ?? '') !== p.group) return false;
      const names = documentField(gr, 'resources');
      if (!Array.isArray(names) || names.length === 0) return true;
      const resourceNames = documentField(gr, 'resourceNames');
      if (Array.isArray(resourceNames) && resourceNames.length > 0) return false; // named objects only
      return names.some((n) => n === p.resource || n === '*' || n === `${p.resource}/*`);
    });
  }
  return !list('nonResourceURLs');
}

function fail(actual: string, reason: string): ContentVerdict {
  return { pass: false, actual, reason };
}
