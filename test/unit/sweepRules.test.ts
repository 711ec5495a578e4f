// The sweep's decisions, one rule at a time: what a closed run made goes, what an open or
// unknown run made stays, and a result (a completed restore's database, a completed or
// switched-to recovery) is never taken for a leftover.
import { sweepInput } from '../../client/commands/sweep.js';
import { InputRefused } from '../../client/workflowRun.js';
import type { Config } from '../../common/config.js';
import { decide, type SweepRuleOptions } from '../../workflows/sweepRules.js';
import { validateInput } from '../../workflows/sweepLeftovers.js';
import type { Leftover, RunStanding } from '../../common/sweepTypes.js';

const run = { workflowId: 'wf', runId: '01a2-run' };
const options: SweepRuleOptions = { removeRecoveryFolders: false, uploadAgeHours: 24 };
const closed = (status: 'COMPLETED' | 'FAILED' | 'TERMINATED' | 'CANCELED' | 'TIMED_OUT', type = 'restoreDatabase', cutoverAttempted?: boolean): RunStanding => ({
  state: 'closed',
  status,
  type,
  ...(cutoverAttempted === undefined ? {} : { cutoverAttempted }),
});
const open: RunStanding = { state: 'open' };
const gone: RunStanding = { state: 'gone' };
const unknown: RunStanding = { state: 'unknown', why: 'connection refused' };

const db = (state: 'restoring' | 'restored', scratch = false): Leftover => ({ kind: 'database', name: 'd', run, attempt: 1, state, scratch });
const backup = (manifest: 'published' | 'none' | 'damaged', claim: 'held' | 'damaged' | 'none' = 'held'): Leftover => ({
  kind: 'backup',
  component: 'database',
  backupId: 'b',
  run: claim === 'held' ? run : null,
  claim,
  manifest,
  folders: ['local:database/b/r0123456789ab-a1/'],
});
const recovery = (running: boolean): Leftover => ({ kind: 'recovery', folder: '/w/backupctl-pitr-x', dataDir: '/w/backupctl-pitr-x/data', run, running });

test.each([
  ['restoring, run terminated', db('restoring'), closed('TERMINATED'), 'drop'],
  ['restored, restore terminated', db('restored'), closed('TERMINATED'), 'drop'],
  ['restored, restore failed (its compensation did not drop it)', db('restored'), closed('FAILED'), 'drop'],
  ['restored, restore completed: its result', db('restored'), closed('COMPLETED'), 'keep'],
  ['restored scratch of a completed verification', db('restored', true), closed('COMPLETED', 'verifyBackup'), 'drop'],
  ['restored by a completed verification, not its scratch name', db('restored'), closed('COMPLETED', 'verifyBackup'), 'drop'],
  ['restoring, run history gone', db('restoring'), gone, 'drop'],
  ['restored scratch, run history gone', db('restored', true), gone, 'drop'],
  ['restored, run history gone: maybe a result', db('restored'), gone, 'keep'],
  ['restoring, run open', db('restoring'), open, 'keep'],
  ['restoring, Temporal unknown', db('restoring'), unknown, 'keep'],
  ['restoring, never asked', db('restoring'), undefined, 'keep'],
  ['unfinished backup of a terminated run', backup('none'), closed('TERMINATED', 'backupDatabase'), 'remove'],
  ['strays beside a complete backup', backup('published'), closed('COMPLETED', 'backupDatabase'), 'remove'],
  ['a manifest copy unreadable', backup('damaged'), closed('TERMINATED', 'backupDatabase'), 'keep'],
  ['no claim', backup('none', 'none'), undefined, 'keep'],
  ['a damaged claim', backup('none', 'damaged'), undefined, 'keep'],
  ['unfinished backup of an open run', backup('none'), open, 'keep'],
  ['unfinished backup, Temporal unknown', backup('none'), unknown, 'keep'],
  ['recovery server of a terminated run', recovery(true), closed('TERMINATED', 'pointInTimeRecovery', false), 'stop'],
  ['stopped recovery of a failed run, no flag', recovery(false), closed('FAILED', 'pointInTimeRecovery', false), 'keep'],
  ['recovery of a completed run: its result', recovery(true), closed('COMPLETED', 'pointInTimeRecovery', false), 'keep'],
  ['recovery the application may have been switched to', recovery(true), closed('TERMINATED', 'pointInTimeRecovery', true), 'keep'],
  ['recovery, run history gone', recovery(true), gone, 'keep'],
  ['recovery, run open', recovery(true), open, 'keep'],
] as const)('%s: %s', (_name, leftover, standing, act) => {
  const decision = decide(leftover, standing, options);
  expect(decision.act).toBe(act);
  expect(decision.why.length).toBeGreaterThan(10);
});

test('a stopped recovery folder goes only when asked, and a running one is stopped first', () => {
  expect(decide(recovery(false), closed('FAILED', 'pointInTimeRecovery', false), { ...options, removeRecoveryFolders: true })).toMatchObject({ act: 'remove', removeFolder: true });
  expect(decide(recovery(true), closed('TERMINATED', 'pointInTimeRecovery', false), { ...options, removeRecoveryFolders: true })).toMatchObject({ act: 'stop', removeFolder: true });
  expect(decide(recovery(true), closed('TERMINATED', 'pointInTimeRecovery', false), options)).toMatchObject({ act: 'stop', removeFolder: false });
});

test('an unfinished upload is aborted only past the age bound, and one of unknown age never', () => {
  const upload = (ageHours: number | null): Leftover => ({ kind: 'upload', repository: 's3', key: 'k', uploadId: 'u', initiated: null, ageHours });
  expect(decide(upload(25), undefined, options).act).toBe('abort');
  expect(decide(upload(23.9), undefined, options).act).toBe('keep');
  expect(decide(upload(null), undefined, options).act).toBe('keep');
  expect(decide(upload(0.01), undefined, { ...options, uploadAgeHours: 0 }).act).toBe('abort');
});

test.each([
  [{ hostTaskQueue: 'backup@db-1', dryRun: 'yes' }, 'input.dryRun is "yes"'],
  [{ hostTaskQueue: 'backup@db 1' }, 'input.hostTaskQueue'],
  [{ hostTaskQueue: 'backup@db-1', uploadAgeHours: -1 }, 'input.uploadAgeHours is -1'],
  [{ hostTaskQueue: 'backup@db-1', removeRecoveryFolders: 1 }, 'input.removeRecoveryFolders is 1'],
])('bad input %j is refused naming the field', (input, message) => {
  expect(() => validateInput(input as never)).toThrow(expect.objectContaining({ type: 'InvalidInput', message: expect.stringContaining(message) }));
});

test('the command refuses a bad --host before anything starts, by the same check', () => {
  const config = { host: 'db-1' } as Config;
  expect(sweepInput(config, {})).toEqual({ hostTaskQueue: 'backup@db-1', dryRun: false, removeRecoveryFolders: false });
  expect(() => sweepInput(config, { host: 'db 1' })).toThrow(InputRefused);
});
