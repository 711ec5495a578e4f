// Attack round 4: the sweep of leftovers through a symbolic link planted in a filesystem
// repository (a NAS share). Whoever can write to the share (docs/SECURITY.md: "Can write to a
// repository") may plant a claim naming any closed run (run ids are in every claim and
// manifest) and, as that run's attempt folder, a symbolic link to a folder elsewhere on the
// host that mounts the share: the local repository, which the attacker cannot reach. The sweep
// then removes the closed run's attempt keys (the computed ones: dump.pgcustom.zst.gpg...) and
// the unfinished writes of each, and a remove through the link deletes the files it points
// at: a complete backup in another repository. The same holds for a backup run's own sweep
// of its other attempts' folders (sweepAttempts), and for puts through a planted link.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { Readable } from 'node:stream';
import { attemptObjectKey, claimKey } from '../engine/backupClaim.js';
import { createSweepActivities } from '../activities/sweep.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { validateConfig, type Config } from '../common/config.js';
import { decide, runKey, runOf, DEFAULT_UPLOAD_AGE_HOURS } from '../workflows/sweepRules.js';
import type { FoundLeftovers, RunRef, RunStanding } from '../common/sweepTypes.js';
import { startTemporal } from './fixtures/temporal.js';
import { startRun } from './fixtures/runs.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'attack4-symlink-'));
let temporal: TestWorkflowEnvironment;
let config: Config;

beforeAll(async () => {
  temporal = await startTemporal();
  config = validateConfig(
    {
      host: 'attack4-symlink',
      temporal: { address: temporal.address, namespace: 'default' },
      // No server listens there: the sweep reports the databases as not examined, and goes on.
      database: { url: 'postgresql://nobody@127.0.0.1:1/app' },
      repositories: { nas: { type: 'filesystem', path: path.join(dir, 'nas') }, local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: path.join(dir, 'unused.asc') },
      signing: { required: false },
      restore: { workDir: path.join(dir, 'work') },
      logLevel: 'warn',
    },
    'test config',
  );
  mkdirSync(path.join(dir, 'work'), { recursive: true });
}, 120_000);

afterAll(async () => {
  await temporal?.teardown();
  rmSync(dir, { recursive: true, force: true });
});

/** A run that has closed: started on a queue nobody serves, then terminated. */
async function closedRun(workflowId: string): Promise<{ workflowId: string; runId: string }> {
  return { workflowId, runId: await startRun(temporal.client, 'backupDatabase', workflowId, 'closed') };
}

test('a symbolic link planted as a closed run\'s attempt folder in one repository never makes the sweep delete what it points at', async () => {
  const nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
  const local = new FilesystemRepository('local', path.join(dir, 'local'));

  // The victim: a complete backup's dump in the local repository, which the attacker cannot reach.
  const victim = attemptObjectKey('database', 'backup-database-2026-01-01', '1b2c3d4e-0000-4000-8000-00000000beef', 1, 'dump', 'zstd');
  await local.put(victim, Readable.from([Buffer.from('the only local copy of a complete backup')]));
  const victimFile = path.join(dir, 'local', ...victim.split('/'));
  expect(existsSync(victimFile)).toBe(true);

  // The attacker (write access to the NAS share only) plants a claim naming a closed run, and
  // that run's first attempt folder as a link to the victim's folder.
  const run = await closedRun('backup-database-2025-12-31');
  const planted = 'backup-database-2025-12-31';
  mkdirSync(path.join(dir, 'nas', 'database', planted), { recursive: true });
  writeFileSync(
    path.join(dir, 'nas', ...claimKey('database', planted).split('/')),
    JSON.stringify({ formatVersion: 1, component: 'database', backupId: planted, workflowId: run.workflowId, runId: run.runId, claimedAt: '2025-12-31T00:00:00.000Z' }),
  );
  const attemptFolder = path.dirname(path.join(dir, 'nas', ...attemptObjectKey('database', planted, run.runId, 1, 'dump', 'zstd').split('/')));
  symlinkSync(path.dirname(victimFile), attemptFolder);

  // The sweep, step by step as workflows/sweepLeftovers.ts runs it, on this host's activities.
  const activities = createSweepActivities({ config, repositories: [nas, local] });
  const env = new MockActivityEnvironment(
    { attempt: 1, activityId: '1', workflowNamespace: 'default', workflowExecution: { workflowId: 'sweep-leftovers-attack4', runId: 'f0f0f0f0-0000-4000-8000-000000000001' } } as Partial<Info>,
    { client: temporal.client },
  );
  const found: FoundLeftovers = await env.run(activities.findLeftovers, { uploadAgeHours: DEFAULT_UPLOAD_AGE_HOURS });
  const runs = found.leftovers.map(runOf).filter((r): r is RunRef => r !== undefined);
  const standings = new Map<string, RunStanding>();
  const answers: RunStanding[] = await env.run(activities.describeRuns, { runs });
  runs.forEach((r, i) => standings.set(runKey(r), answers[i]));
  for (const leftover of found.leftovers) {
    const r = runOf(leftover);
    const decision = decide(leftover, r && standings.get(runKey(r)), { removeRecoveryFolders: false, uploadAgeHours: DEFAULT_UPLOAD_AGE_HOURS });
    if (decision.act === 'keep') continue;
    await env.run(activities.sweepLeftover, { leftover, decision }).catch(() => undefined);
  }

  // Whatever the sweep did with the planted folder, the local repository's backup is whole.
  expect(existsSync(victimFile)).toBe(true);
  expect(readFileSync(victimFile, 'utf8')).toBe('the only local copy of a complete backup');
}, 120_000);

test('a filesystem repository never removes, writes or reads through a symbolic link below its root', async () => {
  const nas = new FilesystemRepository('nas', path.join(dir, 'nas2'));
  const outside = path.join(dir, 'outside');
  mkdirSync(outside, { recursive: true });
  writeFileSync(path.join(outside, 'dump.pgcustom.zst.gpg'), 'not the repository\'s');
  mkdirSync(path.join(dir, 'nas2', 'database', 'b1'), { recursive: true });
  symlinkSync(outside, path.join(dir, 'nas2', 'database', 'b1', 'r0123456789ab-a1'));
  const key = 'database/b1/r0123456789ab-a1/dump.pgcustom.zst.gpg';

  await nas.remove(key).catch(() => undefined);
  expect(readFileSync(path.join(outside, 'dump.pgcustom.zst.gpg'), 'utf8')).toBe('not the repository\'s');

  await nas.put('database/b1/r0123456789ab-a1/globals.sql.zst.gpg', Readable.from([Buffer.from('x')])).catch(() => undefined);
  expect(existsSync(path.join(outside, 'globals.sql.zst.gpg'))).toBe(false);

  await nas.create('database/b1/r0123456789ab-a1/claim.json', Buffer.from('{}')).catch(() => undefined);
  expect(existsSync(path.join(outside, 'claim.json'))).toBe(false);

  await expect(nas.stat(key)).rejects.toThrow(/symbolic link/);
  await expect(nas.get(key)).rejects.toThrow(/symbolic link/);
});
