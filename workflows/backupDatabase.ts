// The nightly full database backup: plan, dump to every repository in one pass, read every
// copy back, and only then write the manifest that makes the backup count.
import { ApplicationFailure, log, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { longTransfer, quickMetadata } from './activityOptions.js';
import { describeFailure, surfaceFailure } from './failures.js';
import { progressQuery } from './messages.js';
import { compensate, validateWith, type Compensation } from './saga.js';
import {
  COMPRESSIONS,
  ErrorType,
  type BackupManifest,
  type BackupProgress,
  type DatabaseBackupInput,
  type DatabaseBackupResult,
} from './types.js';

export async function backupDatabase(input: DatabaseBackupInput): Promise<DatabaseBackupResult> {
  const { workflowId, runId } = workflowInfo();
  const backupId = backupIdFor(workflowId);
  const startedAt = new Date().toISOString();
  const progress: BackupProgress = { phase: 'planning', backupId };
  setHandler(progressQuery, () => progress);
  validateWith(progress, () => validateInput(input));

  const quick = proxyActivities<Activities>({ ...quickMetadata, taskQueue: input.hostTaskQueue });
  const long = proxyActivities<Activities>({ ...longTransfer, taskQueue: input.hostTaskQueue });

  const compensations: Compensation[] = [];
  try {
    const plan = await quick.planDatabaseBackup({ backupId, runId, compression: input.compression, repositories: input.repositories });
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
      warnings: dump.warnings,
    };
  } catch (err) {
    progress.phase = 'cleaning-up';
    progress.failure = describeFailure(err);
    await compensate(compensations, { backupId });
    progress.phase = 'failed';
    throw surfaceFailure(err);
  }
}

/** The backup id is the workflow id made safe for file names and object keys. */
export function backupIdFor(workflowId: string): string {
  return workflowId.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 200);
}

/** Also run by the CLI before it starts this workflow (inputValidation.ts). */
export function validateInput(input: DatabaseBackupInput): void {
  const invalid = (field: string, value: unknown, allowed: string) =>
    ApplicationFailure.nonRetryable(`input.${field} is ${JSON.stringify(value)}; ${allowed}`, ErrorType.InvalidInput);
  if (!input || typeof input !== 'object') throw invalid('', input, 'expected an object');
  if (typeof input.hostTaskQueue !== 'string' || !/^[A-Za-z0-9@._-]+$/.test(input.hostTaskQueue)) {
    throw invalid('hostTaskQueue', input.hostTaskQueue, 'expected a task queue name such as "backup@db-1"');
  }
  if (input.compression !== undefined && !COMPRESSIONS.includes(input.compression)) {
    throw invalid('compression', input.compression, `allowed: ${COMPRESSIONS.join(', ')}`);
  }
  if (input.repositories !== undefined) {
    if (!Array.isArray(input.repositories) || input.repositories.length === 0 || input.repositories.some((r) => typeof r !== 'string')) {
      throw invalid('repositories', input.repositories, 'expected a non-empty list of repository names');
    }
  }
}
