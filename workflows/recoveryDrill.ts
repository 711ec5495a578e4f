// The monthly recovery drill: on the drill host (its own worker, not ssh), restore the OFFSITE
// copy only, run the smoke checks, measure recovery time (start until checks pass) and data
// age (backup snapshot until the drill), write the report, and tear the drill database down.
import { ApplicationFailure, setHandler, uuid4, workflowInfo } from '@temporalio/workflow';
import { describeFailure, surfaceFailure } from './failures.js';
import { progressQuery } from './messages.js';
import { validateWith } from './saga.js';
import { endScratchRun, restoreIntoScratch, scratchActivities } from './scratchRestore.js';
import { inspectionProblems } from './verdicts.js';
import { checkAllowUnsigned, checkObject, checkTaskQueue, invalidInput } from './inputChecks.js';
import { checkBackupReference, checkJobs, stamp } from './restoreInput.js';
import { scratchDatabaseName } from '../common/names.js';
import type { DrillReport, RecoveryDrillInput, RestoreProgress } from '../common/restoreTypes.js';
import { ErrorType } from '../common/types.js';

export async function recoveryDrill(input: RecoveryDrillInput): Promise<DrillReport> {
  const { workflowId } = workflowInfo();
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const progress: RestoreProgress = { phase: 'resolving' };
  setHandler(progressQuery, () => progress);
  validateWith(progress, () => validateInput(input));
  const activities = scratchActivities(input.hostTaskQueue);

  const database = scratchDatabaseName('drill', workflowId);
  progress.database = database;
  const report: DrillReport = {
    formatVersion: 1,
    kind: 'drill',
    reportId: `${stamp(new Date(started))}-${uuid4().slice(0, 8)}`,
    workflowId,
    host: input.hostTaskQueue,
    repository: input.repository,
    backupId: null,
    startedAt,
    finishedAt: startedAt,
    ok: false,
    application: { requested: input.application ?? 'none', restored: false, detail: 'not requested' },
    torndown: false,
  };
  let failure: unknown;
  try {
    const { inspection } = await restoreIntoScratch(
      activities,
      progress,
      { workflowId, database, backup: input.backup, repositories: [input.repository], allowUnsigned: input.allowUnsigned, jobs: input.jobs, amcheck: false, what: 'the drill' },
      {
        source: (source) => {
          report.backupId = source.backupId;
          report.rpoSeconds = (started - Date.parse(source.takenAt)) / 1000;
        },
        restored: (restored) => (report.restored = restored),
      },
    );
    report.inspection = inspection;
    if (input.healthUrl) report.health = await activities.quick.checkHealthUrl({ url: input.healthUrl });
    report.ok = report.inspection.ok && (report.health?.ok ?? true);
    if (report.ok) report.rtoSeconds = (Date.now() - started) / 1000;
  } catch (err) {
    failure = err;
    report.failure = describeFailure(err);
  } finally {
    await endScratchRun(activities, progress, { workflowId, database, context: { database } }, {
      onDropped: () => (report.torndown = true),
      stamp: () => (report.finishedAt = new Date().toISOString()),
      write: () => activities.quick.writeDrillReport(report),
    });
  }
  progress.phase = report.ok ? 'done' : 'failed';
  if (failure) throw surfaceFailure(failure);
  if (!report.ok) {
    const problems = [...inspectionProblems(report.inspection), ...(report.health && !report.health.ok ? [`${report.health.name}: ${report.health.detail}`] : [])];
    throw ApplicationFailure.nonRetryable(`the recovery drill failed: ${problems.join('; ')}`, ErrorType.VerificationFailed, report);
  }
  return report;
}

/** Also run by the CLI before it starts this workflow (inputValidation.ts). */
export function validateInput(input: RecoveryDrillInput): void {
  checkObject(input);
  checkTaskQueue(input.hostTaskQueue);
  checkBackupReference(input.backup, false);
  checkJobs(input.jobs);
  checkAllowUnsigned(input.allowUnsigned);
  if (typeof input.repository !== 'string' || !/^[a-z][a-z0-9_-]{0,39}$/.test(input.repository)) {
    throw invalidInput('repository', input.repository, 'expected the name of the offsite repository, such as "s3"');
  }
  if (input.healthUrl !== undefined && (typeof input.healthUrl !== 'string' || !/^https?:\/\/\S+$/.test(input.healthUrl))) {
    throw invalidInput('healthUrl', input.healthUrl, 'expected an http:// or https:// URL');
  }
  if (input.application !== undefined && input.application !== 'none') {
    // The input is designed now; application archives arrive with the file backups.
    throw invalidInput('application', input.application, 'application archives are not backed up yet; only "none" is accepted until file backups exist');
  }
}
