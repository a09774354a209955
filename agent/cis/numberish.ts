// The numbers benchmark values compare as, apart from the benchmark schema (schema.ts) so that a scan, which
// loads precompiled benchmarks, does not load the schema library.

/** Numbers, and Go durations ("1h30m", "5m0s", "300s") as seconds. */
export function parseNumberish(v: string): number | undefined {
  const t = v.trim();
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  const m = /^((\d+(\.\d+)?)(h|m|s|ms))+$/.test(t) ? t.match(/\d+(\.\d+)?(h|ms|m|s)/g) : null;
  if (!m) return undefined;
  const unit: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001 };
  return m.reduce((sum, part) => {
    const u = /ms$/.test(part) ? 'ms' : part.slice(-1);
    return sum + parseFloat(part) * (unit[u] as number);
  }, 0);
}
