// Turns an activity's failure into the workflow's own: same type and message, so the operator
// reads "UnknownDatabase: database "x" does not exist" instead of "Activity task failed".
import { ActivityFailure, ApplicationFailure, CancellationScope, CancelledFailure, isCancellation } from '@temporalio/workflow';

export function surfaceFailure(err: unknown): unknown {
  if (isCancellation(err)) return err;
  // Cancelled, and an activity then ended otherwise (it timed out while the workflow waited
  // for it to stop): the run still ends as what it is, cancelled, with the activity's end said.
  if (CancellationScope.current().consideredCancelled) return new CancelledFailure(`cancelled; ${describeFailure(err)}`, [], err instanceof Error ? err : undefined);
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
    return ApplicationFailure.create({
      type: err.cause.type ?? 'ActivityFailed',
      message: err.cause.message,
      nonRetryable: true,
      details: err.cause.details as unknown[] | undefined,
      cause: err,
    });
  }
  return err;
}

export function describeFailure(err: unknown): string {
  if (err instanceof ApplicationFailure) return `${err.type ?? 'Error'}: ${err.message}`;
  if (err instanceof ActivityFailure && err.cause) return describeFailure(err.cause);
  return err instanceof Error ? err.message : String(err);
}
