// The nightly full database backup: plan, dump to every repository in one pass, read every
// copy back, and only then write the manifest that makes the backup count.
import { log } from '@temporalio/workflow';
import { backupFrame, checkBackupOptions, sweepAttempts } from './backupFrame.js';
import { checkObject, checkTaskQueue } from './inputChecks.js';
import type { BackupManifest, DatabaseBackupInput, DatabaseBackupResult } from '../common/types.js';

export async function backupDatabase(input: DatabaseBackupInput): Promise<DatabaseBackupResult> {
  return backupFrame(input, () => validateInput(input), async ({ workflowId, runId, backupId, startedAt, progress, quick, long, compensations }) => {
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
  });
}

/** Also run by the CLI before it starts this workflow (inputValidation.ts). */
export function validateInput(input: DatabaseBackupInput): void {
  checkObject(input);
  checkTaskQueue(input.hostTaskQueue);
  checkBackupOptions(input);
}
