// The workflows under chaos, each with what must hold after it: a backup either completed
// (every copy whole, and it restores identical with plain gpg, zstd and pg_restore) or left
// nothing under its id; a restore with --replace either swapped in a verified copy or left
// the live database as it was; a verification or drill never leaves its scratch database
// (checked for every run by the global invariants); WAL shipping leaves every archived segment,
// whole and once, in every repository; a point-in-time recovery reaches exactly its target and
// leaves no server running.
import { backupIdOf } from '../workflows/backupId.js';
import { completeBackupProblems, failedBackupProblems, liveOid, repositories, restoresIdentical } from './invariants.js';
import { pointInTimeRecoveryScenario } from './pitrScenario.js';
import { recoveryDrillScenario } from './drillScenario.js';
import { startWorkflow, workflowRun, type RunContext, type Scenario } from './scenario.js';
import { LIVE_DB, type ChaosStack } from './stack.js';
import { walShippingScenario } from './walScenario.js';

export type { Outcome, RunContext, Scenario } from './scenario.js';

/**
 * Where a failed backup's leftovers are the sweep's, not the run's: repositories the fault made
 * unwritable; and all of them when one is unreadable, since the run cannot tell whether a
 * manifest was published there, and then discards nothing anywhere (discardBackupObjects). The
 * runner checks after the sweep that nothing is left.
 */
function leftToSweep(stack: ChaosStack, run: RunContext): string[] {
  return run.unreadable.length ? repositories(stack).map((r) => r.name) : run.unwritable;
}

/**
 * The old live database a swap kept: there, and accepting connections, as the swap leaves it
 * on every path (engine/swap.ts): the operator's way back.
 */
async function keptDatabaseProblems(stack: ChaosStack, keptAs: string): Promise<string[]> {
  const { rows } = await stack.cluster.query<{ datallowconn: boolean }>('postgres', 'SELECT datallowconn FROM pg_database WHERE datname = $1', [keptAs]);
  if (!rows.length) return [`the old live database ${keptAs} was not kept`];
  return rows[0].datallowconn ? [] : [`the old live database, kept as ${keptAs}, refuses connections`];
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'database backup',
    typicalMs: 5000,
    start: (stack, id) => startWorkflow(stack.client, 'backupDatabase', id, {}).then(workflowRun),
    async check(stack, outcome, run) {
      const backupId = backupIdOf(run.workflowId);
      if (outcome.status !== 'completed') return failedBackupProblems(stack, 'database', backupId, leftToSweep(stack, run));
      const problems = await completeBackupProblems(stack, 'database', backupId);
      if (problems.length) return problems;
      // One copy, drawn, restored with plain tools: the others were proven equal by sha256.
      const repos = repositories(stack);
      return restoresIdentical(stack, backupId, repos[run.draw(0, repos.length - 1)]);
    },
  },
  {
    name: 'base backup',
    typicalMs: 5000,
    start: (stack, id) => startWorkflow(stack.client, 'backupBase', id, {}).then(workflowRun),
    async check(stack, outcome, run) {
      const backupId = backupIdOf(run.workflowId);
      return outcome.status === 'completed' ? completeBackupProblems(stack, 'base', backupId) : failedBackupProblems(stack, 'base', backupId, leftToSweep(stack, run));
    },
  },
  {
    name: 'verification',
    typicalMs: 6000,
    start: (stack, id) => startWorkflow(stack.client, 'verifyBackup', id, { backup: 'latest', amcheck: false }).then(workflowRun),
    async check(_stack, outcome) {
      // Faults touch no stored byte here: a completed verification must find the backup good.
      if (outcome.status === 'completed' && outcome.result?.ok !== true) return [`verification completed with ok=${outcome.result?.ok}: ${outcome.result?.verdict ?? ''}`];
      return [];
    },
  },
  {
    name: 'restore --replace',
    typicalMs: 7000,
    start: (stack, id) => startWorkflow(stack.client, 'restoreDatabase', id, { backup: 'latest', replace: true }).then(workflowRun),
    async check(stack, outcome, run) {
      const problems: string[] = [];
      const oid = await liveOid(stack);
      if (outcome.status === 'completed') {
        const keptAs = outcome.result?.swap?.keptAs as string | undefined;
        if (!keptAs) problems.push('restore --replace completed without a swap');
        else {
          problems.push(...(await keptDatabaseProblems(stack, keptAs)));
          // The runs go on against the same source: the kept copy is dropped here, by the harness.
          await stack.cluster.query('postgres', `DROP DATABASE IF EXISTS "${keptAs}" WITH (FORCE)`);
        }
        if (oid === run.liveOidBefore) problems.push('restore --replace completed but the live database is the same one');
      } else if (oid !== run.liveOidBefore) {
        // Replaced is right only when the swap itself completed (a later step failed): the
        // old live database is then kept beside it.
        const kept = await stack.cluster.query<{ datname: string }>('postgres', "SELECT datname FROM pg_database WHERE datname LIKE $1", [`${LIVE_DB}_pre_restore_%`]);
        if (!kept.rows.length) problems.push(`restore --replace ${outcome.status} but the live database ${LIVE_DB} was replaced (oid ${run.liveOidBefore} -> ${oid}) and the old one is gone`);
        for (const { datname } of kept.rows) {
          problems.push(...(await keptDatabaseProblems(stack, datname)));
          await stack.cluster.query('postgres', `DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
        }
      }
      return problems;
    },
  },
  walShippingScenario,
  pointInTimeRecoveryScenario,
  recoveryDrillScenario,
];
