import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { packageRoot } from './package-root.js';
import { VerdictError } from './errors.js';

/** A bin the package declares was not built. */
const BUILD_BROKEN = 'VERDICT_BUILD_BROKEN';

/**
 * npm links the bins of dependencies into node_modules/.bin, but not the
 * package's own. After a build, link `verdict-agent` and `verdict-aggregator`
 * there too, so `npx verdict-agent ...` and tools that expect them (the
 * contract check, the demo) work from a fresh clone.
 */
const root = packageRoot();
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
const binDir = join(root, 'node_modules', '.bin');
mkdirSync(binDir, { recursive: true });
for (const [name, target] of Object.entries(pkg.bin)) {
  const file = join(root, target);
  if (!existsSync(file)) throw new VerdictError(BUILD_BROKEN, `${target} is missing; run npm run build`);
  chmodSync(file, 0o755);
  const link = join(binDir, name);
  rmSync(link, { force: true });
  symlinkSync(relative(binDir, file), link);
}
