// The chaos suite's smoke run (npm run chaos is the full one): a few faults of different
// kinds, each at a moment drawn from a fixed seed, on the real stack, with every invariant
// checked after each run. Any violation fails the test and names the run's seed.
import { runChaos, type RunRecord } from '../chaos/runner.js';
import { startChaosStack, type ChaosStack } from '../chaos/stack.js';

let stack: ChaosStack;
const lines: string[] = [];
const say = (line: string) => {
  lines.push(line);
  if (process.env.TEST_LOG) console.log(line);
};

beforeAll(async () => {
  stack = await startChaosStack(say, { users: 30, sessionsPerUser: 2, activitiesPerSession: 3 });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

test('a few faults, each survived or failed cleanly, no invariant violated', async () => {
  const records: RunRecord[] = await runChaos(stack, {
    seed: 20261128,
    runs: 0,
    budgetMs: 0,
    plan: [
      { scenario: 'database backup', fault: 'sigkill' },
      { scenario: 'restore --replace', fault: 's3-503' },
      { scenario: 'database backup', fault: 'pg-restart-fast' },
      { scenario: 'database backup', fault: 'pg-restart-immediate' },
      { scenario: 'verification', fault: 's3-truncate' },
      // The workflow whose stale attempt once wrote over the recovered server (test/pitrStaleUnpack.test.ts).
      { scenario: 'point-in-time recovery', fault: 'freeze' },
      ...(stack.nasIsTmpfs ? [{ scenario: 'database backup', fault: 'repo-readonly' as const }] : []),
    ],
    hangMs: 120_000,
    say,
  });
  expect(records.length).toBeGreaterThanOrEqual(4);
  const violations = records.filter((r) => r.violations.length).map((r) => `seed ${r.runSeed} ${r.scenario} + ${r.fault}: ${r.violations.join('; ')}`);
  expect({ violations, log: violations.length ? lines : [] }).toEqual({ violations: [], log: [] });
}, 600_000);
