// The input checks every workflow shares: the refusal's form, an object, a task queue name, a
// flag. Deterministic: no I/O. Each workflow's own checks sit beside it (restoreInput.ts for
// the restore, verification and drill workflows).
import { ApplicationFailure } from '@temporalio/workflow';
import { ErrorType } from '../common/types.js';

/** The refusal of a bad input: permanent InvalidInput, naming the field, the value and what is allowed. */
export function invalidInput(field: string, value: unknown, allowed: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`input.${field} is ${JSON.stringify(value)}; ${allowed}`, ErrorType.InvalidInput);
}

export function checkObject(input: unknown): void {
  if (!input || typeof input !== 'object') throw invalidInput('', input, 'expected an object');
}

export function checkTaskQueue(value: unknown): void {
  if (typeof value !== 'string' || !/^[A-Za-z0-9@._-]+$/.test(value)) {
    throw invalidInput('hostTaskQueue', value, 'expected a task queue name such as "backup@db-1"');
  }
}

/** Only passed on to the activities that read manifests: no command depends on it. */
export function checkAllowUnsigned(value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') throw invalidInput('allowUnsigned', value, 'expected true or false');
}
