// Cleanup of one repository never depends on another's: a read-only NAS must not keep a
// failed run's discard from the local and S3 repositories (also found by the chaos suite).
//
// A manifest is published in every repository or in none (found by the chaos suite: a NAS that
// filled up between the objects and the manifest left the manifest in the local repository
// while the run reported DiskFull, so a backup its run called failed was there to restore, and
// the discard, seeing a manifest, kept every partial copy). Real filesystem repositories; the
// full one a tiny tmpfs, filled up.
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { Readable } from 'node:stream';
import { attemptObjectKey, claimBackup, discardUnfinished, inEachRepository, publishManifest } from '../engine/backupClaim.js';
import { COMPRESSIONS } from '../common/types.js';
import { manifestKey } from '../engine/catalog.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'manifest-publish-'));
const fullRoot = path.join(dir, 'nas');

beforeAll(async () => {
  mkdirSync(fullRoot);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'manifest-publish', fullRoot]);
});

afterAll(async () => {
  await execa('umount', ['-l', fullRoot]).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

test('a repository that is full at the manifest: no repository keeps one', async () => {
  const local = new FilesystemRepository('local', path.join(dir, 'local'));
  const nas = new FilesystemRepository('nas', fullRoot);
  const runId = randomUUID();
  const backupId = 'publish-all-or-none';
  await claimBackup([local, nas], 'database', backupId, { workflowId: backupId, runId }, new Date());
  // Full, now that the claim (and the objects, in a real run) are there.
  try {
    writeFileSync(path.join(fullRoot, 'filler'), Buffer.alloc(2 * 1024 * 1024));
  } catch {
    // ENOSPC: full, as wanted
  }
  const manifest = { formatVersion: 1, component: 'database', backupId, runId, workflowId: backupId, objects: [] } as any;
  // The failure says what happened (the disk is full), not what the take-back then missed.
  await expect(publishManifest([local, nas], manifest)).rejects.toMatchObject({ type: 'DiskFull' });
  expect({ local: await local.stat(manifestKey('database', backupId)), nas: await nas.stat(manifestKey('database', backupId)) }).toEqual({ local: undefined, nas: undefined });
});

test("a read-only repository does not keep a failed run's discard from the others", async () => {
  const roRoot = path.join(dir, 'ro');
  mkdirSync(roRoot);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'discard-ro', roRoot]);
  try {
    const readOnly = new FilesystemRepository('nas', roRoot);
    const local = new FilesystemRepository('local', path.join(dir, 'local2'));
    const runId = randomUUID();
    const backupId = 'discard-each';
    await claimBackup([readOnly, local], 'database', backupId, { workflowId: backupId, runId }, new Date());
    for (const repository of [readOnly, local]) {
      await repository.put(attemptObjectKey('database', backupId, runId, 1, 'dump', 'zstd'), Readable.from([Buffer.from('partial dump')]));
    }
    await execa('mount', ['-o', 'remount,ro', roRoot]);
    const discard = inEachRepository([readOnly, local], (repository) => discardUnfinished(repository, 'database', backupId, runId, ['globals', 'dump'], COMPRESSIONS, 8));
    await expect(discard).rejects.toThrow();
    expect((await local.list(`database/${backupId}/`)).map((o) => o.key)).toEqual([]);
  } finally {
    await execa('umount', ['-l', roRoot]).catch(() => undefined);
  }
});

test("a failed publish takes back only what it wrote: a manifest already there (a newer attempt's) stays", async () => {
  const local = new FilesystemRepository('local', path.join(dir, 'local3'));
  const nas = new FilesystemRepository('nas', fullRoot);
  const runId = randomUUID();
  const backupId = 'publish-not-theirs';
  rmSync(path.join(fullRoot, 'filler'), { force: true });
  await claimBackup([local, nas], 'database', backupId, { workflowId: backupId, runId }, new Date());
  const manifest = { formatVersion: 1, component: 'database', backupId, runId, workflowId: backupId, objects: [] } as any;
  // The newer attempt of the run published in local; then the NAS filled before this (stale) call.
  await publishManifest([local], manifest);
  try {
    writeFileSync(path.join(fullRoot, 'filler'), Buffer.alloc(2 * 1024 * 1024));
  } catch {
    // ENOSPC: full, as wanted
  }
  await expect(publishManifest([local, nas], manifest)).rejects.toMatchObject({ type: 'DiskFull' });
  expect(await local.stat(manifestKey('database', backupId))).toBeDefined();
});
