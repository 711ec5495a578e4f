// The one place where the engine's typed errors become Temporal's failures: an activity that
// throws an EngineError fails with an ApplicationFailure of the same type, retryable or not as
// the error says, its message and details kept. Anything else passes through unchanged (a
// cancellation, a failure Temporal made).
import { ApplicationFailure } from '@temporalio/common';
import { redact } from '../common/redact.js';
import { isEngineError } from '../engine/errors.js';

export function toFailure(err: unknown): unknown {
  if (!isEngineError(err)) return err;
  return ApplicationFailure.create({
    type: err.type,
    message: err.message,
    nonRetryable: !err.retryable,
    details: err.details ? [err.details] : undefined,
    cause: err.cause instanceof Error ? redactedCopy(err.cause) : undefined,
  });
}

/**
 * The cause as it will be stored in the workflow's history: its message and stack redacted as
 * the engine error's own message is (a driver's message may quote a connection string).
 */
function redactedCopy(cause: Error): Error {
  const copy = new Error(redact(cause.message));
  copy.name = cause.name;
  copy.stack = cause.stack === undefined ? undefined : redact(cause.stack);
  return copy;
}

/** The same activities, each turning an EngineError it throws into its ApplicationFailure. */
export function withFailures<T extends object>(activities: T): T {
  const mapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    mapped[name] =
      typeof fn === 'function'
        ? async (...args: unknown[]) => {
            try {
              return await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
            } catch (err) {
              throw toFailure(err);
            }
          }
        : fn;
  }
  return mapped as T;
}
