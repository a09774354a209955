// ESLint for Verdict (issue 12): typescript-eslint's recommended rules without type
// information (fast enough to run in every test run), import cycles (import-x/no-cycle,
// backed by test/design/import-cycles.test.ts, which needs no resolver), and the size
// limits of STYLE.md. Formatting is Prettier's (.prettierrc.json), so no style rules here.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tap/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    languageOptions: { globals: { ...globals.node }, ecmaVersion: 2023, sourceType: 'module' },
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver': { node: { extensions: ['.ts', '.js'] } } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'max-len': [
        'error',
        { code: 120, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true },
      ],
    },
  },
  {
    // The dashboard's pages (aggregator/ui/static) run in the browser, not in Node.js.
    files: ['aggregator/ui/static/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    // Product code: STYLE.md's size limits.
    files: ['agent/**/*.ts', 'aggregator/**/*.ts', 'common/**/*.ts', 'proto/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 120, skipBlankLines: true, skipComments: true }],
      'max-lines': ['error', { max: 650, skipBlankLines: true, skipComments: true }],
    },
  },
);
