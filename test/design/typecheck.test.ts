import { join, relative } from 'node:path';
import t from 'tap';
import ts from 'typescript';
import { packageRoot } from '../../common/package-root.js';

// tap runs the tests through a loader that strips types without checking them, and `tsc -p .` checks only the
// product code; this test type-checks product and tests together (tsconfig.test.json), in process with the
// compiler API (no tsc or git on PATH needed), so a type error in a test fails the suite as a failing test does.
// `npm run lint` runs the same check from the command line.
const root = packageRoot();

t.test('the product and its tests type-check (tsconfig.test.json)', async (t) => {
  const configPath = join(root, 'tsconfig.test.json');
  const parsed = ts.getParsedCommandLineOfConfigFile(
    configPath,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!parsed) throw new Error(`could not read ${configPath}`);
  t.same(parsed.errors.map(format), [], 'tsconfig.test.json has no errors');
  t.ok(
    parsed.fileNames.some((f) => f.endsWith('/test/design/typecheck.test.ts')),
    `the config includes the tests (${parsed.fileNames.length} files)`,
  );
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options });
  const diagnostics = ts.getPreEmitDiagnostics(program).map(format);
  t.same(diagnostics, [], `no type errors${diagnostics.length ? `:\n${diagnostics.join('\n')}` : ''}`);
});

/** file:line: message, relative to the repository, as tsc prints it (without the column). */
function format(d: ts.Diagnostic): string {
  const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
  if (!d.file || d.start === undefined) return `TS${d.code}: ${message}`;
  const { line } = d.file.getLineAndCharacterOfPosition(d.start);
  return `${relative(root, d.file.fileName)}:${line + 1}: TS${d.code}: ${message}`;
}
