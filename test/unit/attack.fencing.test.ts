// Attack on the fencing of destructive cleanup (README promises 1 and 3): the compensation's
// discard of a failed run is frozen mid-way (a paused VM, a long GC: `kill -STOP`), Temporal
// times it out and a retry on another worker finishes it and gives the claim back, the
// workflow id is reused (ids are reused: a failed nightly backup is started again under its
// id) and the new run completes its backup, manifest and all. Then the frozen discard wakes.
//
// Real filesystem repository; the freeze is placed at one exact call by FreezableRepository
// (test/fixtures), where a SIGSTOP would have to land by luck: after discardUnfinished has
// checked "no manifest, this run holds the claim", before it lists the attempt folders.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { attemptObjectKey, claimBackup, discardUnfinished } from '../../engine/backupClaim.js';
import { manifestKey, writeManifest } from '../../engine/catalog.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';
import { COMPRESSIONS, type BackupManifest } from '../../common/types.js';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createDatabaseBackupActivities } from '../../activities/databaseBackup.js';
import { validateConfig } from '../../common/config.js';
import { ensureSigningKeyPair } from '../../client/dev/demoKeys.js';
import { text } from 'node:stream/consumers';
import { FreezableRepository } from '../fixtures/freezableRepository.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-attack-fencing-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const ROLES = ['globals', 'dump'] as const;

async function putObject(repository: FilesystemRepository, key: string, bytes: string): Promise<void> {
  await repository.put(key, Readable.from([Buffer.from(bytes)]));
}

test("a failed run's discard, frozen and woken after the id was reused, never removes the completed backup of the newer run", async () => {
  const backupId = 'nightly-2026-11-28';
  const repository = new FilesystemRepository('local', path.join(dir, 'local'));
  const frozenWorker = new FreezableRepository(repository);
  const run1 = randomUUID();
  const run2 = randomUUID();

  // Run 1: claims the id, its dump attempt leaves part of an object, then the run fails.
  await claimBackup([repository], 'database', backupId, { workflowId: backupId, runId: run1 }, new Date());
  await putObject(repository, attemptObjectKey('database', backupId, run1, 1, 'globals', 'zstd'), 'run 1 globals');

  // Its compensation's first attempt freezes after its checks, before it lists.
  const freeze = frozenWorker.freezeAtNext('list');
  const stale = discardUnfinished(frozenWorker, 'database', backupId, run1, [...ROLES], COMPRESSIONS, 8);
  await freeze.frozen;

  // The retry on another worker finishes the discard and gives the claim back.
  await discardUnfinished(repository, 'database', backupId, run1, [...ROLES], COMPRESSIONS, 8);

  // Run 2, same workflow id, completes: claim, objects, manifest.
  await claimBackup([repository], 'database', backupId, { workflowId: backupId, runId: run2 }, new Date());
  const kept = ROLES.map((role) => attemptObjectKey('database', backupId, run2, 1, role, 'zstd'));
  for (const key of kept) await putObject(repository, key, `run 2 ${key}`);
  await writeManifest(repository, { component: 'database', backupId, runId: run2, objects: kept.map((key) => ({ key })) } as never);
  expect(await repository.stat(manifestKey('database', backupId))).toBeDefined();

  // The frozen attempt wakes.
  freeze.wake();
  await stale.catch(() => undefined);

  const missing: string[] = [];
  for (const key of kept) if (!(await repository.stat(key))) missing.push(key);
  expect(missing).toEqual([]);
});

