// The physical base backup: plan, stream pg_basebackup's tar to every repository in one pass,
// read every copy back, and only then write the manifest (with the WAL range it needs) that
// makes it count. Point-in-time recovery starts from the newest one before its target.
import { log } from '@temporalio/workflow';
import { backupFrame, checkBackupOptions, sweepAttempts } from './backupFrame.js';
import { checkObject, checkTaskQueue } from './inputChecks.js';
import type { BaseBackupInput, BaseBackupManifest, BaseBackupResult } from '../common/pitrTypes.js';

export async function backupBase(input: BaseBackupInput): Promise<BaseBackupResult> {
  return backupFrame(input, () => validateInput(input), async ({ workflowId, runId, backupId, startedAt, progress, quick, long, compensations }) => {
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
  });
}

/** Also run by the CLI before it starts this workflow (inputValidation.ts). */
export function validateInput(input: BaseBackupInput): void {
  checkObject(input);
  checkTaskQueue(input.hostTaskQueue);
  checkBackupOptions(input);
}
