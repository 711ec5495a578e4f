// `backupctl monitor start|show`: the database host's monitor (workflows/monitor.ts), one per
// host (its id is monitor-<host>). `schedules apply` starts it too.
import { WorkflowIdConflictPolicy, WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import { databaseHost, type Config } from '../../common/config.js';
import type { MonitorState } from '../../common/monitorTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../../common/types.js';
import { monitor } from '../../workflows/index.js';
import { monitorQuery } from '../../workflows/messages.js';
import type { Printer } from '../output.js';

export function monitorWorkflowId(config: Config): string {
  return `monitor-${databaseHost(config)}`;
}

/** Whether the workflow of that id has a run going (no such workflow: not running). */
export async function isWorkflowRunning(client: Client, workflowId: string): Promise<boolean> {
  return client.workflow
    .getHandle(workflowId)
    .describe()
    .then((d) => d.status.name === 'RUNNING')
    .catch((err) => {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    });
}

/** The monitor, started unless one runs (USE_EXISTING: two callers racing end with one). */
export async function ensureMonitor(client: Client, config: Config): Promise<{ workflowId: string; handle: WorkflowHandle; started: boolean }> {
  const workflowId = monitorWorkflowId(config);
  if (await isWorkflowRunning(client, workflowId)) return { workflowId, handle: client.workflow.getHandle(workflowId), started: false };
  const handle = await client.workflow.start(monitor, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId,
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    args: [{ hostTaskQueue: hostTaskQueue(databaseHost(config)), intervalSeconds: config.monitor.intervalSeconds, failedRunsSeconds: config.monitor.failedRunsSeconds }],
  });
  return { workflowId, handle, started: true };
}

/** The running monitor's state, or why there is none. */
export async function monitorState(client: Client, config: Config): Promise<{ workflowId: string; running: boolean; state?: MonitorState; error?: string }> {
  const workflowId = monitorWorkflowId(config);
  try {
    if (!(await isWorkflowRunning(client, workflowId))) return { workflowId, running: false };
    return { workflowId, running: true, state: await client.workflow.getHandle(workflowId).query(monitorQuery) };
  } catch (err) {
    return { workflowId, running: false, error: err instanceof Error ? err.message : String(err) };
  }
}

export async function runStartMonitor(client: Client, config: Config, out: Printer): Promise<number> {
  const { workflowId, started } = await ensureMonitor(client, config);
  out.result({ workflowId, started }, () => `monitor ${started ? 'started' : 'already running'} as ${workflowId}`);
  return 0;
}

export async function runShowMonitor(client: Client, config: Config, out: Printer): Promise<number> {
  const found = await monitorState(client, config);
  out.result(found, () => {
    if (!found.running) return `no monitor is running (${found.workflowId})${found.error ? `: ${found.error}` : ''}; backupctl monitor start, or schedules apply, starts it`;
    const s = found.state!;
    return [
      `monitor ${found.workflowId}: last look ${s.lastLookAt ?? 'not yet'}${s.lastLookError ? ` (FAILED: ${s.lastLookError})` : ''}, ${s.looks} look(s)`,
      ...Object.entries(s.open).map(([key, p]) => `  open ${p.severity} ${key} since ${p.openedAt}: ${p.message}`),
      ...Object.entries(s.channels).map(([name, c]) => `  channel ${name}: ${c.ok ? 'ok' : `FAILING (${c.error})`} at ${c.at}`),
      ...(s.undelivered.length ? [`  ${s.undelivered.length} alert(s) waiting for a channel`] : []),
    ].join('\n');
  });
  return found.running ? 0 : 1;
}
