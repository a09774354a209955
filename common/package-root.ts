import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VerdictError } from './errors.js';

/** The package is not laid out as installed (no package.json beside proto/ above this file). */
const INSTALL_BROKEN = 'VERDICT_INSTALL_BROKEN';

/**
 * The directory holding Verdict's package.json. Code runs both from source
 * (tests, through tap's TypeScript plugin) and from dist/, so data files (proto/, benchmark YAML) are
 * found relative to the package, never relative to the compiled file.
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'proto'))) return dir;
    const parent = dirname(dir);
    if (parent === dir)
      throw new VerdictError(INSTALL_BROKEN, 'cannot find the verdict package root (package.json beside proto/)');
    dir = parent;
  }
}
