// The workflows under chaos, each with what must hold after it: a backup either completed
// (every copy whole, and it restores identical with plain gpg, zstd and pg_restore) or left
// nothing under its id; a restore with --replace either swapped in a verified copy or left
// the live database as it was; a verification or drill never leaves its scratch database
// (checked for every run by the global invariants).
import type { Client, WorkflowHandle } from '@temporalio/client';
import { backupIdOf } from '../workflows/backupId.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../workflows/types.js';
import { completeBackupProblems, failedBackupProblems, liveOid, repositories, restoresIdentical } from './invariants.js';
import { HOST, LIVE_DB, type ChaosStack } from './stack.js';

export interface Outcome {
  status: 'completed' | 'failed' | 'cancelled' | 'terminated' | 'timed-out' | 'hung';
  /** The failure's type (ApplicationFailure type), when it failed. */
  errorType?: string;
  message?: string;
  result?: any;
}

export interface RunContext {
  workflowId: string;
  /** Repositories the fault left unwritable (a full or read-only NAS). */
  unwritable: string[];
  liveOidBefore: number | undefined;
  /** Draws from the run's seeded generator. */
  draw(from: number, to: number): number;
}

export interface Scenario {
  name: string;
  /** Typical run time on this stack without faults (measured by the runner's warm-up). */
  typicalMs: number;
  start(client: Client, workflowId: string): Promise<WorkflowHandle>;
  check(stack: ChaosStack, outcome: Outcome, run: RunContext): Promise<string[]>;
}

const queue = hostTaskQueue(HOST);

function start(client: Client, workflow: string, workflowId: string, input: Record<string, unknown>): Promise<WorkflowHandle> {
  return client.workflow.start(workflow, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: queue, ...input }] });
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'database backup',
    typicalMs: 5000,
    start: (client, id) => start(client, 'backupDatabase', id, {}),
    async check(stack, outcome, run) {
      const backupId = backupIdOf(run.workflowId);
      if (outcome.status !== 'completed') return failedBackupProblems(stack, 'database', backupId, run.unwritable);
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
    start: (client, id) => start(client, 'backupBase', id, {}),
    async check(stack, outcome, run) {
      const backupId = backupIdOf(run.workflowId);
      return outcome.status === 'completed' ? completeBackupProblems(stack, 'base', backupId) : failedBackupProblems(stack, 'base', backupId, run.unwritable);
    },
  },
  {
    name: 'verification',
    typicalMs: 6000,
    start: (client, id) => start(client, 'verifyBackup', id, { backup: 'latest', amcheck: false }),
    async check(_stack, outcome) {
      // Faults touch no stored byte here: a completed verification must find the backup good.
      if (outcome.status === 'completed' && outcome.result?.ok !== true) return [`verification completed with ok=${outcome.result?.ok}: ${outcome.result?.verdict ?? ''}`];
      return [];
    },
  },
  {
    name: 'restore --replace',
    typicalMs: 7000,
    start: (client, id) => start(client, 'restoreDatabase', id, { backup: 'latest', replace: true }),
    async check(stack, outcome, run) {
      const problems: string[] = [];
      const oid = await liveOid(stack);
      if (outcome.status === 'completed') {
        const keptAs = outcome.result?.swap?.keptAs as string | undefined;
        if (!keptAs) problems.push('restore --replace completed without a swap');
        else {
          const kept = await stack.cluster.query('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [keptAs]);
          if (!kept.rows.length) problems.push(`the old live database ${keptAs} was not kept`);
          // The runs go on against the same source: the kept copy is dropped here, by the harness.
          await stack.cluster.query('postgres', `DROP DATABASE IF EXISTS "${keptAs}" WITH (FORCE)`);
        }
        if (oid === run.liveOidBefore) problems.push('restore --replace completed but the live database is the same one');
      } else if (oid !== run.liveOidBefore) {
        // Replaced is right only when the swap itself completed (a later step failed): the
        // old live database is then kept beside it.
        const kept = await stack.cluster.query<{ datname: string }>('postgres', "SELECT datname FROM pg_database WHERE datname LIKE $1", [`${LIVE_DB}_pre_restore_%`]);
        if (!kept.rows.length) problems.push(`restore --replace ${outcome.status} but the live database ${LIVE_DB} was replaced (oid ${run.liveOidBefore} -> ${oid}) and the old one is gone`);
        for (const { datname } of kept.rows) await stack.cluster.query('postgres', `DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
      }
      return problems;
    },
  },
];
