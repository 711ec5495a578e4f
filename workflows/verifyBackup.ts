// The weekly proof that a backup restores: restore it into a scratch database on the
// verification host, compare row counts with those recorded at dump time, run the checks and
// pg_amcheck, read every copy in every repository back, write the verdict beside the backup,
// and drop the scratch database on every path. Unlike the seed's `gunzip | psql`, a broken
// dump fails here, and a damaged copy the restore skipped is named in the verdict.
import { ApplicationFailure, isCancellation, patched, setHandler, uuid4, workflowInfo } from '@temporalio/workflow';
import { copyProblems, copySummary, verificationState, verificationVerdict } from '../common/copyVerdict.js';
import { describeFailure, surfaceFailure } from './failures.js';
import { progressQuery } from './messages.js';
import { validateWith } from './saga.js';
import { endScratchRun, restoreIntoScratch, scratchActivities } from './scratchRestore.js';
import { inspectionProblems } from './verdicts.js';
import { checkAllowUnsigned, checkObject, checkTaskQueue, invalidInput } from './inputChecks.js';
import { checkBackupReference, checkJobs, stamp } from './restoreInput.js';
import { scratchDatabaseName } from '../common/names.js';
import type { RestoreProgress, VerificationReport, VerifyBackupInput } from '../common/restoreTypes.js';
import { ErrorType, type StoredObject } from '../common/types.js';

export async function verifyBackup(input: VerifyBackupInput): Promise<VerificationReport> {
  const { workflowId } = workflowInfo();
  const startedAt = new Date().toISOString();
  const progress: RestoreProgress = { phase: 'resolving' };
  setHandler(progressQuery, () => progress);
  validateWith(progress, () => validateInput(input));
  const activities = scratchActivities(input.hostTaskQueue);

  // Derived from the workflow id, so a new worker after a crash finds what the dead one made.
  const scratch = scratchDatabaseName('verify', workflowId);
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
  let toAudit: { backupId: string; objects: StoredObject[]; allowUnsigned?: boolean } | undefined;
  try {
    const { inspection } = await restoreIntoScratch(
      activities,
      progress,
      { workflowId, database: scratch, backup: input.backup, allowUnsigned: input.allowUnsigned, jobs: input.jobs, amcheck: input.amcheck ?? true, what: 'verification' },
      {
        source: (source) => {
          report.backupId = source.backupId;
          toAudit = { backupId: source.backupId, objects: source.objects, allowUnsigned: input.allowUnsigned };
        },
        restored: (restored) => (report.restored = restored),
      },
    );
    report.inspection = inspection;
    report.ok = inspection.ok;
  } catch (err) {
    failure = err;
    report.failure = describeFailure(err);
  } finally {
    // Every copy in every repository, read back in full: the restore stops at the first whole
    // one and never sees the others. Also after a failed restore, when which copies are whole
    // matters most; before the report, which records it.
    if (toAudit && !isCancellation(failure) && patched('audit-copies')) {
      progress.phase = 'auditing-copies';
      try {
        report.copies = await activities.long.auditBackupCopies(toAudit);
      } catch (err) {
        if (isCancellation(err)) failure ??= err;
        report.copyAuditFailure = describeFailure(err);
      }
    }
    report.state = verificationState(report);
    report.verdict = verificationVerdict(report);
    await endScratchRun(activities, progress, { workflowId, database: scratch, context: { scratch } }, {
      onDropped: () => (report.scratchDropped = true),
      stamp: () => (report.finishedAt = new Date().toISOString()),
      write: () => activities.quick.writeVerificationReport(report),
    });
  }
  progress.phase = report.ok ? 'done' : 'failed';
  if (failure) throw surfaceFailure(failure);
  if (!report.ok) {
    const problems = inspectionProblems(report.inspection);
    const copies = report.copies?.damaged.length ? [copySummary(report.copies), ...copyProblems(report.copies)] : [];
    throw ApplicationFailure.nonRetryable(`backup ${report.backupId} failed verification: ${[...problems, ...copies].join('; ')}`, ErrorType.VerificationFailed, report);
  }
  return report;
}

/** Also run by the CLI before it starts this workflow (inputValidation.ts). */
export function validateInput(input: VerifyBackupInput): void {
  checkObject(input);
  checkTaskQueue(input.hostTaskQueue);
  checkBackupReference(input.backup, false);
  checkJobs(input.jobs);
  checkAllowUnsigned(input.allowUnsigned);
  if (input.amcheck !== undefined && typeof input.amcheck !== 'boolean') throw invalidInput('amcheck', input.amcheck, 'expected true or false');
}
