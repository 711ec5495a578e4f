// The nightly full database backup: plan, dump to every repository in one pass, read every
// copy back, and only then write the manifest that makes the backup count.
import { log, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { hostActivities, longTransfer, quickMetadata } from './activityOptions.js';
import { backupIdOf, legacyBackupIdOf } from './backupId.js';
import { describeFailure, surfaceFailure } from './failures.js';
import { progressQuery } from './messages.js';
import { compensate, validateWith, type Compensation } from './saga.js';
import { checkObject, checkTaskQueue, invalidInput } from './inputChecks.js';
import {
  COMPRESSIONS,
  type BackupManifest,
  type BackupProgress,
  type DatabaseBackupInput,
  type DatabaseBackupResult,
} from '../common/types.js';

export async function backupDatabase(input: DatabaseBackupInput): Promise<DatabaseBackupResult> {
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
    const plan = await quick.planDatabaseBackup({ backupId, runId, workflowId, compression: input.compression, repositories: input.repositories });
    const repositories = plan.repositories.map((r) => r.name);
    log.info('backup planned', { backupId, database: plan.database, repositories });

    compensations.unshift(() => quick.discardBackupObjects({ backupId, runId, repositories }));
    progress.phase = 'dumping';
    const dump = await long.dumpDatabaseToRepositories({ backupId, plan });

    progress.phase = 'verifying';
    const copies = await long.verifyBackupCopies({ objects: dump.objects, repositories });

    progress.phase = 'writing-manifest';
    const manifest: BackupManifest = {
      formatVersion: 1,
      backupId,
      component: 'database',
      workflowId,
      runId,
      startedAt,
      finishedAt: new Date().toISOString(),
      source: dump.source,
      compression: plan.compression,
      encryption: { type: 'openpgp', recipientFingerprint: plan.encryptionFingerprint },
      objects: dump.objects,
      rowCounts: dump.rowCounts,
      readabilityCheck: dump.readabilityCheck,
      copies,
      warnings: dump.warnings,
    };
    await quick.writeBackupManifest(manifest);
    const warnings = [...dump.warnings, ...(await sweepAttempts(quick, { component: 'database', backupId, runId, repositories, keep: dump.objects.map((o) => o.key) }))];
    progress.phase = 'done';

    const main = dump.objects.find((o) => o.role === 'dump')!;
    return {
      workflowId,
      backupId,
      component: 'database',
      startedAt,
      finishedAt: manifest.finishedAt,
      bytes: main.bytes,
      sha256: main.sha256,
      compression: plan.compression,
      encryption: `openpgp:${plan.encryptionFingerprint}`,
      rowCounts: dump.rowCounts,
      objects: dump.objects,
      copies,
      warnings,
    };
  } catch (err) {
    progress.phase = 'cleaning-up';
    progress.failure = describeFailure(err);
    await compensate(compensations, { backupId });
    progress.phase = 'failed';
    throw surfaceFailure(err);
  }
}

/**
 * The backup id: the workflow id, one to one (backupId.ts); runs started before that keep
 * the old, lossy id on replay.
 */
export function backupIdFor(workflowId: string, progress: BackupProgress): string {
  const id = patched('one-to-one-backup-id') ? undefined : legacyBackupIdOf(workflowId);
  if (id !== undefined) return (progress.backupId = id);
  validateWith(progress, () => (progress.backupId = backupIdOf(workflowId)));
  return progress.backupId;
}

/**
 * After the manifest, the other attempts' leftovers go (a crashed attempt's partial dump, a
 * superseded one's whole copy). The backup is complete whatever happens here, so a failure
 * is a warning, not a failed backup. Runs from before attempt folders have nothing to sweep.
 */
export async function sweepAttempts(
  quick: Pick<Activities, 'sweepBackupAttempts'>,
  input: Parameters<Activities['sweepBackupAttempts']>[0],
): Promise<string[]> {
  if (!patched('sweep-attempt-folders')) return [];
  try {
    await quick.sweepBackupAttempts(input);
    return [];
  } catch (err) {
    const warning = `the objects of superseded attempts were not all removed: ${describeFailure(err)}`;
    log.warn(warning, { backupId: input.backupId });
    return [warning];
  }
}

/** Also run by the CLI before it starts this workflow (inputValidation.ts). */
export function validateInput(input: DatabaseBackupInput): void {
  checkObject(input);
  checkTaskQueue(input.hostTaskQueue);
  if (input.compression !== undefined && !COMPRESSIONS.includes(input.compression)) {
    throw invalidInput('compression', input.compression, `allowed: ${COMPRESSIONS.join(', ')}`);
  }
  if (input.repositories !== undefined) {
    if (!Array.isArray(input.repositories) || input.repositories.length === 0 || input.repositories.some((r) => typeof r !== 'string')) {
      throw invalidInput('repositories', input.repositories, 'expected a non-empty list of repository names');
    }
  }
}
