// `backupctl backup database`: starts the backup workflow on the shared queue, aimed at the
// database host's queue, and optionally waits for its result.
import type { Client } from '@temporalio/client';
import { backupDatabase } from '../../workflows/index.js';
import { validateDatabaseBackupInput } from '../../workflows/inputValidation.js';
import { hostTaskQueue, type DatabaseBackupInput, type DatabaseBackupResult } from '../../common/types.js';
import { databaseHost, type Config } from '../../common/config.js';
import { formatBytes, type Printer } from '../output.js';
import { backupWorkflowIdOption, compressionOption, defaultWorkflowId, refuseInvalid, repositoriesOption, startAndReport } from '../workflowRun.js';

export interface BackupDatabaseOptions {
  wait?: boolean;
  compression?: string;
  repository?: string[];
  workflowId?: string;
}

/** The workflow's input, checked by the workflow's own check: throws InputRefused before anything starts. */
export function backupDatabaseInput(config: Config, options: BackupDatabaseOptions): DatabaseBackupInput {
  backupWorkflowIdOption(options.workflowId);
  return refuseInvalid(
    {
      hostTaskQueue: hostTaskQueue(databaseHost(config)),
      compression: compressionOption(options.compression),
      repositories: repositoriesOption(options.repository, Object.keys(config.repositories)),
    },
    validateDatabaseBackupInput,
  );
}

export async function runBackupDatabase(client: Client, config: Config, options: BackupDatabaseOptions, out: Printer): Promise<number> {
  return startBackupDatabase(client, backupDatabaseInput(config, options), options, out);
}

export async function startBackupDatabase(client: Client, input: DatabaseBackupInput, options: BackupDatabaseOptions, out: Printer): Promise<number> {
  return startAndReport(
    client,
    backupDatabase,
    { workflowId: options.workflowId ?? defaultWorkflowId('backup-database'), wait: options.wait, args: [input] },
    out,
    describeBackup,
  );
}

export function describeBackup(result: DatabaseBackupResult): string {
  const lines = [
    `backup ${result.backupId} complete (${result.startedAt} -> ${result.finishedAt})`,
    `  stored ${formatBytes(result.bytes)}, ${result.compression}, encrypted to ${result.encryption}`,
    `  sha256 ${result.sha256}`,
    `  rows: ${Object.entries(result.rowCounts).map(([t, n]) => `${t}=${n}`).join(', ') || '(no key tables)'}`,
    ...result.copies.map((c) => `  ${c.verified ? 'verified' : 'UNVERIFIED'} ${c.repository}: ${c.key} (${formatBytes(c.bytes)})`),
    ...result.warnings.map((w) => `  warning: ${w}`),
  ];
  return lines.join('\n');
}
