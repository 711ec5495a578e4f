// What a chaos scenario is: something started on the stack that closes on its own (a
// workflow, or a workflow and what the harness waits for around it), and a check of what must
// hold after it, read from outside backupctl.
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure, TerminatedFailure, TimeoutFailure } from '@temporalio/common';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { resultThroughOutages } from '../client/workflowRun.js';
import { HOST, type ChaosStack } from './stack.js';

export interface Outcome {
  status: 'completed' | 'failed' | 'cancelled' | 'terminated' | 'timed-out' | 'hung';
  /** The failure's type (ApplicationFailure type), when it failed. */
  errorType?: string;
  message?: string;
  result?: any;
}

export interface RunContext {
  workflowId: string;
  /** Repositories the fault left unwritable (a full or read-only NAS, a revoked S3 key). */
  unwritable: string[];
  /** Repositories the fault left unreadable too (a revoked S3 key). */
  unreadable: string[];
  liveOidBefore: number | undefined;
  /** Draws from the run's seeded generator. */
  draw(from: number, to: number): number;
}

/** A started run: its close, and how to end it when it does not close within the bound. */
export interface ScenarioRun {
  outcome: Promise<Outcome>;
  /** Ends the run without any cleanup of its own (Temporal's terminate). */
  terminate(): Promise<void>;
}

export interface Scenario {
  name: string;
  /** Typical run time on this stack without faults (measured by the runner's warm-up). */
  typicalMs: number;
  /**
   * Whatever the run needs beforehand (rows to recover to, a base backup) is done before this
   * resolves: the fault's moment is drawn from when it has.
   */
  start(stack: ChaosStack, workflowId: string): Promise<ScenarioRun>;
  check(stack: ChaosStack, outcome: Outcome, run: RunContext): Promise<string[]>;
}

export const queue = hostTaskQueue(HOST);

export function startWorkflow(client: Client, workflow: string, workflowId: string, input: Record<string, unknown>): Promise<WorkflowHandle> {
  return client.workflow.start(workflow, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: queue, ...input }] });
}

/** A run that is one workflow: it closes when the workflow does. */
export function workflowRun(handle: WorkflowHandle): ScenarioRun {
  return { outcome: settle(handle), terminate: () => handle.terminate('chaos: no close within the bound').then(() => undefined) };
}

/** How the workflow closed, waited for through a Temporal outage (a restart longer than the client's own retries is no failure of the run). */
export async function settle(handle: WorkflowHandle): Promise<Outcome> {
  try {
    return { status: 'completed', result: await resultThroughOutages(handle) };
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) return { status: 'failed', message: (err as Error).message };
    const cause = err.cause;
    if (cause instanceof CancelledFailure) return { status: 'cancelled' };
    if (cause instanceof TerminatedFailure) return { status: 'terminated' };
    if (cause instanceof TimeoutFailure) return { status: 'timed-out' };
    return { status: 'failed', errorType: cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined, message: cause?.message ?? err.message };
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * `promise`, or `fallback` once `ms` have passed first. The timer is cleared when the promise
 * settles: a run's four-minute hang bound must not keep the process (or jest) alive after it.
 */
export async function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<T>((r) => (timer = setTimeout(() => r(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls until `check` holds; false when `ms` passed first. */
export async function until(check: () => Promise<boolean>, ms: number, every = 250): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await sleep(every);
  }
}
