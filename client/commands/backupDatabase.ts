// `backupctl backup database`: starts the backup workflow on the shared queue, aimed at the
// database host's queue, and optionally waits for its result.
import { WorkflowIdReusePolicy, type Client } from '@temporalio/client';
import { backupDatabase } from '../../workflows/index.js';
import { COMPRESSIONS, SHARED_TASK_QUEUE, hostTaskQueue, type Compression, type DatabaseBackupResult } from '../../workflows/types.js';
import { databaseHost, type Config } from '../../workers/config.js';
import { formatBytes, type Printer } from '../output.js';

export interface BackupDatabaseOptions {
  wait?: boolean;
  compression?: string;
  repository?: string[];
  workflowId?: string;
}

/** A business key: a second start in the same second collides instead of running twice. */
export function defaultBackupWorkflowId(now = new Date()): string {
  return `backup-database-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

export async function runBackupDatabase(client: Client, config: Config, options: BackupDatabaseOptions, out: Printer): Promise<number> {
  if (options.compression && !COMPRESSIONS.includes(options.compression as Compression)) {
    throw new Error(`--compression ${options.compression} is not one of: ${COMPRESSIONS.join(', ')}`);
  }
  const workflowId = options.workflowId ?? defaultBackupWorkflowId();
  const handle = await client.workflow.start(backupDatabase, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId,
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    args: [
      {
        hostTaskQueue: hostTaskQueue(databaseHost(config)),
        compression: options.compression as Compression | undefined,
        repositories: options.repository?.length ? options.repository : undefined,
      },
    ],
  });
  if (!options.wait) {
    out.result({ workflowId, runId: handle.firstExecutionRunId, status: 'started' }, () => `started ${workflowId}; follow it with: backupctl status`);
    return 0;
  }
  const result = await handle.result();
  out.result(result, () => describeBackup(result));
  return 0;
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
