// Turns an activity's failure into the workflow's own: same type and message, so the operator
// reads "UnknownDatabase: database "x" does not exist" instead of "Activity task failed".
import { ActivityFailure, ApplicationFailure, isCancellation } from '@temporalio/workflow';

export function surfaceFailure(err: unknown): unknown {
  if (isCancellation(err)) return err;
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
