// Attack round 4: the sweep of leftovers, frozen mid-act. The sweep removes an unfinished
// backup of a closed run (its attempt folders, then its claim, so the id is free again). Its
// activity is frozen (SIGSTOP, a paused VM) after it checked "the closed run holds the claim",
// before it lists the folders; Temporal times it out and a retry finishes the sweep and gives
// the id back; the id is reused (a failed nightly backup is started again under its workflow
// id) and the new run completes its backup. Then the frozen sweep wakes, lists, and removes
// every attempt folder it finds: the new run's complete backup, its manifest left naming
// objects that are gone. The discard of a failed run had the same hole and was fenced
// (test/unit/attack.fencing.test.ts); the sweep's act was not.
//
// Real filesystem repository; the freeze is placed at the exact call by FreezableRepository.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { attemptObjectKey, claimBackup } from '../../engine/backupClaim.js';
import { manifestKey, writeManifest } from '../../engine/catalog.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';
import { createSweepActivities } from '../../activities/sweep.js';
import { validateConfig } from '../../common/config.js';
import type { Leftover } from '../../common/sweepTypes.js';
import { FreezableRepository } from '../fixtures/freezableRepository.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-attack4-stalesweep-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const ROLES = ['globals', 'dump'] as const;

test("a sweep attempt frozen mid-act and woken after the id was reused never removes the newer run's complete backup", async () => {
  const backupId = 'nightly-2026-11-27';
  const root = path.join(dir, 'local');
  const repository = new FilesystemRepository('local', root);
  const frozenWorker = new FreezableRepository(repository);
  const config = validateConfig(
    {
      host: 'attack4-stalesweep',
      database: { url: 'postgres://app@127.0.0.1:1/app' },
      repositories: { local: { type: 'filesystem', path: root } },
      encryption: { publicKeyFile: path.join(dir, 'none.asc') },
      signing: { required: false },
    },
    'attack config',
  );
  const closedRun = { workflowId: backupId, runId: randomUUID() };
  const newerRun = randomUUID();

  // The closed run (terminated: no compensation) left its claim and part of its objects.
  await claimBackup([repository], 'database', backupId, closedRun, new Date());
  await repository.put(attemptObjectKey('database', backupId, closedRun.runId, 1, 'globals', 'zstd'), Readable.from([Buffer.from('closed run globals')]));

  const leftover: Leftover = { kind: 'backup', component: 'database', backupId, run: closedRun, claim: 'held', manifest: 'none', folders: [] };
  const decision = { act: 'remove' as const, why: 'an unfinished backup (no manifest anywhere)' };
  const sweepAttempt = (attempt: number) =>
    new MockActivityEnvironment({ attempt, activityId: '3', workflowExecution: { workflowId: 'sweep-leftovers-host', runId: 'c0ffee00-0000-4000-8000-000000000001' } } as Partial<Info>);

  // Sweep attempt 1 freezes after its claim check, as it lists the folders.
  const freeze = frozenWorker.freezeAtNext('list');
  const stale = sweepAttempt(1).run(createSweepActivities({ config, repositories: [frozenWorker] }).sweepLeftover, { leftover, decision });
  await freeze.frozen;

  // Attempt 2, on another worker, sweeps the leftover and gives the id back.
  await sweepAttempt(2).run(createSweepActivities({ config, repositories: [repository] }).sweepLeftover, { leftover, decision });
  expect(await repository.stat(attemptObjectKey('database', backupId, closedRun.runId, 1, 'globals', 'zstd'))).toBeUndefined();

  // The id is reused: a new run claims it and completes its backup, manifest and all.
  await claimBackup([repository], 'database', backupId, { workflowId: backupId, runId: newerRun }, new Date());
  const kept = ROLES.map((role) => attemptObjectKey('database', backupId, newerRun, 1, role, 'zstd'));
  for (const key of kept) await repository.put(key, Readable.from([Buffer.from(`newer run ${key}`)]));
  await writeManifest(repository, { component: 'database', backupId, runId: newerRun, objects: kept.map((key) => ({ key })) } as never);
  expect(await repository.stat(manifestKey('database', backupId))).toBeDefined();

  // The frozen sweep attempt wakes.
  freeze.wake();
  await stale.catch(() => undefined);

  const missing: string[] = [];
  for (const key of kept) if (!(await repository.stat(key))) missing.push(key);
  expect(missing).toEqual([]);
});
