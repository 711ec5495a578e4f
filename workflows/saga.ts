// The two moves every workflow here makes around its steps: reject bad input with the phase
// set to failed (so the progress query says why), and, on failure, undo what was done, in
// reverse order, where cancellation cannot stop the undoing.
import { CancellationScope, log } from '@temporalio/workflow';
import { describeFailure, surfaceFailure } from './failures.js';

export type Compensation = () => Promise<unknown>;

/** Runs the checks; a failure marks the progress failed, then propagates. */
export function validateWith(progress: { phase: string; failure?: string }, check: () => void): void {
  try {
    check();
  } catch (err) {
    progress.phase = 'failed';
    progress.failure = describeFailure(err);
    throw err;
  }
}

/**
 * Runs every compensation (pushed with unshift, so newest first) in a non-cancellable scope.
 * A compensation that fails is logged and the rest still run: the original failure is the
 * one the caller rethrows.
 */
export async function compensate(compensations: Compensation[], context: Record<string, unknown>): Promise<void> {
  await CancellationScope.nonCancellable(async () => {
    for (const undo of compensations) {
      try {
        await undo();
      } catch (err) {
        log.error('compensation failed', { ...context, error: describeFailure(err) });
      }
    }
  });
}

/**
 * Runs `steps`; when they fail, the progress says so while the compensations run (newest first,
 * compensate), then the failure is surfaced. What a workflow that undoes its steps does.
 */
export async function withCompensation<R>(progress: { phase: string; failure?: string }, compensations: Compensation[], context: Record<string, unknown>, steps: () => Promise<R>): Promise<R> {
  try {
    return await steps();
  } catch (err) {
    progress.phase = 'cleaning-up';
    progress.failure = describeFailure(err);
    await compensate(compensations, context);
    progress.phase = 'failed';
    throw surfaceFailure(err);
  }
}

/**
 * The end of a run on a scratch database (verification, drill): drop it, then record the
 * report, each attempted whatever happened before and whatever the other does.
 */
export async function dropScratchThenReport(steps: { drop: () => Promise<unknown>; onDropped: () => void; stamp: () => void; report: () => Promise<unknown> }, context: Record<string, unknown>): Promise<void> {
  await CancellationScope.nonCancellable(async () => {
    try {
      await steps.drop();
      steps.onDropped();
    } catch (err) {
      log.error('scratch database not dropped', { ...context, error: describeFailure(err) });
    }
    steps.stamp();
    try {
      await steps.report();
    } catch (err) {
      log.error('report not written', { ...context, error: describeFailure(err) });
    }
  });
}
