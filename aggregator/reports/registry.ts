import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { isValid, parseReportsYaml, type InvalidReport, type ReportDefinition } from './globalreport.js';
import { REPORT_TYPES } from './report-types.js';
import { AGGREGATOR_ERRORS } from '../errors.js';

/**
 * Where a cluster's GlobalReports come from: Verdict's own resource, and Calico
 * Enterprise's projectcalico.org/v3 one where its API is installed. Any other
 * origin is the file a definition was read from.
 */
export const CLUSTER_ORIGINS = {
  verdict: 'cluster',
  calico: 'cluster:projectcalico.org/v3',
} as const;

/** Which resource a report was read from, as the API and its status say: "globalreports.<group>" or "file". */
export function reportSource(origin: string): string {
  if (origin === CLUSTER_ORIGINS.verdict) return 'globalreports.compliance.verdict.dev';
  if (origin === CLUSTER_ORIGINS.calico) return 'globalreports.projectcalico.org';
  return 'file';
}

/**
 * The GlobalReports in force. Without a cluster they come from `--reports DIR`
 * (*.yaml / *.yml, several documents per file allowed), re-read when a file
 * changes. An invalid definition is kept with its reason (status and HTTP say
 * why) and never stops the others.
 */
export class ReportRegistry {
  private definitions = new Map<string, ReportDefinition>();
  private invalid = new Map<string, InvalidReport>();
  private fingerprint = '';
  /** Items per source ("dir", "cluster", ...); the registry is their union. */
  private readonly sources = new Map<string, (ReportDefinition | InvalidReport)[]>();
  /** When each report was first seen: where a new schedule starts. */
  readonly firstSeenMs = new Map<string, number>();
  /** Where reports that read the cluster get it ("the cluster", a snapshot); none: they are refused at load. */
  private clusterFacts: string | undefined;

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  get(name: string): ReportDefinition | undefined {
    return this.definitions.get(name);
  }

  all(): ReportDefinition[] {
    return [...this.definitions.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  errors(): InvalidReport[] {
    return [...this.invalid.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * The aggregator can read cluster facts (from the API server, or an offline snapshot): report types that need
   * them are valid from now on. Until then they are listed as invalid with the reason, rather than loaded to fail
   * every run and its retries.
   */
  allowClusterReads(from: string): void {
    this.clusterFacts = from;
    this.replace([...this.sources.values()].flat());
  }

  /** Replace what one source holds (a directory, the cluster); the others stay. */
  setSource(source: string, items: (ReportDefinition | InvalidReport)[]): void {
    this.sources.set(source, items);
    this.replace([...this.sources.values()].flat());
  }

  /** Replace the whole set (tests; sources go through setSource). */
  replace(items: (ReportDefinition | InvalidReport)[]): void {
    const defs = new Map<string, ReportDefinition>();
    const bad = new Map<string, InvalidReport>();
    for (const item of items) {
      const kind = isValid(item) ? REPORT_TYPES[item.reportType] : undefined;
      if (isValid(item) && kind?.needsCluster && !this.clusterFacts) {
        bad.set(`${item.name}@${item.origin}`, {
          name: item.name,
          origin: item.origin,
          error: `${AGGREGATOR_ERRORS.reportUnsupported}: ${kind.name} reports read ${kind.clusterReads ?? 'the cluster'}; run the aggregator in a cluster, give it --kubeconfig, or --cluster-snapshot DIR for an offline copy`,
        });
        continue;
      }
      if (isValid(item) && defs.has(item.name)) {
        bad.set(`${item.name}@${item.origin}`, {
          name: item.name,
          origin: item.origin,
          error: `VERDICT_REPORT_INVALID: the name "${item.name}" is already defined in ${defs.get(item.name)?.origin}`,
        });
        continue;
      }
      if (isValid(item)) defs.set(item.name, item);
      else bad.set(`${item.name}@${item.origin}`, item);
    }
    for (const [name, err] of bad)
      if (!this.invalid.has(name))
        this.log.warn(
          { report: err.name, origin: err.origin, error: err.error },
          'GlobalReport is invalid and will not run',
        );
    for (const name of defs.keys()) if (!this.firstSeenMs.has(name)) this.firstSeenMs.set(name, this.now());
    this.definitions = defs;
    this.invalid = bad;
  }

  /** Read every GlobalReport file in `dir` if anything there changed since the last call. */
  loadDir(dir: string): boolean {
    let names: string[];
    try {
      names = readdirSync(dir)
        .filter((n) => /\.ya?ml$/.test(n))
        .sort();
    } catch (err) {
      this.log.error({ dir, err: (err as Error).message }, 'cannot read the --reports directory');
      return false;
    }
    const fp = names
      .map((n) => {
        try {
          const st = statSync(join(dir, n));
          return `${n}:${st.mtimeMs}:${st.size}`;
        } catch {
          return `${n}:gone`;
        }
      })
      .join('|');
    if (fp === this.fingerprint) return false;
    this.fingerprint = fp;
    const items = names.flatMap((n) => {
      try {
        return parseReportsYaml(readFileSync(join(dir, n), 'utf8'), join(dir, n));
      } catch (err) {
        return [
          { name: n, origin: join(dir, n), error: `VERDICT_REPORT_INVALID: cannot read: ${(err as Error).message}` },
        ];
      }
    });
    this.setSource('dir', items);
    this.log.info({ dir, reports: this.definitions.size, invalid: this.invalid.size }, 'GlobalReports loaded');
    return true;
  }
}
