// Is this activity attempt still the one its workflow waits for? An activity hears of a
// cancel, a timeout or its workflow's end only from a heartbeat's answer, and a step that
// finishes between two beats never hears at all. Before an act that makes something last (a
// restored database marked as restored), it asks the server directly: an attempt whose
// workflow has closed, or whose place a newer attempt took, must not leave what it made.
//
// This code knows nothing of Temporal: whoever runs it (the activities) provides the attempt
// it runs in through provideAttempt. Outside any attempt (a script, a test calling it
// directly) nobody else competes: every attempt stands.
import { createHash } from 'node:crypto';
import { ErrorType } from '../common/types.js';
import { permanent } from './errors.js';

export type Standing =
  | { state: 'current' }
  /** The workflow asked this activity to stop. */
  | { state: 'cancelled' }
  /** The workflow closed, or the activity is no longer pending with this attempt. */
  | { state: 'gone'; why: string; workflowClosed: boolean }
  /** The server could not be asked (no client here, or it did not answer): decide as before. */
  | { state: 'unknown'; why: string };

/** The attempt the current code runs in, as its runner (the activities) knows it. */
export interface Attempt {
  runId: string;
  activityId: string;
  attempt: number;
  /** Aborted when the attempt is asked to stop. */
  signal: AbortSignal;
  /** Asks the orchestrator whether this attempt still stands. */
  standing(): Promise<Standing>;
  /**
   * Whether a session tagged `tag`, of this attempt's run, belongs to a stale attempt: another
   * activity of the run no longer pending, an older attempt of one, or any once the run closed.
   * False when the orchestrator cannot be asked.
   */
  isStale(tag: SessionTag): Promise<boolean>;
  /** The error that ends work the attempt was asked to stop. */
  cancelled(): Error;
  /**
   * Says the attempt lives while it waits for something that moves no bytes (a lock), with
   * what it waits for: a wait longer than its heartbeat timeout must not look like a dead worker.
   */
  waiting?(what: Record<string, unknown>): void;
  warn(message: string, details: Record<string, unknown>): void;
}

let provider: () => Attempt | undefined = () => undefined;

/** Tells this code how to find the attempt it runs in (the activities call it once). */
export function provideAttempt(find: () => Attempt | undefined): void {
  provider = find;
}

/** The attempt the caller runs in; undefined outside one. */
export function currentAttempt(): Attempt | undefined {
  return provider();
}

export async function attemptStanding(): Promise<Standing> {
  const attempt = currentAttempt();
  // Not an attempt (a script, a test calling the engine directly): nobody else competes.
  if (!attempt) return { state: 'current' };
  if (attempt.signal.aborted) return { state: 'cancelled' };
  return attempt.standing();
}

/**
 * The orchestrator's own answer, even when the attempt was told to stop here: an attempt whose
 * runner aborted it (a local timeout, a worker shutting down, a cancel) may still have acted,
 * and only the server tells whether the run waits for it, was cancelled, or went on without it.
 */
export async function orchestratorStanding(): Promise<Standing> {
  const attempt = currentAttempt();
  if (!attempt) return { state: 'current' };
  return attempt.standing();
}

/**
 * The application_name of this attempt's admin sessions (those that take a database name's
 * lock): a digest of the run (no id in clear), the activity and the attempt. So a newer attempt
 * that finds the lock held can tell a stale attempt of its own run from a stranger. Undefined
 * outside an activity.
 */
export function attemptSessionTag(): string | undefined {
  const attempt = currentAttempt();
  // application_name holds 63 bytes: an activity id this long (never one the SDK gives) is not tagged.
  if (!attempt?.runId || !/^[\w.:]{1,20}$/.test(attempt.activityId)) return undefined;
  return `${SESSION_TAG_PREFIX}${runDigest(attempt.runId)}-${attempt.activityId}-${attempt.attempt}`;
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
  const attempt = currentAttempt();
  if (!attempt || tag.runDigest !== runDigest(attempt.runId)) return false;
  if (tag.activityId === attempt.activityId && tag.attempt === attempt.attempt) return false;
  return attempt.isStale(tag);
}

/**
 * Fails unless this attempt still stands: the runner's cancellation when it was asked to stop,
 * AttemptSuperseded when its workflow or its place is gone. An unknown standing passes.
 */
export async function assertAttemptStands(what: string): Promise<void> {
  const standing = await attemptStanding();
  if (standing.state === 'cancelled') throw currentAttempt()?.cancelled() ?? new Error('cancel requested');
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
