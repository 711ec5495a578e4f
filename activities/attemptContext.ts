// The attempt the engine's code runs in, as Temporal knows it: the activity's identity, its
// cancellation, and the server's answer whether it still stands. Registered when any activity
// module loads; outside an activity (a script, a test calling the engine) there is none.
import { Context, log } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { provideAttempt, runDigest, type Attempt, type SessionTag, type Standing } from '../engine/attemptStanding.js';
import { errorText } from '../engine/errors.js';

/** PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED */
const CANCEL_REQUESTED = 3;
/** WORKFLOW_EXECUTION_STATUS_RUNNING */
const RUNNING = 1;

function temporalAttempt(): Attempt | undefined {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return undefined;
  }
  const { workflowExecution, activityId, attempt, workflowNamespace } = ctx.info;
  const describe = (run: { workflowId: string; runId: string }) =>
    ctx.client.workflowService.describeWorkflowExecution({ namespace: workflowNamespace, execution: { workflowId: run.workflowId, runId: run.runId } });
  return {
    runId: workflowExecution?.runId ?? '',
    activityId,
    attempt,
    signal: ctx.cancellationSignal,
    async standing(): Promise<Standing> {
      if (!workflowExecution) return { state: 'unknown', why: 'not run by a workflow' };
      try {
        void ctx.client;
      } catch (err) {
        return { state: 'unknown', why: errorText(err) };
      }
      try {
        const described = await describe(workflowExecution);
        if (described.workflowExecutionInfo?.status !== RUNNING) return { state: 'gone', why: `workflow ${workflowExecution.workflowId} (run ${workflowExecution.runId}) has closed`, workflowClosed: true };
        const pending = described.pendingActivities?.find((a) => a.activityId === activityId);
        if (!pending) return { state: 'gone', why: `activity ${activityId} is no longer pending`, workflowClosed: false };
        if (pending.attempt !== attempt) return { state: 'gone', why: `attempt ${pending.attempt} of activity ${activityId} has taken this attempt's (${attempt}) place`, workflowClosed: false };
        if (pending.state === CANCEL_REQUESTED) return { state: 'cancelled' };
        return { state: 'current' };
      } catch (err) {
        // NotFound: the run is gone, its history deleted (retention, `temporal workflow delete`):
        // closed, for sure. Anything else (the server down, a timeout) proves nothing.
        if (isNotFound(err)) return { state: 'gone', why: `workflow ${workflowExecution.workflowId} (run ${workflowExecution.runId}) no longer exists`, workflowClosed: true };
        return { state: 'unknown', why: errorText(err) };
      }
    },
    async isStale(tag: SessionTag): Promise<boolean> {
      if (!workflowExecution || tag.runDigest !== runDigest(workflowExecution.runId)) return false;
      try {
        const described = await describe(workflowExecution);
        if (described.workflowExecutionInfo?.status !== RUNNING) return true;
        const pending = described.pendingActivities?.find((a) => a.activityId === tag.activityId);
        return !pending || pending.attempt !== tag.attempt;
      } catch (err) {
        return isNotFound(err);
      }
    },
    cancelled: () => new CancelledFailure('cancel requested'),
    waiting: (what) => ctx.heartbeat({ ...what, waiting: true }),
    warn: (message, details) => log.warn(message, details),
  };
}

/** gRPC status 5 (NOT_FOUND), however the connection reports it. */
function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; name?: string; cause?: unknown } | undefined;
  if (e?.code === 5 || e?.name === 'NotFoundError') return true;
  return e?.cause !== undefined && e.cause !== err && isNotFound(e.cause);
}

provideAttempt(temporalAttempt);
