// What Temporal says of a run that marked something as its own: open, closed (how, and as
// which workflow), gone (no such run: closed and its history deleted), or unknown. Asked with
// the activity's own client, so the CLI needs nothing but the workflow.
import { Context } from '@temporalio/activity';
import type { RunRef, RunStanding, RunStatus } from '../common/sweepTypes.js';
import { errorText } from '../engine/errors.js';

/** WorkflowExecutionStatus, by number. */
const STATUS: Record<number, RunStatus | 'RUNNING'> = {
  1: 'RUNNING',
  2: 'COMPLETED',
  3: 'FAILED',
  4: 'CANCELED',
  5: 'TERMINATED',
  6: 'CONTINUED_AS_NEW',
  7: 'TIMED_OUT',
};

/** gRPC NOT_FOUND */
const NOT_FOUND = 5;

/** The activity a recovery schedules to point the application at its cluster. */
const CUTOVER_ACTIVITY = 'switchToRecoveredCluster';

export async function describeRun(run: RunRef): Promise<RunStanding> {
  const ctx = Context.current();
  if (!run.workflowId || !run.runId) return { state: 'unknown', why: 'the mark names no workflow id' };
  let client;
  try {
    client = ctx.client;
  } catch (err) {
    return { state: 'unknown', why: `no Temporal client in this worker: ${errorText(err)}` };
  }
  try {
    const described = await client.workflowService.describeWorkflowExecution({
      namespace: ctx.info.workflowNamespace,
      execution: { workflowId: run.workflowId, runId: run.runId },
    });
    const info = described.workflowExecutionInfo;
    const status = STATUS[info?.status ?? 0] ?? 'UNSPECIFIED';
    if (status === 'RUNNING') return { state: 'open' };
    // Unknown statuses included: a status this version does not know is not taken as closed.
    if (status === 'UNSPECIFIED') return { state: 'unknown', why: `Temporal gave status ${info?.status ?? 'none'}` };
    const type = info?.type?.name ?? '';
    const standing: RunStanding = { state: 'closed', status, type };
    if (type === 'pointInTimeRecovery') standing.cutoverAttempted = await askedForCutover(run);
    return standing;
  } catch (err) {
    if ((err as { code?: number }).code === NOT_FOUND) return goneUnlessElsewhere(run);
    return { state: 'unknown', why: errorText(err) };
  }
}

/**
 * No run of that workflow id has that run id: gone (closed, its history deleted), unless
 * Temporal holds the run id under another workflow id. Then the mark was written by someone
 * else (a database's owner rewrites its comment; anyone who writes to a repository rewrites a
 * claim) to pass a run that may be open for a gone one: it is not believed, and touches nothing.
 */
async function goneUnlessElsewhere(run: RunRef): Promise<RunStanding> {
  if (!/^[0-9A-Za-z-]{1,64}$/.test(run.runId)) return { state: 'unknown', why: `the mark names run ${JSON.stringify(run.runId)}, which is not a run id` };
  const ctx = Context.current();
  try {
    const listed = await ctx.client.workflowService.listWorkflowExecutions({ namespace: ctx.info.workflowNamespace, pageSize: 1, query: `RunId = '${run.runId}'` });
    const other = listed.executions?.[0]?.execution?.workflowId;
    if (other !== undefined && other !== null) {
      return { state: 'unknown', why: `Temporal holds run ${run.runId} under workflow ${other}, not ${run.workflowId} as the mark says: the mark is not believed` };
    }
    return { state: 'gone' };
  } catch (err) {
    return { state: 'unknown', why: `no run ${run.runId} of workflow ${run.workflowId}, and Temporal could not say whether it holds that run elsewhere: ${errorText(err)}` };
  }
}

/** Whether the run's history shows the cutover scheduled: the application may run on its cluster. */
async function askedForCutover(run: RunRef): Promise<boolean> {
  const history = await Context.current().client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
  return (history.events ?? []).some((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === CUTOVER_ACTIVITY);
}
