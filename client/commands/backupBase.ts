// `backupctl backup base`: the physical base backup, started on the shared queue and aimed at
// the database host's queue; output shaped like the database backup's.
import type { Client } from '@temporalio/client';
import { backupBase } from '../../workflows/index.js';
import { hostTaskQueue } from '../../workflows/types.js';
import type { BaseBackupResult } from '../../workflows/pitrTypes.js';
import { databaseHost, type Config } from '../../workers/config.js';
import { formatBytes, type Printer } from '../output.js';
import { compressionOption, defaultWorkflowId, startAndReport } from '../workflowRun.js';

export async function runBackupBase(
  client: Client,
  config: Config,
  options: { wait?: boolean; compression?: string; repository?: string[]; workflowId?: string },
  out: Printer,
): Promise<number> {
  return startAndReport(
    client,
    backupBase,
    {
      workflowId: options.workflowId ?? defaultWorkflowId('backup-base'),
      wait: options.wait,
      args: [
        {
          hostTaskQueue: hostTaskQueue(databaseHost(config)),
          compression: compressionOption(options.compression),
          repositories: options.repository?.length ? options.repository : undefined,
        },
      ],
    },
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
