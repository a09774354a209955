import { ESLint } from 'eslint';
import * as prettier from 'prettier';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';

// Lint and format run with the suite, so CI (which runs the README's `npm test`)
// fails on a lint error or an unformatted file exactly as on a failing test.
// The rules live in eslint.config.js and .prettierrc.json; `npm run lint`
// runs the same tools from the command line, `npm run format` fixes formatting.
const root = packageRoot();

/** The repository's TypeScript and .mjs files as git knows them (tracked or new, not ignored). */
function sourceFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts', '*.mjs', '*.js'], {
    cwd: root,
    encoding: 'utf8',
  });
  return out
    .split('\n')
    .filter((f) => f !== '')
    .map((f) => join(root, f));
}

t.test('every TypeScript file is formatted by Prettier', async (t) => {
  const files = sourceFiles();
  t.ok(files.length > 100, `found the sources (${files.length} files)`);
  const unformatted: string[] = [];
  for (const file of files) {
    const info = await prettier.getFileInfo(file, { ignorePath: join(root, '.prettierignore') });
    if (info.ignored) continue;
    const options = await prettier.resolveConfig(file);
    t.ok(options?.printWidth === 120, `${relative(root, file)} gets the project's Prettier config`, {
      diagnostic: false,
    });
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
