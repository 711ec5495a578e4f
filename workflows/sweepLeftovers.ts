// The sweep of leftovers: what runs that closed without cleaning up left behind (a restore
// terminated mid-way, a backup whose compensation never ran, a recovery server nobody
// stopped). It finds what carries our marks on one host and in its repositories, asks
// Temporal whether each mark's run has closed, and removes only what a closed run made and no
// result needs; everything else is kept, with the reason, in the report. With dryRun it only
// reports. Each leftover is one activity, which checks the mark again as it acts, so a crash
// mid-sweep leaves nothing half-decided: the retry finds what is left.
import { isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import { hostActivities, sweepStep } from './activityOptions.js';
import { describeFailure, surfaceFailure } from './failures.js';
import { progressQuery } from './messages.js';
import { checkObject, checkTaskQueue, invalidInput } from './inputChecks.js';
import { validateWith } from './saga.js';
import { DEFAULT_UPLOAD_AGE_HOURS, decide, runKey, runOf } from './sweepRules.js';
import type { RunRef, RunStanding, SweepItem, SweepLeftoversInput, SweepProgress, SweepReport } from '../common/sweepTypes.js';

export async function sweepLeftovers(input: SweepLeftoversInput): Promise<SweepReport> {
  const { workflowId } = workflowInfo();
  const startedAt = new Date().toISOString();
  const progress: SweepProgress = { phase: 'finding' };
  // Every workflow answers the progress query (backupctl status asks any of them).
  setHandler(progressQuery, () => progress);
  validateWith(progress, () => validateInput(input));
  const host = hostActivities(sweepStep, input.hostTaskQueue);
  const options = { removeRecoveryFolders: Boolean(input.removeRecoveryFolders), uploadAgeHours: input.uploadAgeHours ?? DEFAULT_UPLOAD_AGE_HOURS };
  const dryRun = Boolean(input.dryRun);

  try {
    const found = await host.findLeftovers({ uploadAgeHours: options.uploadAgeHours });

    progress.phase = 'asking-temporal';
    const runs = new Map<string, RunRef>();
    for (const leftover of found.leftovers) {
      const run = runOf(leftover);
      if (run) runs.set(runKey(run), run);
    }
    const standings = new Map<string, RunStanding>();
    if (runs.size) {
      const asked = [...runs.values()];
      const answers = await host.describeRuns({ runs: asked });
      asked.forEach((run, i) => standings.set(runKey(run), answers[i]));
    }

    progress.phase = 'sweeping';
    progress.done = 0;
    progress.of = found.leftovers.length;
    const items: SweepItem[] = [];
    for (const leftover of found.leftovers) {
      const run = runOf(leftover);
      const standing = run ? standings.get(runKey(run)) : undefined;
      const decision = decide(leftover, standing, options);
      const item: SweepItem = { leftover, ...(standing ? { standing } : {}), decision, outcome: decision.act === 'keep' ? 'kept' : dryRun ? 'planned' : 'done' };
      if (item.outcome === 'done') {
        try {
          item.detail = (await host.sweepLeftover({ leftover, decision })).detail;
        } catch (err) {
          if (isCancellation(err)) throw err;
          // One leftover that cannot go (a server down) must not keep the others.
          item.outcome = 'failed';
          item.detail = describeFailure(err);
        }
      }
      items.push(item);
      progress.done++;
    }
    progress.phase = 'done';
    const count = (outcome: SweepItem['outcome']) => items.filter((i) => i.outcome === outcome).length;
    return {
      workflowId,
      hostTaskQueue: input.hostTaskQueue,
      dryRun,
      startedAt,
      finishedAt: new Date().toISOString(),
      items,
      notExamined: found.notExamined,
      counts: { done: count('done'), kept: count('kept'), planned: count('planned'), failed: count('failed') },
    };
  } catch (err) {
    progress.phase = 'failed';
    progress.failure = describeFailure(err);
    throw surfaceFailure(err);
  }
}

/** Also run by the CLI before it starts this workflow (inputValidation.ts). */
export function validateInput(input: SweepLeftoversInput): void {
  checkObject(input);
  checkTaskQueue(input.hostTaskQueue);
  for (const flag of ['dryRun', 'removeRecoveryFolders'] as const) {
    if (input[flag] !== undefined && typeof input[flag] !== 'boolean') throw invalidInput(flag, input[flag], 'expected true or false');
  }
  const age = input.uploadAgeHours;
  if (age !== undefined && (typeof age !== 'number' || !Number.isFinite(age) || age < 0 || age > 24 * 365)) {
    throw invalidInput('uploadAgeHours', age, 'expected hours from 0 to 8760');
  }
}
