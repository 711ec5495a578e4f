// The layers of ARCHITECTURE.md hold by lint (eslint.config.js): each folder imports only the
// layers below it. These cases prove the rules bite: a file that breaks each one, linted where
// it would live, is refused with the rule's message. (`npm run lint` checks the real files.)
import path from 'node:path';
import { ESLint } from 'eslint';

const root = path.resolve(import.meta.dirname, '../..');
// The text is linted as if it were that file, without writing it: no type information (the
// import rules need none), so the type-aware rules are off here.
const eslint = new ESLint({
  cwd: root,
  overrideConfig: { languageOptions: { parserOptions: { projectService: false } }, rules: { '@typescript-eslint/no-floating-promises': 'off' } },
});

async function refusals(relative: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: path.join(root, relative) });
  if (result.messages.some((m) => m.fatal)) throw new Error(result.messages.map((m) => m.message).join('; '));
  return result.messages.filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === '@typescript-eslint/no-restricted-imports').map((m) => m.message);
}

test.each([
  ['engine/x.ts', "import { ApplicationFailure } from '@temporalio/common';\nexport const x = ApplicationFailure;\n", /knows nothing of Temporal/],
  ['engine/storage/x.ts', "import { createActivities } from '../../activities/index.js';\nexport const x = createActivities;\n", /the engine does the work without knowing Temporal/],
  ['engine/x.ts', "import { shipWal } from '../workflows/index.js';\nexport const x = shipWal;\n", /the engine does the work without knowing Temporal/],
  ['common/x.ts', "import { permanent } from '../engine/errors.js';\nexport const x = permanent;\n", /common\/ is the bottom layer/],
  ['workflows/x.ts', "import { permanent } from '../engine/errors.js';\nexport const x = permanent;\n", /workflows orchestrate/],
  ['workflows/x.ts', "import { loadConfig } from '../common/config.js';\nexport const x = loadConfig;\n", /configuration and paths are read by activities/],
  ['activities/x.ts', "import { shipWal } from '../workflows/index.js';\nexport const x = shipWal;\n", /activities adapt the engine/],
  ['client/commands/x.ts', "import { createActivities } from '../../activities/index.js';\nexport const x = createActivities;\n", /never reaches into activities/],
])('%s: %s is refused', async (file, source, message) => {
  expect((await refusals(file, source)).join('\n')).toMatch(message);
}, 60_000);

test('what each layer may import passes', async () => {
  expect(await refusals('engine/x.ts', "import { ErrorType } from '../common/types.js';\nexport const x = ErrorType;\n")).toEqual([]);
  expect(await refusals('client/commands/x.ts', "import { permanent } from '../../engine/errors.js';\nexport const x = permanent;\n")).toEqual([]);
  expect(await refusals('activities/x.ts', "import { permanent } from '../engine/errors.js';\nexport const x = permanent;\n")).toEqual([]);
}, 60_000);
