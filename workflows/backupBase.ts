// The physical base backup: plan, stream pg_basebackup's tar to every repository in one pass,
// read every copy back, and only then write the manifest (with the WAL range it needs) that
// makes it count. Point-in-time recovery starts from the newest one before its target.
import { log, setHandler, workflowInfo } from '@temporalio/workflow';
import { hostActivities, longTransfer, quickMetadata } from './activityOptions.js';
import { backupIdFor, sweepAttempts } from './backupDatabase.js';
import { describeFailure, surfaceFailure } from './failures.js';
import { progressQuery } from './messages.js';
import { compensate, validateWith, type Compensation } from './saga.js';
import type { BaseBackupInput, BaseBackupManifest, BaseBackupResult } from '../common/pitrTypes.js';
import { checkObject, checkTaskQueue, invalidInput } from './inputChecks.js';
import { COMPRESSIONS, type BackupProgress } from '../common/types.js';

export async function backupBase(input: BaseBackupInput): Promise<BaseBackupResult> {
  const { workflowId, runId } = workflowInfo();
  const startedAt = new Date().toISOString();
  const progress: BackupProgress = { phase: 'planning', backupId: '' };
  setHandler(progressQuery, () => progress);
  const backupId = backupIdFor(workflowId, progress);
  validateWith(progress, () => validateInput(input));
  const quick = hostActivities(quickMetadata, input.hostTaskQueue);
  const long = hostActivities(longTransfer, input.hostTaskQueue);

  const compensations: Compensation[] = [];
  try {
    const plan = await quick.planBaseBackup({ backupId, runId, workflowId, compression: input.compression, repositories: input.repositories });
    const repositories = plan.repositories.map((r) => r.name);
    compensations.unshift(() => quick.discardBaseBackupObjects({ backupId, runId, repositories }));
    progress.phase = 'dumping';
    const { object, backup } = await long.baseBackupToRepositories({ backupId, plan });
    const objects = [{ role: 'base' as const, ...object }];

    progress.phase = 'verifying';
    const copies = await long.verifyBackupCopies({ objects, repositories });

    progress.phase = 'writing-manifest';
    const manifest: BaseBackupManifest = {
      formatVersion: 1,
      backupId,
      component: 'base',
      workflowId,
      runId,
      startedAt,
      finishedAt: new Date().toISOString(),
      server: plan.server,
      backup,
      compression: plan.compression,
      encryption: { type: 'openpgp', recipientFingerprint: plan.encryptionFingerprint },
      objects,
      copies,
    };
    await quick.writeBackupManifest(manifest);
    await sweepAttempts(quick, { component: 'base', backupId, runId, repositories, keep: objects.map((o) => o.key) });
    progress.phase = 'done';
    log.info('base backup complete', { backupId, startLsn: backup.startLsn, stopLsn: backup.stopLsn });
    return {
      workflowId,
      backupId,
      component: 'base',
      startedAt,
      finishedAt: manifest.finishedAt,
      bytes: object.bytes,
      sha256: object.sha256,
      compression: plan.compression,
      encryption: `openpgp:${plan.encryptionFingerprint}`,
      server: plan.server,
      backup,
      objects,
      copies,
    };
  } catch (err) {
    progress.phase = 'cleaning-up';
    progress.failure = describeFailure(err);
    await compensate(compensations, { backupId });
    progress.phase = 'failed';
    throw surfaceFailure(err);
  }
}

/** Also run by the CLI before it starts this workflow (inputValidation.ts). */
export function validateInput(input: BaseBackupInput): void {
  checkObject(input);
  checkTaskQueue(input.hostTaskQueue);
  if (input.compression !== undefined && !COMPRESSIONS.includes(input.compression)) {
    throw invalidInput('compression', input.compression, `allowed: ${COMPRESSIONS.join(', ')}`);
  }
  if (input.repositories !== undefined && (!Array.isArray(input.repositories) || input.repositories.length === 0 || input.repositories.some((r) => typeof r !== 'string'))) {
    throw invalidInput('repositories', input.repositories, 'expected a non-empty list of repository names');
  }
}
