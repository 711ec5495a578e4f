// `backupctl backup base`: the physical base backup, started on the shared queue and aimed at
// the database host's queue; output shaped like the database backup's.
import type { Client } from '@temporalio/client';
import { backupBase } from '../../workflows/index.js';
import { hostTaskQueue } from '../../common/types.js';
import type { BaseBackupInput, BaseBackupResult } from '../../common/pitrTypes.js';
import { validateBaseBackupInput } from '../../workflows/inputValidation.js';
import { databaseHost, type Config } from '../../common/config.js';
import { formatBytes, type Printer } from '../output.js';
import { backupWorkflowIdOption, compressionOption, defaultWorkflowId, refuseInvalid, repositoriesOption, startAndReport } from '../workflowRun.js';

export interface BackupBaseOptions {
  wait?: boolean;
  compression?: string;
  repository?: string[];
  workflowId?: string;
}

/** The workflow's input, checked by the workflow's own check: throws InputRefused before anything starts. */
export function backupBaseInput(config: Config, options: BackupBaseOptions): BaseBackupInput {
  backupWorkflowIdOption(options.workflowId);
  return refuseInvalid(
    {
      hostTaskQueue: hostTaskQueue(databaseHost(config)),
      compression: compressionOption(options.compression),
      repositories: repositoriesOption(options.repository, Object.keys(config.repositories)),
    },
    validateBaseBackupInput,
  );
}

export async function runBackupBase(client: Client, config: Config, options: BackupBaseOptions, out: Printer): Promise<number> {
  return startBackupBase(client, backupBaseInput(config, options), options, out);
}

export async function startBackupBase(client: Client, input: BaseBackupInput, options: BackupBaseOptions, out: Printer): Promise<number> {
  return startAndReport(
    client,
    backupBase,
    { workflowId: options.workflowId ?? defaultWorkflowId('backup-base'), wait: options.wait, args: [input] },
    out,
    describeBaseBackup,
  );
}

export function describeBaseBackup(result: BaseBackupResult): string {
  return [
    `base backup ${result.backupId} complete (${result.startedAt} -> ${result.finishedAt})`,
    `  PostgreSQL ${result.server.version}, timeline ${result.backup.timeline}, WAL ${result.backup.startLsn} -> ${result.backup.stopLsn}`,
    `  stored ${formatBytes(result.bytes)}, ${result.compression}, encrypted to ${result.encryption}`,
    `  sha256 ${result.sha256}`,
    ...result.copies.map((c) => `  ${c.verified ? 'verified' : 'UNVERIFIED'} ${c.repository}: ${c.key} (${formatBytes(c.bytes)})`),
  ].join('\n');
}
