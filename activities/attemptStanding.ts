// Is this activity attempt still the one its workflow waits for? An activity hears of a
// cancel, a timeout or its workflow's end only from a heartbeat's answer, and a step that
// finishes between two beats never hears at all. Before an act that makes something last (a
// restored database marked as restored), it asks the server directly: an attempt whose
// workflow has closed, or whose place a newer attempt took, must not leave what it made.
import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { ErrorType } from '../common/types.js';
import { errorText, permanent } from './errors.js';

export type Standing =
  | { state: 'current' }
  /** The workflow asked this activity to stop. */
  | { state: 'cancelled' }
  /** The workflow closed, or the activity is no longer pending with this attempt. */
  | { state: 'gone'; why: string; workflowClosed: boolean }
  /** The server could not be asked (no client here, or it did not answer): decide as before. */
  | { state: 'unknown'; why: string };

/** PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED */
const CANCEL_REQUESTED = 3;

export async function attemptStanding(): Promise<Standing> {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    // Not an activity (a script, a test calling the engine directly): nobody else competes.
    return { state: 'current' };
  }
  const { workflowExecution, activityId, attempt, workflowNamespace } = ctx.info;
  if (ctx.cancellationSignal.aborted) return { state: 'cancelled' };
  if (!workflowExecution) return { state: 'unknown', why: 'not run by a workflow' };
  let client;
  try {
    client = ctx.client;
  } catch (err) {
    return { state: 'unknown', why: errorText(err) };
  }
  try {
    const described = await client.workflowService.describeWorkflowExecution({
      namespace: workflowNamespace,
      execution: { workflowId: workflowExecution.workflowId, runId: workflowExecution.runId },
    });
    // WORKFLOW_EXECUTION_STATUS_RUNNING
    if (described.workflowExecutionInfo?.status !== 1) return { state: 'gone', why: `workflow ${workflowExecution.workflowId} (run ${workflowExecution.runId}) has closed`, workflowClosed: true };
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
}

/**
 * The application_name of this attempt's admin sessions (those that take a database name's
 * lock): a digest of the run (no id in clear), the activity and the attempt. So a newer attempt
 * that finds the lock held can tell a stale attempt of its own run from a stranger. Undefined
 * outside an activity.
 */
export function attemptSessionTag(): string | undefined {
  let info;
  try {
    info = Context.current().info;
  } catch {
    return undefined;
  }
  const runId = info.workflowExecution?.runId;
  // application_name holds 63 bytes: an activity id this long (never one the SDK gives) is not tagged.
  if (!runId || !/^[\w.:]{1,20}$/.test(info.activityId)) return undefined;
  return `${SESSION_TAG_PREFIX}${runDigest(runId)}-${info.activityId}-${info.attempt}`;
}

const SESSION_TAG_PREFIX = 'backupctl-attempt-';
const SESSION_TAG = /^backupctl-attempt-([0-9a-f]{16})-([\w.:]{1,20})-(\d+)$/;

export function runDigest(runId: string): string {
  return createHash('sha256').update(`backupctl-run:${runId}`).digest('hex').slice(0, 16);
}

export interface SessionTag {
  runDigest: string;
  activityId: string;
  attempt: number;
}

export function parseSessionTag(applicationName: string | null | undefined): SessionTag | undefined {
  const match = applicationName ? SESSION_TAG.exec(applicationName) : null;
  return match ? { runDigest: match[1], activityId: match[2], attempt: Number(match[3]) } : undefined;
}

/**
 * Whether a session tagged `tag` belongs to a stale attempt of THIS activity's run: another
 * activity of the run that is no longer pending, or an older attempt of one whose place a newer
 * attempt took, or any attempt once the run has closed. Asked of the server; when it cannot be
 * asked, or the tag is another run's or this very attempt's, the answer is false.
 */
export async function isStaleAttemptOfThisRun(tag: SessionTag): Promise<boolean> {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return false;
  }
  const { workflowExecution, activityId, attempt, workflowNamespace } = ctx.info;
  if (!workflowExecution || tag.runDigest !== runDigest(workflowExecution.runId)) return false;
  if (tag.activityId === activityId && tag.attempt === attempt) return false;
  try {
    const described = await ctx.client.workflowService.describeWorkflowExecution({
      namespace: workflowNamespace,
      execution: { workflowId: workflowExecution.workflowId, runId: workflowExecution.runId },
    });
    if (described.workflowExecutionInfo?.status !== 1) return true;
    const pending = described.pendingActivities?.find((a) => a.activityId === tag.activityId);
    return !pending || pending.attempt !== tag.attempt;
  } catch (err) {
    return isNotFound(err);
  }
}

/** gRPC status 5 (NOT_FOUND), however the connection reports it. */
function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; name?: string; cause?: unknown } | undefined;
  if (e?.code === 5 || e?.name === 'NotFoundError') return true;
  return e?.cause !== undefined && e.cause !== err && isNotFound(e.cause);
}

/**
 * Fails unless this attempt still stands: CancelledFailure when the workflow asked it to stop,
 * AttemptSuperseded when its workflow or its place is gone. An unknown standing passes.
 */
export async function assertAttemptStands(what: string): Promise<void> {
  const standing = await attemptStanding();
  if (standing.state === 'cancelled') throw new CancelledFailure('cancel requested');
  if (standing.state === 'gone') throw staleAttempt(what, standing.why);
}

export function staleAttempt(what: string, why: string) {
  return permanent(ErrorType.AttemptSuperseded, `${what}: ${why}; this stale attempt stopped and left nothing behind`);
}


/**
 * An act that makes something last (a claim, a running server), fenced by this attempt's
 * standing: refused when the attempt no longer stands, and undone when the workflow closed
 * while it ran (the workflow's own cleanup has run by then, or never will).
 */
export async function actWhileStanding<T>(what: string, act: () => Promise<T>, undo: () => Promise<unknown>): Promise<T> {
  await assertAttemptStands(what);
  const result = await act();
  const after = await attemptStanding();
  if (after.state === 'gone' && after.workflowClosed) {
    await undo();
    throw staleAttempt(what, after.why);
  }
  return result;
}
