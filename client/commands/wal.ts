// `backupctl wal ship`: starts the database host's WAL shipping workflow, or finds the one
// already running (one per host: its id is wal-shipping-<host>).
import { WorkflowIdConflictPolicy, type Client } from '@temporalio/client';
import { shipWal } from '../../workflows/index.js';
import { walShippingQuery } from '../../workflows/messages.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../../common/types.js';
import { databaseHost, type Config } from '../../common/config.js';
import type { Printer } from '../output.js';

export function walShippingWorkflowId(config: Config): string {
  return `wal-shipping-${databaseHost(config)}`;
}

export async function runShipWal(client: Client, config: Config, out: Printer): Promise<number> {
  const workflowId = walShippingWorkflowId(config);
  const handle = await client.workflow.start(shipWal, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId,
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    args: [{ hostTaskQueue: hostTaskQueue(databaseHost(config)), intervalSeconds: config.wal.shipIntervalSeconds }],
  });
  const state = await handle.query(walShippingQuery).catch(() => undefined);
  out.result({ workflowId, runId: handle.firstExecutionRunId, status: 'running', state }, () => `WAL shipping runs as ${workflowId}; backupctl status shows each repository's lag`);
  return 0;
}
