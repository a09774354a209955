import { ESLint } from 'eslint';
import * as prettier from 'prettier';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';

// Lint and format run with the suite, so CI (which runs the README's `npm test`)
// fails on a lint error or an unformatted file exactly as on a failing test.
// The rules live in eslint.config.js and .prettierrc.json; `npm run lint`
// runs the same tools from the command line, `npm run format` fixes formatting.
const root = packageRoot();

/** Directories that hold no source of ours: dependencies, build and test output. */
const NOT_SOURCE = new Set(['node_modules', 'dist', 'coverage', '.tap', '.git', '.demo']);

/**
 * The repository's TypeScript and JavaScript files, found by walking the tree (CI runs the suite where git is not on
 * PATH); Prettier's ignore file still applies below.
 */
function sourceFiles(dir = root): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (NOT_SOURCE.has(e.name)) return [];
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.(ts|mjs|js)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

t.test('every TypeScript file is formatted by Prettier', async (t) => {
  const files = sourceFiles();
  t.ok(files.length > 100, `found the sources (${files.length} files)`);
  const unformatted: string[] = [];
  for (const file of files) {
    const info = await prettier.getFileInfo(file, { ignorePath: join(root, '.prettierignore') });
    if (info.ignored) continue;
    const options = await prettier.resolveConfig(file);
    if (options?.printWidth !== 120) t.fail(`${relative(root, file)} does not get the project's Prettier config`);
    const text = readFileSync(file, 'utf8');
    if (!(await prettier.check(text, { ...options, filepath: file }))) unformatted.push(relative(root, file));
  }
  t.same(unformatted, [], 'run `npm run format` to format these files');
});

t.test('ESLint finds nothing (import cycles, function and file length, typescript-eslint recommended)', async (t) => {
  const eslint = new ESLint({ cwd: root });
  const results = await eslint.lintFiles(['.']);
  t.ok(results.length > 100, `linted the sources (${results.length} files)`);
  const problems = results.flatMap((r) =>
    r.messages.map((m) => `${relative(root, r.filePath)}:${m.line}:${m.column} ${m.ruleId ?? 'parse'}: ${m.message}`),
  );
  t.same(problems, [], 'run `npm run lint` for the details');
});

t.test('the lint configuration checks what it says', async (t) => {
  // A config that silently stopped applying a rule would pass every file; lint known-bad text instead.
  const eslint = new ESLint({ cwd: root });
  const longFn = `export function f(): number {\n${'  let x = 1;\n  x += 1;\n'.repeat(70)}  return 1;\n}\n`;
  const [fnResult] = await eslint.lintText(longFn, { filePath: join(root, 'aggregator', 'lint-probe.ts') });
  t.ok(
    fnResult?.messages.some((m) => m.ruleId === 'max-lines-per-function'),
    'a 140-line function in product code is refused',
  );
  const [lenResult] = await eslint.lintText(`export const x = ${'1 + '.repeat(40)}1;\n`, {
    filePath: join(root, 'common', 'lint-probe.ts'),
  });
  t.ok(
    lenResult?.messages.some((m) => m.ruleId === 'max-len'),
    'a 180-character line is refused',
  );
});
