// Attacks on the chaos runner's judgement (chaos/judgement.ts), each with a planted outcome:
// a check that accepts too much cannot fail, and a pass it gives then proves nothing.
//  - A run that ended cancelled, terminated or timed out was no violation: the runner judged
//    only "failed" and "hung". The harness cancels no run, so such an end is a bug (a shipWal
//    that closed on its own ended its scenario "terminated", and its catch-up check was skipped).
//  - Under a revoked S3 key every scenario could end NoUsableCopy, though only the drill reads
//    the S3 copy alone: a restore that ignored its local and NAS copies passed.
//  - A global problem reported once was never reported again, even after it went away and came
//    back in a later run (the application's services left stopped by one restore, started by
//    the next restore and left stopped again): the second run's violation was dropped.
import { newGlobalProblems, outcomeViolations, permanentFaultErrors } from '../../chaos/judgement.js';

test('a run that ended cancelled, terminated or timed out, which nobody asked for, is a violation', () => {
  for (const status of ['cancelled', 'terminated', 'timed-out'] as const) {
    expect(outcomeViolations('WAL shipping', 'sigkill', { status }, 240_000)).toEqual([`it ended ${status}, which nobody asked for`]);
  }
  expect(outcomeViolations('restore --replace', 'freeze', { status: 'cancelled', message: 'Workflow cancelled' }, 240_000)).toEqual(['it ended cancelled, which nobody asked for: Workflow cancelled']);
});

test('the judgement of completed, hung and failed runs is as before', () => {
  expect(outcomeViolations('database backup', 'sigkill', { status: 'completed' }, 240_000)).toEqual([]);
  expect(outcomeViolations('database backup', 'sigkill', { status: 'hung' }, 240_000)).toEqual(['the run did not close within 240 s of the fault']);
  expect(outcomeViolations('base backup', 'repo-full', { status: 'failed', errorType: 'DiskFull', message: 'no space' }, 240_000)).toEqual([]);
  expect(outcomeViolations('base backup', 'sigkill', { status: 'failed', errorType: 'DiskFull', message: 'no space' }, 240_000)).toEqual(['failed under a fault it must survive: DiskFull: no space']);
  expect(outcomeViolations('base backup', 'repo-full', { status: 'failed', message: 'Activity task timed out' }, 240_000)).toEqual([
    'failed under a fault it must survive: untyped: Activity task timed out',
    'failed without an error type',
  ]);
});

test('under a revoked S3 key only the drill, which reads the S3 copy alone, may find no usable copy', () => {
  const noCopy = { status: 'failed', errorType: 'NoUsableCopy', message: 's3: StorageAccessDenied' } as const;
  expect(outcomeViolations('recovery drill', 's3-revoke', noCopy, 240_000)).toEqual([]);
  for (const scenario of ['restore --replace', 'verification', 'point-in-time recovery']) {
    expect(outcomeViolations(scenario, 's3-revoke', noCopy, 240_000)).toEqual(['failed under a fault it must survive: NoUsableCopy: s3: StorageAccessDenied']);
  }
  expect(permanentFaultErrors('database backup', 's3-revoke')).toEqual(['StorageAccessDenied']);
  expect(permanentFaultErrors('recovery drill', 's3-revoke')).toEqual(['StorageAccessDenied', 'NoUsableCopy']);
  expect(permanentFaultErrors('recovery drill', 'sigkill')).toEqual([]);
});

test('a global problem that stays is reported once; one that went away and came back is reported again', () => {
  const standing = new Set<string>();
  const stopped = "the application's services are stopped";
  const leftover = 'database app_restore_20261128_190000 (made by a run) left on the server';
  // Run 3: a restore left the services stopped and its database behind.
  expect(newGlobalProblems([stopped, leftover], standing)).toEqual([stopped, leftover]);
  // Run 4: both still there: run 3's, not run 4's.
  expect(newGlobalProblems([stopped, leftover], standing)).toEqual([]);
  // Run 5: another restore started the services again (and they stayed up).
  expect(newGlobalProblems([leftover], standing)).toEqual([]);
  // Run 6: a third restore left them stopped again: run 6's violation.
  expect(newGlobalProblems([stopped, leftover], standing)).toEqual([stopped]);
});
