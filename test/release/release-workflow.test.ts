import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseDocument } from 'yaml';
import { packageRoot } from '../../common/package-root.js';
import { tempDir } from '../fixtures/tmp.js';

// .github/workflows/release.yml publishes the image the manifests run. Without
// GitHub Actions here, this holds the workflow to its shape (triggers,
// permissions, the Docker actions and their inputs) and runs its check step
// with bash, as the runner would, against this checkout.
const root = packageRoot();
const file = join(root, '.github', 'workflows', 'release.yml');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

type Step = { id?: string; name?: string; uses?: string; run?: string; with?: Record<string, unknown> };
type Workflow = {
  on: { push?: { tags?: string[]; branches?: string[] } } & Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs: Record<string, { 'runs-on': string; permissions?: Record<string, string>; steps: Step[] }>;
};

const doc = parseDocument(readFileSync(file, 'utf8'));
const wf = doc.toJS() as Workflow;
const job = Object.values(wf.jobs ?? {})[0]!;
const steps = job?.steps ?? [];
const action = (name: string) => steps.findIndex((s) => s.uses?.split('@')[0] === name);
const step = (name: string) => steps[action(name)];

t.test('the workflow parses as YAML and has one job', async (t) => {
  t.same(
    doc.errors.map((e) => e.message),
    [],
  );
  t.same(
    doc.warnings.map((e) => e.message),
    [],
  );
  t.equal(Object.keys(wf.jobs).length, 1);
  t.equal(job['runs-on'], 'ubuntu-latest');
});

t.test('it runs on a version tag only', async (t) => {
  t.same(Object.keys(wf.on), ['push']);
  t.same(wf.on.push, { tags: ['v*'] });
});

t.test('GITHUB_TOKEN may read the code and write packages, nothing else', async (t) => {
  t.same(wf.permissions, { contents: 'read' }, 'the default for every job is read-only');
  t.same(job.permissions, { contents: 'read', packages: 'write' });
  const login = step('docker/login-action');
  t.match(
    login?.with,
    { registry: 'ghcr.io', password: '${{ secrets.GITHUB_TOKEN }}' },
    'logs in to ghcr.io with GITHUB_TOKEN',
  );
  t.notMatch(readFileSync(file, 'utf8'), /secrets\.(?!GITHUB_TOKEN\b)/, 'no other secret is used');
});

t.test('QEMU and Buildx, then a multi-arch build from the Dockerfile, pushed with the metadata tags', async (t) => {
  const order = [
    'actions/checkout',
    'docker/setup-qemu-action',
    'docker/setup-buildx-action',
    'docker/login-action',
    'docker/metadata-action',
    'docker/build-push-action',
  ].map(action);
  t.notOk(order.includes(-1), 'every action is used');
  t.same(
    [...order].sort((a, b) => a - b),
    order,
    'in this order',
  );
  for (const s of steps)
    if (s.uses) t.match(s.uses, /^[a-z-]+\/[a-z-]+@v\d+$/, `${s.uses} is pinned to a major version`);
  const meta = step('docker/metadata-action');
  t.equal(meta?.id, 'meta');
  t.equal(meta?.with?.images, '${{ steps.image.outputs.name }}', 'the image name comes from the check step');
  t.match(
    String(meta?.with?.tags),
    /type=semver,pattern=\{\{version\}\}/,
    'v0.1.0 is tagged 0.1.0, as the manifests name it',
  );
  const build = step('docker/build-push-action');
  t.match(build?.with, {
    context: '.',
    file: 'Dockerfile',
    platforms: 'linux/amd64,linux/arm64',
    push: true,
    tags: '${{ steps.meta.outputs.tags }}',
    labels: '${{ steps.meta.outputs.labels }}',
  });
});

/** Run the check step's script as the runner does (bash -e), with a tag and an owner. */
function checkStep(dir: string, tag: string, owner: string) {
  const run = steps.find((s) => s.id === 'image')?.run ?? '';
  const out = join(dir, `github-output-${tag}-${owner}`);
  const r = spawnSync('bash', ['-e', '-c', run], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, GITHUB_REF_NAME: tag, GITHUB_REPOSITORY_OWNER: owner, GITHUB_OUTPUT: out },
  });
  let output = '';
  try {
    output = readFileSync(out, 'utf8');
  } catch {
    // not written: the step failed before the end
  }
  return { status: r.status, stdout: r.stdout, output };
}

t.test('the image it pushes is the one the manifests run', async (t) => {
  const images = new Set<string>();
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (/\.ya?ml$|^Kustomization$/.test(e.name)) {
        const hits = [...readFileSync(join(dir, e.name), 'utf8').matchAll(/^\s*image:\s*(\S+)\s*$/gm)].map(
          (m) => m[1] as string,
        );
        if (hits.length > 0) files.push(join(dir, e.name).slice(root.length + 1));
        for (const h of hits) images.add(h);
      }
    }
  };
  walk(join(root, 'manifests'));
  t.same(
    [...images],
    [`ghcr.io/verdict-dev/verdict:${pkg.version}`],
    'one image in the manifests: the release of this package version',
  );
  const run = steps.find((s) => s.id === 'image')?.run ?? '';
  for (const f of files) t.match(run, f, `the check step reads ${f}`);

  const dir = tempDir(t);
  const ok = checkStep(dir, `v${pkg.version}`, 'verdict-dev');
  t.equal(ok.status, 0, `tag v${pkg.version} from verdict-dev passes: ${ok.stdout}`);
  t.equal(ok.output.trim(), 'name=ghcr.io/verdict-dev/verdict', 'and names the image the manifests run');
  const upper = checkStep(dir, `v${pkg.version}`, 'Verdict-Dev');
  t.equal(
    upper.output.trim(),
    'name=ghcr.io/verdict-dev/verdict',
    'an owner spelt with capitals still names a valid (lower-case) image',
  );
  const wrongTag = checkStep(dir, 'v99.0.0', 'verdict-dev');
  t.not(wrongTag.status, 0, 'a tag that is not the package version fails');
  t.match(wrongTag.stdout, `is not v${pkg.version} (package.json)`);
  const fork = checkStep(dir, `v${pkg.version}`, 'someone-else');
  t.not(fork.status, 0, 'an owner whose image the manifests do not run fails');
  t.match(fork.stdout, 'does not run ghcr.io/someone-else/verdict');
});
