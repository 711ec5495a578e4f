// Where things live in a repository (engine/catalog.ts, engine/backupClaim.ts,
// engine/walArchive.ts): the keys of a backup's manifest, objects, claim, attempt folders and
// reports, and which keys lie in an attempt's folder. The catalog and the claims must agree:
// what an attempt writes is what a manifest may list.
import { attemptObjectKey, attemptPrefix, claimKey, isAttemptKey } from '../../engine/backupClaim.js';
import { backupPrefix, drillKey, manifestKey, objectKey, readManifest, verificationKey } from '../../engine/catalog.js';
import { walEntryKey } from '../../engine/walArchive.js';
import { ErrorType } from '../../common/types.js';
import { MemoryRepository } from '../fixtures/memoryRepository.js';

// Temporal run ids are UUIDs; an attempt folder is named by the run's first 12 hex digits.
const RUN = '0193E5B2-7C4D-7A10-9F3E-123456789ABC';
const TOKEN = '0193e5b27c4d';

test("a backup's manifest and objects sit in its own folder, named by component and id", () => {
  expect(backupPrefix('database', 'backup-database-2026-11-26')).toBe('database/backup-database-2026-11-26/');
  expect(manifestKey('database', 'b1')).toBe('database/b1/manifest.json');
  expect(manifestKey('base', 'b1')).toBe('base/b1/manifest.json');
  expect(objectKey('database', 'b1', 'dump', 'zstd')).toBe('database/b1/dump.pgcustom.zst.gpg');
  expect(objectKey('database', 'b1', 'globals', 'gzip')).toBe('database/b1/globals.sql.gz.gpg');
  expect(objectKey('base', 'b1', 'base', 'zstd')).toBe('base/b1/base.tar.zst.gpg');
  expect(claimKey('database', 'b1')).toBe('database/b1/claim.json');
  expect(verificationKey('b1', '20261126_020000-0a1b2c3d')).toBe('database/b1/verifications/20261126_020000-0a1b2c3d.json');
  expect(drillKey('20261126_020000-0a1b2c3d')).toBe('drills/20261126_020000-0a1b2c3d.json');
  expect(walEntryKey('000000010000000000000002')).toBe('wal/000000010000000000000002.json');
  expect(walEntryKey('00000002.history')).toBe('wal/00000002.history.json');
});

test("each attempt of a run writes in a folder named by the run's token and the attempt number", () => {
  expect(attemptPrefix('database', 'b1', RUN, 1)).toBe(`database/b1/r${TOKEN}-a1/`);
  expect(attemptPrefix('database', 'b1', RUN, 12)).toBe(`database/b1/r${TOKEN}-a12/`);
  expect(attemptObjectKey('database', 'b1', RUN, 2, 'dump', 'zstd')).toBe(`database/b1/r${TOKEN}-a2/dump.pgcustom.zst.gpg`);
  expect(attemptObjectKey('base', 'b1', RUN, 1, 'base', 'gzip')).toBe(`base/b1/r${TOKEN}-a1/base.tar.gz.gpg`);
  // The same run however its id is written; another run, another folder.
  expect(attemptPrefix('database', 'b1', RUN.toLowerCase(), 1)).toBe(attemptPrefix('database', 'b1', RUN, 1));
  expect(attemptPrefix('database', 'b1', '0193e5b2-7c4e-7a10-9f3e-123456789abc', 1)).not.toBe(attemptPrefix('database', 'b1', RUN, 1));
});

test('a run id without 12 hex digits is refused, not made into a folder name', () => {
  for (const runId of ['', 'run-1', '01a2-run', 'not a run id at all', '0123456789a']) {
    expect(() => attemptPrefix('database', 'b1', runId, 1)).toThrow(expect.objectContaining({ type: ErrorType.InvalidInput, nonRetryable: true, message: expect.stringContaining('is not a Temporal run id') }));
  }
  expect(attemptPrefix('database', 'b1', '0123456789ab', 1)).toBe('database/b1/r0123456789ab-a1/');
});

