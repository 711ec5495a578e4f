// The engine's typed errors become Temporal's failures in one place (activities/failures.ts):
// the type, whether a retry may help, the message and the details survive; anything else
// passes through untouched.
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { EngineError, permanent, transient } from '../../engine/errors.js';
import { toFailure, withFailures } from '../../activities/failures.js';
import { ErrorType } from '../../common/types.js';

test('a permanent engine error becomes a non-retryable ApplicationFailure of its type, with its details', () => {
  const failure = toFailure(permanent(ErrorType.DiskFull, 'repository nas: writing x: no space left on the device (ENOSPC)', { repository: 'nas' }));
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect(failure).toMatchObject({ type: 'DiskFull', nonRetryable: true, message: 'repository nas: writing x: no space left on the device (ENOSPC)', details: [{ repository: 'nas' }] });
});

test('a transient one stays retryable and keeps its cause', () => {
  const cause = new Error('ECONNRESET');
  const failure = toFailure(transient(ErrorType.StorageUnreachable, 'repository s3: reading y', cause)) as ApplicationFailure;
  expect(failure).toMatchObject({ type: 'StorageUnreachable', nonRetryable: false });
  expect(failure.cause).toMatchObject({ name: 'Error', message: 'ECONNRESET' });
});

// Found in review (issue 10): the engine error's message was redacted, its cause (stored in the
// workflow's history with the failure) was not.
test("a cause's message and stack are redacted too", () => {
  const cause = new TypeError('connect to postgresql://app:s3cret@db:5432/app timed out');
  const failure = toFailure(transient(ErrorType.DatabaseUnreachable, 'the database does not answer', cause)) as ApplicationFailure;
  expect(failure.cause).toMatchObject({ name: 'TypeError', message: expect.stringContaining('timed out') });
  expect(`${failure.cause?.message} ${failure.cause?.stack}`).not.toContain('s3cret');
});

test('secrets are redacted when the engine error is made, so the failure never carries them', () => {
  const failure = toFailure(permanent(ErrorType.AuthenticationFailed, 'connecting to postgresql://app:s3cret@db/app failed')) as ApplicationFailure;
  expect(failure.message).not.toContain('s3cret');
});

test('other errors pass through: a cancellation stays a cancellation', () => {
  const cancelled = new CancelledFailure('cancelled');
  expect(toFailure(cancelled)).toBe(cancelled);
  const plain = new Error('boom');
  expect(toFailure(plain)).toBe(plain);
});

test('withFailures keeps every activity name and result, and maps what each throws', async () => {
  const activities = withFailures({
    async works(n: number) {
      return n + 1;
    },
    async refuses() {
      throw new EngineError(ErrorType.InvalidInput, 'backupId "x\'; DROP" is not a backup id', { retryable: false });
    },
  });
  expect(Object.keys(activities)).toEqual(['works', 'refuses']);
  await expect(activities.works(1)).resolves.toBe(2);
  const failure = await activities.refuses().catch((err: unknown) => err);
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect(failure).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
});