async function manifestRace(backupId: string, reuse: boolean): Promise<{ repository: FilesystemRepository; run1: string; run2: string }> {
  const root = path.join(dir, `manifest-${backupId}`);
  const repository = new FilesystemRepository('local', root);
  const frozenWorker = new FreezableRepository(repository);
  const config = validateConfig(
    {
      host: 'attack',
      database: { url: 'postgres://app@127.0.0.1:5432/app' },
      repositories: { local: { type: 'filesystem', path: root } },
      encryption: { publicKeyFile: path.join(dir, 'none.asc') },
      signing: { privateKeyFile: ensureSigningKeyPair(path.join(dir, 'signing')).privateKeyFile },
    },
    'attack config',
  );
  const activities = (repositories: FilesystemRepository | FreezableRepository) => createDatabaseBackupActivities({ config, repositories: [repositories] });
  const inRun = (runId: string) => new MockActivityEnvironment({ attempt: 1, workflowExecution: { workflowId: backupId, runId } } as Partial<Info>);
  const manifestOf = (runId: string): BackupManifest =>
    ({
      formatVersion: 1,
      backupId,
      component: 'database',
      workflowId: backupId,
      runId,
      startedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      source: { database: 'app', snapshotTakenAt: new Date().toISOString(), systemIdentifier: '7000000000000000001' },
      compression: 'zstd',
      encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
      objects: ROLES.map((role) => ({ role, key: attemptObjectKey('database', backupId, runId, 1, role, 'zstd'), bytes: 1, sha256: '0'.repeat(64), plainBytes: 1 })),
      rowCounts: {},
      readabilityCheck: 'test',
      copies: ROLES.map((role) => ({ repository: 'local', key: attemptObjectKey('database', backupId, runId, 1, role, 'zstd'), bytes: 1, sha256: '0'.repeat(64), verified: true })),
      warnings: [],
    }) as unknown as BackupManifest;
  const run1 = randomUUID();
  const run2 = randomUUID();

  // Run 1 holds the id and has written its objects; its manifest write freezes after its fence
  // check, at the moment it publishes.
  await claimBackup([repository], 'database', backupId, { workflowId: backupId, runId: run1 }, new Date());
  for (const role of ROLES) await putObject(repository, attemptObjectKey('database', backupId, run1, 1, role, 'zstd'), `run 1 ${role}`);
  const freeze = frozenWorker.freezeAtNext('create');
  const stale = inRun(run1).run(activities(frozenWorker).writeBackupManifest, manifestOf(run1));
  await freeze.frozen;

  // The operator cancels run 1: its compensation finds no manifest, removes its objects, gives the id back.
  await inRun(run1).run(activities(repository).discardBackupObjects, { backupId, runId: run1, repositories: ['local'] });

  if (!reuse) {
    freeze.wake();
    await stale.catch(() => undefined);
    return { repository, run1, run2 };
  }
  // Run 2 under the same workflow id completes.
  await inRun(run2).run(async () => claimBackup([repository], 'database', backupId, { workflowId: backupId, runId: run2 }, new Date()));
  for (const role of ROLES) await putObject(repository, attemptObjectKey('database', backupId, run2, 1, role, 'zstd'), `run 2 ${role}`);
  await inRun(run2).run(activities(repository).writeBackupManifest, manifestOf(run2));

  // Run 1's frozen manifest write wakes.
  freeze.wake();
  await stale.catch(() => undefined);

  return { repository, run1, run2 };
}

test("a cancelled run's manifest write, frozen and woken after the id was reused, never replaces the newer run's manifest", async () => {
  const { repository, run2 } = await manifestRace('nightly-2026-11-30', true);
  const published = JSON.parse(await text(await repository.get('database/nightly-2026-11-30/manifest.json'))) as BackupManifest;
  expect(published.runId).toBe(run2);
});

test("a manifest write still in flight when the run is cancelled never publishes a manifest whose objects the compensation removed", async () => {
  // Cancellation does not wait for the activity (TRY_CANCEL): the compensation runs while the write is under way.
  const { repository } = await manifestRace('nightly-2026-12-01', false);
  const key = 'database/nightly-2026-12-01/manifest.json';
  if (await repository.stat(key)) {
    const published = JSON.parse(await text(await repository.get(key))) as BackupManifest;
    const missing: string[] = [];
    for (const object of published.objects) if (!(await repository.stat(object.key))) missing.push(object.key);
    expect(missing).toEqual([]);
  }
});
