// The weekly proof that a backup restores: restore it into a scratch database on the
// verification host, compare row counts with those recorded at dump time, run the checks and
// pg_amcheck, write the verdict beside the backup, and drop the scratch database on every
// path. Unlike the seed's `gunzip | psql`, a broken dump fails here.
import { ApplicationFailure, proxyActivities, setHandler, uuid4, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { longRestore, quickMetadata } from './activityOptions.js';
import { describeFailure, surfaceFailure } from './failures.js';
import { progressQuery } from './messages.js';
import { dropScratchThenReport, validateWith } from './saga.js';
import { inspectionProblems } from './verdicts.js';
import { checkBackupReference, checkJobs, checkObject, checkTaskQueue, invalidInput, shortTag, stamp } from './restoreInput.js';
import type { RestoreProgress, VerificationReport, VerifyBackupInput } from './restoreTypes.js';
import { ErrorType } from './types.js';

export async function verifyBackup(input: VerifyBackupInput): Promise<VerificationReport> {
  const { workflowId } = workflowInfo();
  const startedAt = new Date().toISOString();
  const progress: RestoreProgress = { phase: 'resolving' };
  setHandler(progressQuery, () => progress);
  validateWith(progress, () => validateInput(input));
  const quick = proxyActivities<Activities>({ ...quickMetadata, taskQueue: input.hostTaskQueue });
  const long = proxyActivities<Activities>({ ...longRestore, taskQueue: input.hostTaskQueue });

  // Derived from the workflow id, so a new worker after a crash finds what the dead one made.
  const scratch = `backupctl_verify_${shortTag(workflowId)}`;
  progress.database = scratch;
  const report: VerificationReport = {
    formatVersion: 1,
    kind: 'verification',
    reportId: `${stamp(new Date(startedAt))}-${uuid4().slice(0, 8)}`,
    workflowId,
    backupId: null,
    startedAt,
    finishedAt: startedAt,
    ok: false,
    scratchDropped: false,
  };
  let failure: unknown;
  try {
    const { source } = await quick.resolveRestoreSource({ backup: input.backup });
    if (source.kind !== 'backup') throw ApplicationFailure.nonRetryable('verification takes a catalog backup', ErrorType.InvalidInput);
    report.backupId = source.backupId;
    progress.phase = 'restoring';
    report.restored = await long.restoreIntoNewDatabase({ workflowId, source, database: scratch, jobs: input.jobs });
    progress.phase = 'verifying';
    report.inspection = await long.inspectRestoredDatabase({ database: scratch, expectedRowCounts: source.rowCounts, amcheck: input.amcheck ?? true });
    report.ok = report.inspection.ok;
  } catch (err) {
    failure = err;
    report.failure = describeFailure(err);
  } finally {
    progress.phase = 'cleaning-up';
    await dropScratchThenReport(
      {
        drop: () => quick.dropRestoredDatabase({ database: scratch, workflowId }),
        onDropped: () => (report.scratchDropped = true),
        stamp: () => (report.finishedAt = new Date().toISOString()),
        report: () => quick.writeVerificationReport(report),
      },
      { scratch },
    );
  }
  progress.phase = report.ok ? 'done' : 'failed';
  if (failure) throw surfaceFailure(failure);
  if (!report.ok) {
    const problems = inspectionProblems(report.inspection);
    throw ApplicationFailure.nonRetryable(`backup ${report.backupId} failed verification: ${problems.join('; ')}`, ErrorType.VerificationFailed, report);
  }
  return report;
}

/** Also run by the CLI before it starts this workflow (inputValidation.ts). */
export function validateInput(input: VerifyBackupInput): void {
  checkObject(input);
  checkTaskQueue(input.hostTaskQueue);
  checkBackupReference(input.backup, false);
  checkJobs(input.jobs);
  if (input.amcheck !== undefined && typeof input.amcheck !== 'boolean') throw invalidInput('amcheck', input.amcheck, 'expected true or false');
}
