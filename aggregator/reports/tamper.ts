import type { PolicyChange } from './types/policy-audit.js';

/** Where a policy change raises a tamper alert: protected namespaces and Calico tiers. */
export interface TamperConfig {
  namespaces: string[];
  tiers: string[];
}

export interface TamperAlert extends PolicyChange {
  /** Why it is an alert: "namespace payments is protected", "tier security is protected". */
  reason: string;
}

/** The changes that touched protected namespaces or tiers. */
export function tamperAlerts(changes: PolicyChange[], cfg: TamperConfig): TamperAlert[] {
  const out: TamperAlert[] = [];
  for (const c of changes) {
    const reasons: string[] = [];
    if (c.namespace && cfg.namespaces.includes(c.namespace)) reasons.push(`namespace ${c.namespace} is protected`);
    if (c.tier && cfg.tiers.includes(c.tier)) reasons.push(`tier ${c.tier} is protected`);
    if (c.kind === 'tiers' && cfg.tiers.includes(c.name)) reasons.push(`tier ${c.name} itself changed`);
    if (reasons.length > 0) out.push({ ...c, reason: reasons.join('; ') });
  }
  return out;
}
