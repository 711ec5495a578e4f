// A restore that never destroys the live database before a verified replacement exists:
// restore into a NEW database, verify it, and only when asked swap it into the live one's
// place while the application is stopped, keeping the old database. The services are started
// again on every path, failure and cancellation included.
import { ApplicationFailure, log, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import { hostActivities, longRestore, quickMetadata, serviceControl } from './activityOptions.js';
import { progressQuery } from './messages.js';
import { validateWith, withCompensation, type Compensation } from './saga.js';
import { inspectionProblems } from './verdicts.js';
import { checkAllowUnsigned, checkObject, checkTaskQueue, invalidInput } from './inputChecks.js';
import { DATABASE_NAME, checkBackupReference, checkJobs, databaseName, stamp } from './restoreInput.js';
import type { RestoreDatabaseInput, RestoreDatabaseResult, RestoreProgress } from '../common/restoreTypes.js';
import { ErrorType } from '../common/types.js';

export async function restoreDatabase(input: RestoreDatabaseInput): Promise<RestoreDatabaseResult> {
  const { workflowId } = workflowInfo();
  const started = Date.now();
  const progress: RestoreProgress = { phase: 'resolving' };
  setHandler(progressQuery, () => progress);
  validateWith(progress, () => validateInput(input));
  const quick = hostActivities(quickMetadata, input.hostTaskQueue);
  const long = hostActivities(longRestore, input.hostTaskQueue);
  const services = hostActivities(serviceControl, input.hostTaskQueue);

  const compensations: Compensation[] = [];
  return withCompensation(progress, compensations, { workflowId }, async () => {
    const { source, liveDatabase } = await quick.resolveRestoreSource({ backup: input.backup, allowUnsigned: input.allowUnsigned });
    const database = input.into ?? databaseName(liveDatabase, `_restore_${stamp(new Date(started))}`);
    progress.database = database;
    if (input.replace && database === liveDatabase) throw invalidInput('into', input.into, 'must differ from the live database it replaces');

    progress.phase = 'restoring';
    let restoredDatabaseIsLive = false;
    compensations.unshift(async () => {
      if (!restoredDatabaseIsLive) await quick.dropRestoredDatabase({ database, workflowId });
    });
    const restored = await long.restoreIntoNewDatabase({ workflowId, source, database, jobs: input.jobs });
    const restoredAt = Date.now();

    progress.phase = 'verifying';
    const inspection = await long.inspectRestoredDatabase({
      database,
      expectedRowCounts: source.kind === 'backup' ? source.rowCounts : {},
      amcheck: false,
    });
    if (!inspection.ok) {
      const problems = inspectionProblems(inspection);
      throw ApplicationFailure.nonRetryable(`the restored database ${database} failed verification: ${problems.join('; ')}`, ErrorType.VerificationFailed, inspection);
    }
    const verifiedAt = Date.now();

    let swap: RestoreDatabaseResult['swap'];
    if (input.replace) {
      const keepAs = databaseName(liveDatabase, `_pre_restore_${stamp(new Date(started))}`);
      // Pushed before the stop: a stop that half-succeeded still gets its start.
      let servicesStarted: string[] | undefined;
      compensations.unshift(async () => {
        servicesStarted ??= await services.startApplicationServices();
      });
      progress.phase = 'stopping-services';
      const servicesStopped = await services.stopApplicationServices();
      progress.phase = 'swapping';
      // Runs before the services start: a swap whose server stayed away longer than all of its
      // retries leaves the live database refusing connections, and only this gives them back
      // (retried for as long as starting the services is). Runs added since histories
      // recorded before this change.
      compensations.unshift(async () => {
        if (patched('reopen-live-after-failed-swap')) await services.allowLiveDatabaseConnections({ live: liveDatabase, keepAs });
      });
      await quick.swapLiveDatabase({ live: liveDatabase, replacement: database, keepAs });
      restoredDatabaseIsLive = true;
      log.info('live database replaced', { live: liveDatabase, keptAs: keepAs });
      progress.phase = 'starting-services';
      servicesStarted = await services.startApplicationServices();
      swap = { live: liveDatabase, keptAs: keepAs, servicesStopped, servicesStarted };
    }
    progress.phase = 'done';
    const finished = Date.now();
    return {
      workflowId,
      source: source.kind === 'backup' ? { kind: 'backup', backupId: source.backupId, takenAt: source.takenAt } : { kind: 'file', path: source.path, format: source.format },
      restored,
      inspection,
      swap,
      timing: {
        restoreSeconds: (restoredAt - started) / 1000,
        verifySeconds: (verifiedAt - restoredAt) / 1000,
        swapSeconds: swap ? (finished - verifiedAt) / 1000 : undefined,
        totalSeconds: (finished - started) / 1000,
      },
    };
  });
}

/** Also run by the CLI before it starts this workflow (inputValidation.ts). */
export function validateInput(input: RestoreDatabaseInput): void {
  checkObject(input);
  checkTaskQueue(input.hostTaskQueue);
  checkBackupReference(input.backup, true);
  checkJobs(input.jobs);
  checkAllowUnsigned(input.allowUnsigned);
  if (input.into !== undefined && (typeof input.into !== 'string' || !DATABASE_NAME.test(input.into))) {
    throw invalidInput('into', input.into, 'expected a database name of lower-case letters, digits and _ (at most 63)');
  }
  if (input.replace !== undefined && typeof input.replace !== 'boolean') throw invalidInput('replace', input.replace, 'expected true or false');
}
