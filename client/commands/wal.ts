// `backupctl wal ship`: starts the database host's WAL shipping workflow, or finds the one
// already running (one per host: its id is wal-shipping-<host>). `schedules apply` starts it too.
import { WorkflowIdConflictPolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import { isWorkflowRunning } from './monitor.js';
import { shipWal } from '../../workflows/index.js';
import { walShippingQuery } from '../../workflows/messages.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../../common/types.js';
import { databaseHost, type Config } from '../../common/config.js';
import type { Printer } from '../output.js';

export function walShippingWorkflowId(config: Config): string {
  return `wal-shipping-${databaseHost(config)}`;
}

/**
 * The shipping workflow, started unless one runs: `started` says which. Started with
 * USE_EXISTING, so two callers racing past the look both end with the one workflow.
 */
export async function ensureWalShipping(client: Client, config: Config): Promise<{ workflowId: string; handle: WorkflowHandle; started: boolean }> {
  const workflowId = walShippingWorkflowId(config);
  if (await isWorkflowRunning(client, workflowId)) return { workflowId, handle: client.workflow.getHandle(workflowId), started: false };
  const handle = await client.workflow.start(shipWal, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId,
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    args: [{ hostTaskQueue: hostTaskQueue(databaseHost(config)), intervalSeconds: config.wal.shipIntervalSeconds }],
  });
  return { workflowId, handle, started: true };
}

export async function runShipWal(client: Client, config: Config, out: Printer): Promise<number> {
  const { workflowId, handle } = await ensureWalShipping(client, config);
  const state = await handle.query(walShippingQuery).catch(() => undefined);
  const runId = (await handle.describe()).runId;
  out.result({ workflowId, runId, status: 'running', state }, () => `WAL shipping runs as ${workflowId}; backupctl status shows each repository's lag`);
  return 0;
}
