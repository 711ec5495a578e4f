// The layers of ARCHITECTURE.md hold by lint "with no list of exceptions"; but no-restricted-
// imports sees only static imports and exports: `await import('../activities/x.js')` in the
// client (whose cli.ts loads everything by dynamic import) or in the engine passed lint.
import path from 'node:path';
import { ESLint } from 'eslint';

const root = path.resolve(import.meta.dirname, '../..');
const eslint = new ESLint({
  cwd: root,
  overrideConfig: { languageOptions: { parserOptions: { projectService: false } }, rules: { '@typescript-eslint/no-floating-promises': 'off' } },
});

async function messages(relative: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: path.join(root, relative) });
  if (result.messages.some((m) => m.fatal)) throw new Error(result.messages.map((m) => m.message).join('; '));
  return result.messages.map((m) => m.message);
}

test.each([
  ['client/commands/x.ts', "export const x = async () => (await import('../../activities/index.js')).createActivities;\n", /never reaches into activities/],
  ['engine/x.ts', "export const x = async () => (await import('../workflows/index.js')).shipWal;\n", /the engine does the work without knowing Temporal/],
  ['common/x.ts', "export const x = async () => (await import('../engine/errors.js')).permanent;\n", /common\/ is the bottom layer/],
  ['activities/x.ts', "export const x = async () => (await import('../client/cli.js'));\n", /activities adapt the engine/],
  ['workflows/x.ts', "export const x = async () => (await import('../engine/errors.js')).permanent;\n", /workflows orchestrate/],
])('%s: a dynamic import across the layers is refused too', async (file, source, message) => {
  expect((await messages(file, source)).join('\n')).toMatch(message);
}, 60_000);

test('a dynamic import the layers allow passes', async () => {
  expect(await messages('client/x.ts', "export const x = async () => (await import('../engine/errors.js')).permanent;\n")).toEqual([]);
}, 60_000);
