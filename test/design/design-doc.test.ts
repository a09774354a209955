import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { BENCHMARKS_FLAGS, SCAN_COMMAND_FLAGS, SCAN_FLAGS } from '../../agent/cli.js';
import { RUN_FLAGS } from '../../agent/run.js';
import { AGGREGATOR_FLAGS } from '../../aggregator/defaults.js';
import { packageRoot } from '../../common/package-root.js';

// docs/DESIGN.md against the code: the sections other files cite exist, the
// paths it names exist, the flags it names are parsed, and every Reject code
// the aggregator sends is in its wire contract. What it says in prose is
// checked by reading the code; this keeps it from pointing at things that are
// gone.
const root = packageRoot();
const doc = readFileSync(join(root, 'docs', 'DESIGN.md'), 'utf8');
const source = (p: string) => readFileSync(join(root, p), 'utf8');

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .replace(/ /g, '-');
const headings = [...doc.matchAll(/^#{2,3} (.+)$/gm)].map((m) => m[1] as string);

/** Every file in the repository that may cite the design (sources, manifests, docs), not dependencies or output. */
function citingFiles(dir: string): string[] {
  const skip = new Set(['node_modules', 'dist', '.git', '.tap', '.demo', 'coverage']);
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (skip.has(e.name)) return [];
    const p = join(dir, e.name);
    if (e.isDirectory()) return citingFiles(p);
    return /\.(ts|md|ya?ml|proto|json)$|^Dockerfile$|^Kustomization$/.test(e.name) ? [p] : [];
  });
}

t.test('every citation of the design names docs/DESIGN.md and a section it has', async (t) => {
  let cited = 0;
  for (const file of citingFiles(root)) {
    const rel = relative(root, file);
    if (rel === join('docs', 'DESIGN.md') || rel === join('test', 'design', 'design-doc.test.ts')) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(\S*)DESIGN\.md(?:,? ?\(?"([^"]+)")?/g)) {
      cited++;
      t.match(m[1], /(^|[(`'"])docs\/$/, `${rel}: cites docs/DESIGN.md, not another DESIGN.md (${m[0]})`);
      if (m[2] !== undefined) t.ok(headings.includes(m[2]), `${rel}: section "${m[2]}" exists in docs/DESIGN.md`);
    }
  }
  t.ok(cited >= 5, `found the citations (${cited})`);
});

t.test('the contents links lead to headings', async (t) => {
  const anchors = new Set(headings.map(slug));
  for (const m of doc.matchAll(/\]\(#([a-z0-9-]+)\)/g)) t.ok(anchors.has(m[1] as string), `#${m[1]} is a heading`);
});

t.test('every repository path it names exists', async (t) => {
  const paths = new Set(
    [...doc.matchAll(/`((?:agent|aggregator|common|proto|manifests|test|examples|docs|bench)\/[^`\s]*)`/g)].map(
      (m) => m[1] as string,
    ),
  );
  t.ok(paths.size > 10, `found the paths (${paths.size})`);
  for (const p of paths) {
    if (/[<*]/.test(p)) continue; // a pattern, not a path
    t.ok(existsSync(join(root, p)), `${p} exists`);
  }
});

t.test('every flag it names is one the agent or the aggregator parses', async (t) => {
  // Both programs parse exactly the flags of their tables.
  const parsed = new Set([
    ...Object.keys(SCAN_FLAGS),
    ...Object.keys(SCAN_COMMAND_FLAGS),
    ...Object.keys(RUN_FLAGS),
    ...Object.keys(BENCHMARKS_FLAGS),
    ...Object.keys(AGGREGATOR_FLAGS),
  ]);
  // The kubelet's own flags, named where the document says how the agent resolves its settings.
  const kubelet = new Set(['config', 'config-dir', 'read-only-port']);
  const named = new Set(
    [...doc.matchAll(/`--([a-z][a-z-]+)/g)].map((m) => m[1] as string).filter((f) => !kubelet.has(f)),
  );
  t.ok(named.size > 10, `found the flags (${named.size})`);
  for (const f of named) t.ok(parsed.has(f), `--${f} is parsed`);
});

t.test('the wire contract lists every Reject code the aggregator sends', async (t) => {
  const codes = new Set(
    [...source('aggregator/ingest/server.ts').matchAll(/'(VERDICT_INGEST_[A-Z_]+)'/g)].map((m) => m[1] as string),
  );
  t.ok(codes.size >= 5);
  const wire = doc.slice(doc.indexOf('## Wire contract'), doc.indexOf('## Storage'));
  for (const c of codes) t.match(wire, c, `${c} is in "Wire contract"`);
});
