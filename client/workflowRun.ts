// Starting a workflow from the CLI: a business-key workflow id (a second start collides
// instead of running twice), and either "started" at once or the result after --wait.
import { WorkflowIdReusePolicy, type Client, type Workflow, type WorkflowStartOptions } from '@temporalio/client';
import { COMPRESSIONS, SHARED_TASK_QUEUE, type Compression } from '../workflows/types.js';
import type { Printer } from './output.js';

/** `<kind>-20261126T031500Z`, from the client's clock. */
export function defaultWorkflowId(kind: string, now = new Date()): string {
  return `${kind}-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

/** --compression, checked before anything starts. */
export function compressionOption(value: string | undefined): Compression | undefined {
  if (value !== undefined && !COMPRESSIONS.includes(value as Compression)) throw new Error(`--compression ${value} is not one of: ${COMPRESSIONS.join(', ')}`);
  return value as Compression | undefined;
}

export async function startAndReport<W extends Workflow>(
  client: Client,
  workflow: W,
  options: { workflowId: string; args: Parameters<W>; wait?: boolean },
  out: Printer,
  describe: (result: Awaited<ReturnType<W>>) => string,
): Promise<number> {
  const handle = await client.workflow.start(workflow, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId: options.workflowId,
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    args: options.args,
  } as unknown as WorkflowStartOptions<W>);
  if (!options.wait) {
    out.result({ workflowId: options.workflowId, runId: handle.firstExecutionRunId, status: 'started' }, () => `started ${options.workflowId}; follow it with: backupctl status`);
    return 0;
  }
  const result = (await handle.result()) as Awaited<ReturnType<W>>;
  out.result(result as object, () => describe(result));
  return 0;
}