test("which keys lie in an attempt's folder of this backup", () => {
  const inAttempt = attemptObjectKey('database', 'b1', RUN, 3, 'globals', 'zstd');
  expect(isAttemptKey('database', 'b1', inAttempt)).toBe(true);
  expect(isAttemptKey('database', 'b1', `database/b1/r${TOKEN}-a1/`)).toBe(true);
  // The backup's own files, and objects of the layout before attempt folders.
  for (const key of [manifestKey('database', 'b1'), claimKey('database', 'b1'), verificationKey('b1', '20261126_020000-0a1b2c3d'), objectKey('database', 'b1', 'dump', 'zstd')]) {
    expect({ key, inAttempt: isAttemptKey('database', 'b1', key) }).toEqual({ key, inAttempt: false });
  }
  // Another backup (one whose id starts the same), another component.
  expect(isAttemptKey('database', 'b1', inAttempt.replace('database/b1/', 'database/b10/'))).toBe(false);
  expect(isAttemptKey('database', 'b10', inAttempt)).toBe(false);
  expect(isAttemptKey('base', 'b1', inAttempt)).toBe(false);
  // Folders that only look like attempt folders.
  for (const folder of [`R${TOKEN}-a1`, `r${TOKEN.toUpperCase()}-a1`, `r${TOKEN.slice(1)}-a1`, `r${TOKEN}0-a1`, `r${TOKEN}-a`, `r${TOKEN}-ax`, `r${TOKEN}_a1`, `x/r${TOKEN}-a1`]) {
    expect({ folder, inAttempt: isAttemptKey('database', 'b1', `database/b1/${folder}/dump.pgcustom.zst.gpg`) }).toEqual({ folder, inAttempt: false });
  }
});

describe('a manifest lists objects only inside its own folder', () => {
  const manifest = (objectKeys: string[]) => ({
    formatVersion: 1,
    backupId: 'b1',
    component: 'database',
    runId: RUN,
    startedAt: '2026-11-26T02:00:00.000Z',
    finishedAt: '2026-11-26T02:05:00.000Z',
    compression: 'zstd',
    encryption: { recipientFingerprint: 'F'.repeat(40) },
    source: { database: 'app', snapshotTakenAt: '2026-11-26T02:00:01.000Z' },
    rowCounts: { auth_user: 3 },
    objects: objectKeys.map((key) => ({ role: key.includes('globals') ? 'globals' : 'dump', key, bytes: 1, sha256: 'a'.repeat(64) })),
  });
  const read = (objectKeys: string[]) => readManifest(new MemoryRepository('local').set(manifestKey('database', 'b1'), manifest(objectKeys)), 'database', 'b1');

  test('objects an attempt wrote, or objects of the layout before attempt folders: a whole manifest', async () => {
    const attempt = [attemptObjectKey('database', 'b1', RUN, 2, 'globals', 'zstd'), attemptObjectKey('database', 'b1', RUN, 2, 'dump', 'zstd')];
    await expect(read(attempt)).resolves.toMatchObject({ backupId: 'b1', objects: [{ key: attempt[0] }, { key: attempt[1] }] });
    await expect(read([objectKey('database', 'b1', 'dump', 'zstd')])).resolves.toMatchObject({ backupId: 'b1' });
  });

  test.each([
    ['in another backup', 'database/b2/dump.pgcustom.zst.gpg'],
    ["in a folder that is no attempt's", 'database/b1/elsewhere/dump.pgcustom.zst.gpg'],
    ['two folders down', `database/b1/r${TOKEN}-a1/x/dump.pgcustom.zst.gpg`],
    ['climbing out', 'database/b1/../b2/dump.pgcustom.zst.gpg'],
  ])('an object %s: the manifest is damaged', async (_where, key) => {
    await expect(read([key])).rejects.toMatchObject({ type: ErrorType.ManifestDamaged, nonRetryable: true, message: expect.stringContaining('lists an object outside database/b1/') });
  });

  test('no manifest: undefined', async () => {
    await expect(readManifest(new MemoryRepository('local'), 'database', 'b1')).resolves.toBeUndefined();
  });
});
