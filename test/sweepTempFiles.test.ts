// Chaos pass of 2026-11-27 (seed 444711943, WAL shipping + repo-readonly): a put to the NAS
// that failed when the NAS turned read-only could not remove its own temp file there, and the
// sweep never looked for temp files in file repositories (only for S3's open uploads), so the
// file stayed until a later put of the same key, or for good when none came. A file
// repository's temp files are now unfinished writes as S3's uploads are: listed, and removed
// by the sweep under the same age rule, only under our own key layout.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { filesUnder, plant } from './fixtures/files.js';
import { describeLeftover } from '../client/commands/sweep.js';
import type { Leftover } from '../common/sweepTypes.js';
import { uploadSweep } from './fixtures/uploadSweep.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'sweep-temp-files-'));
const nasRoot = path.join(dir, 'nas');
const SEGMENT = 'wal/000000010000000000000007.zst.gpg';

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const plantHere = (relative: string, content = 'half of it', ageHours = 0) => plant(nasRoot, relative, ageHours, content);

async function sweep(repository: FilesystemRepository, uploadAgeHours: number): Promise<{ found: Leftover[]; details: string[] }> {
  return uploadSweep({ host: 'sweep-temp-files', repository, repositoryConfig: { type: 'filesystem', path: nasRoot }, dir, runId: 'c0ffee00-0000-4000-8000-000000000003' }).sweep(uploadAgeHours);
}

test('a file repository lists its temp files as unfinished writes: key, file name, last write; never through a link', async () => {
  const repository = new FilesystemRepository('nas', nasRoot);
  plantHere(SEGMENT, 'the shipped segment');
  const temp = plantHere(`${SEGMENT}.95e4109f68e8.partial`, 'half of it', 3);
  // Linked folder: what is behind it is not the repository's.
  const elsewhere = path.join(dir, 'elsewhere');
  mkdirSync(elsewhere, { recursive: true });
  writeFileSync(path.join(elsewhere, 'x.bin.0123456789ab.partial'), 'not ours');
  symlinkSync(elsewhere, path.join(nasRoot, 'wal', 'linked'));

  const listed = await repository.listUnfinishedUploads();
  expect(listed.map((u) => ({ key: u.key, uploadId: u.uploadId }))).toEqual([{ key: SEGMENT, uploadId: path.basename(temp) }]);
  expect(Math.round((Date.now() - listed[0].initiated!.getTime()) / 3_600_000)).toBe(3);
  rmSync(path.join(nasRoot, 'wal', 'linked'));
});

test("the sweep removes our keys' temp files once old enough, and nothing else", async () => {
  rmSync(nasRoot, { recursive: true, force: true });
  const repository = new FilesystemRepository('nas', nasRoot);
  plantHere(SEGMENT, 'the shipped segment');
  plantHere(`${SEGMENT}.95e4109f68e8.partial`, 'a failed pass left it', 30);
  plantHere('database/backup-database-2026-11-01/r0123456789ab-a1/dump.pgcustom.zst.gpg.4242-0123456789ab.partial', 'a killed put left it', 30);
  plantHere('wal/000000010000000000000008.zst.gpg.0a0b0c0d0e0f.partial', 'a live put is writing it');
  // Not ours: another tool's file in the share, however old.
  plantHere('exports/warehouse.parquet.0123456789ab.partial', 'another tool', 300);

  // The default age keeps the young one (it may be a live writer's).
  const first = await sweep(repository, 24);
  expect(first.found.map(describeLeftover).join('\n')).toMatch(/unfinished write nas:wal\/000000010000000000000008\.zst\.gpg \(temp file /);
  expect(first.details).toHaveLength(2);
  expect(filesUnder(nasRoot)).toEqual(['exports/warehouse.parquet.0123456789ab.partial', SEGMENT, 'wal/000000010000000000000008.zst.gpg.0a0b0c0d0e0f.partial']);

  // Taking every unfinished write as abandoned (no writer runs: what the chaos harness does).
  await sweep(repository, 0);
  expect(filesUnder(nasRoot)).toEqual(['exports/warehouse.parquet.0123456789ab.partial', SEGMENT]);
});

test('removing an unfinished write refuses a name that is not one of the key', async () => {
  const repository = new FilesystemRepository('nas', nasRoot);
  plantHere(SEGMENT, 'the shipped segment');
  for (const uploadId of [path.basename(SEGMENT), `${path.basename(SEGMENT)}.json`, '../000000010000000000000007.zst.gpg.95e4109f68e8.partial', 'other.95e4109f68e8.partial']) {
    await expect(repository.abortUnfinishedUpload({ key: SEGMENT, uploadId })).rejects.toMatchObject({ type: 'InvalidInput', nonRetryable: true });
  }
  expect(filesUnder(nasRoot)).toContain(SEGMENT);
});
