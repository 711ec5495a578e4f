// Lint that guards what matters here: workflow code stays deterministic (no Node built-ins,
// no I/O libraries, no process.env, activities imported as types only), and no promise is
// left floating.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
      'no-restricted-imports': [
        'error',
        {
          paths: [...NODE_BUILTINS, ...NODE_BUILTINS.map((m) => `node:${m}`), 'pg', 'execa', 'pino', '@temporalio/worker', '@temporalio/activity', '@temporalio/client'].map((name) => ({
            name,
            message: 'workflow code must be deterministic: do I/O in an activity',
          })),
          patterns: [{ group: ['@aws-sdk/*'], message: 'workflow code must be deterministic: do I/O in an activity' }],
        },
      ],
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: ['../activities/*', '../activities'], allowTypeImports: true, message: 'import activities as types only (proxyActivities<typeof ...>)' }] },
      ],
      'no-restricted-globals': ['error', { name: 'process', message: 'no process.env or process state in workflows' }, 'setTimeout', 'setInterval'],
    },
  },
);
