// Lint that guards what matters here: workflow code stays deterministic (no Node built-ins,
// no I/O libraries, no process.env, activities imported as types only), the layers of
// ARCHITECTURE.md hold (each folder imports only the layers below it), and no promise is left
// floating.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** An import of one of our top folders, from any depth: `../engine/x.js`, `../../workflows/y.js`. */
const ours = (...folders) => `^(\\.\\./)+(${folders.join('|')})(/|$)`;
const layer = (message, ...folders) => ({ regex: ours(...folders), message });
/** The same rule for a dynamic import(), which no-restricted-imports does not see. */
const dynamicLayer = ({ regex, message }) => ({ selector: `ImportExpression[source.value=/${regex.replace(/\//g, '\\/')}/]`, message });
const NO_TEMPORAL = { regex: '^@temporalio/', message: 'this layer knows nothing of Temporal (ARCHITECTURE.md)' };

const NODE_BUILTINS = ['assert', 'buffer', 'child_process', 'crypto', 'dns', 'events', 'fs', 'fs/promises', 'http', 'https', 'net', 'os', 'path', 'process', 'stream', 'timers', 'tls', 'url', 'util', 'worker_threads', 'zlib'];

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', '.backupctl/**', 'coverage/**', 'dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error', dynamicLayer(layer('workflows orchestrate: they reach the engine only through activities (ARCHITECTURE.md)', 'engine', 'client', 'workers'))],
      'no-restricted-imports': [
        'error',
        {
          paths: [...NODE_BUILTINS, ...NODE_BUILTINS.map((m) => `node:${m}`), 'pg', 'execa', 'pino', '@temporalio/worker', '@temporalio/activity', '@temporalio/client'].map((name) => ({
            name,
            message: 'workflow code must be deterministic: do I/O in an activity',
          })),
          patterns: [
            { group: ['@aws-sdk/*'], message: 'workflow code must be deterministic: do I/O in an activity' },
            layer('workflows orchestrate: they reach the engine only through activities (ARCHITECTURE.md)', 'engine', 'client', 'workers'),
            { regex: '^(\\.\\./)+common/(config|runtime)(\\.js)?$', message: 'workflow code must be deterministic: configuration and paths are read by activities' },
          ],
        },
      ],
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: ['../activities/*', '../activities'], allowTypeImports: true, message: 'import activities as types only (proxyActivities<typeof ...>)' }] },
      ],
      'no-restricted-globals': ['error', { name: 'process', message: 'no process.env or process state in workflows' }, 'setTimeout', 'setInterval'],
    },
  },
  {
    files: ['common/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error', dynamicLayer(layer('common/ is the bottom layer: it imports none of ours (ARCHITECTURE.md)', 'engine', 'workflows', 'activities', 'client', 'workers')), dynamicLayer(NO_TEMPORAL)],
      'no-restricted-imports': ['error', { patterns: [NO_TEMPORAL, layer('common/ is the bottom layer: it imports none of ours (ARCHITECTURE.md)', 'engine', 'workflows', 'activities', 'client', 'workers')] }],
    },
  },
  {
    files: ['engine/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error', dynamicLayer(layer('the engine does the work without knowing Temporal: it imports only common/ (ARCHITECTURE.md)', 'workflows', 'activities', 'client', 'workers')), dynamicLayer(NO_TEMPORAL)],
      'no-restricted-imports': ['error', { patterns: [NO_TEMPORAL, layer('the engine does the work without knowing Temporal: it imports only common/ (ARCHITECTURE.md)', 'workflows', 'activities', 'client', 'workers')] }],
    },
  },
  {
    files: ['activities/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error', dynamicLayer(layer('activities adapt the engine to Temporal: they import common/ and engine/ only (ARCHITECTURE.md)', 'workflows', 'client', 'workers'))],
      'no-restricted-imports': ['error', { patterns: [layer('activities adapt the engine to Temporal: they import common/ and engine/ only (ARCHITECTURE.md)', 'workflows', 'client', 'workers')] }],
    },
  },
  {
    files: ['client/**/*.ts'],
    rules: {
      'no-restricted-syntax': ['error', dynamicLayer(layer('the CLI calls the engine and starts workflows; it never reaches into activities (ARCHITECTURE.md)', 'activities'))],
      'no-restricted-imports': ['error', { patterns: [layer('the CLI calls the engine and starts workflows; it never reaches into activities (ARCHITECTURE.md)', 'activities')] }],
    },
  },
  {
    // The dashboard's page script runs in the browser, as a classic script (no build step).
    files: ['client/dashboard/static/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: Object.fromEntries(['document', 'fetch', 'setInterval', 'URL', 'Node'].map((name) => [name, 'readonly'])),
    },
  },
);
