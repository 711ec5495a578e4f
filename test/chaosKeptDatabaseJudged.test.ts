// Attack on the chaos harness's judgement of restore --replace: the swap promises that the old
// live database, kept under a new name, stays usable on every path (the operator's way back,
// engine/swap.ts). The check looked only at whether the kept database existed, then dropped
// it: one left refusing connections (ALLOW_CONNECTIONS false, what the swap sets before its
// renames) passed, whether the restore completed or failed after its swap.
import { SCENARIOS } from '../chaos/scenarios.js';
import { LIVE_DB, type ChaosStack } from '../chaos/stack.js';
import { liveOid } from '../chaos/invariants.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';

const KEPT = `${LIVE_DB}_pre_restore_20261128_200000`;
let cluster: PgCluster;
let stack: ChaosStack;
const restore = SCENARIOS.find((s) => s.name === 'restore --replace')!;

beforeAll(async () => {
  cluster = await startCluster();
  stack = { cluster } as unknown as ChaosStack;
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

/** A swapped live database (new oid) and the old one kept, accepting connections or not; returns the oid before the swap. */
async function swapped(keptAcceptsConnections: boolean): Promise<number> {
  await cluster.query('postgres', `DROP DATABASE IF EXISTS ${LIVE_DB} WITH (FORCE)`);
  await cluster.query('postgres', `DROP DATABASE IF EXISTS ${KEPT} WITH (FORCE)`);
  await cluster.createDatabase(LIVE_DB);
  const before = (await liveOid(stack))!;
  await cluster.query('postgres', `ALTER DATABASE ${LIVE_DB} RENAME TO ${KEPT}`);
  await cluster.createDatabase(LIVE_DB);
  await cluster.query('postgres', `ALTER DATABASE ${KEPT} WITH ALLOW_CONNECTIONS ${keptAcceptsConnections}`);
  return before;
}

const run = (liveOidBefore: number) => ({ workflowId: 'chaos-1-1', unwritable: [], unreadable: [], liveOidBefore, draw: () => 0 });
const completed = { status: 'completed', result: { swap: { keptAs: KEPT } } } as const;
const failedAfterSwap = { status: 'failed', errorType: 'ServiceStartFailed', message: 'the services did not start' } as const;

test('a completed restore whose kept database refuses connections is a violation; one that accepts them is not', async () => {
  expect(await restore.check(stack, completed, run(await swapped(false)))).toEqual([`the old live database, kept as ${KEPT}, refuses connections`]);
  expect(await restore.check(stack, completed, run(await swapped(true)))).toEqual([]);
}, 60_000);

test('a restore that failed after its swap, its kept database refusing connections, is a violation', async () => {
  expect(await restore.check(stack, failedAfterSwap, run(await swapped(false)))).toEqual([`the old live database, kept as ${KEPT}, refuses connections`]);
  expect(await restore.check(stack, failedAfterSwap, run(await swapped(true)))).toEqual([]);
}, 60_000);
