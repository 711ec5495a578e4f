// A read that fails for a moment is not a damaged object. Chaos (seed 20261141, run seed
// 47926131: database backup + S3 500s) failed a backup for good with BackupOwnershipLost:
// "a damaged claim of unknown owner". readClaim took the S3 read's failure (5xx after the SDK's
// own retries) for a claim that does not parse. Its sibling, scanManifests, took a manifest it
// could not read now for a damaged one, so `latest` could pass over the newest backup and
// restore an older one. Both now let a transient read error through (the caller retries, or the
// repository counts as not listable now); only what was read and is wrong is damaged.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { claimKey, readClaim } from '../../engine/backupClaim.js';
import { manifestKey, scanCatalog, scanManifests } from '../../engine/catalog.js';
import { permanent, transient } from '../../engine/errors.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';
import { ErrorType } from '../../common/types.js';

let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'transient-reads-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A repository whose reads of `key` fail with `error` (as S3 does under 5xx, or a permission problem). */
function failingReads(name: string, failing: (key: string) => boolean, error: () => Error): FilesystemRepository {
  const repository = new FilesystemRepository(name, path.join(dir, name));
  const get = repository.get.bind(repository);
  repository.get = (key, options) => (failing(key) ? Promise.reject(error()) : get(key, options));
  return repository;
}

const s3Down = () => transient(ErrorType.StorageUnreachable, 'repository s3: 500 InternalError');
const put = (repository: FilesystemRepository, key: string, body: object) => repository.put(key, Readable.from([Buffer.from(JSON.stringify(body))]));

test('readClaim: a claim that cannot be read now is an error the caller retries, not a damaged claim', async () => {
  const repository = failingReads('s3', (k) => k.endsWith('claim.json'), s3Down);
  await put(repository, claimKey('database', 'b1'), { formatVersion: 1, component: 'database', backupId: 'b1', workflowId: 'w', runId: 'r', claimedAt: new Date().toISOString() });
  await expect(readClaim(repository, 'database', 'b1')).rejects.toMatchObject({ type: 'StorageUnreachable', retryable: true });
});

test('readClaim: a claim that was read and does not parse is damaged', async () => {
  const repository = new FilesystemRepository('nas', path.join(dir, 'nas'));
  await repository.put(claimKey('database', 'b2'), Readable.from([Buffer.from('{"half')]));
  expect(await readClaim(repository, 'database', 'b2')).toBe('damaged');
});

test('scanManifests: a manifest that cannot be read now makes the repository not listable now (never a damaged copy passed over)', async () => {
  const repository = failingReads('s3', (k) => k === manifestKey('database', 'newest'), s3Down);
  await put(repository, manifestKey('database', 'newest'), { backupId: 'newest' });
  await expect(scanManifests(repository, 'database', { keys: [], host: 'h' })).rejects.toMatchObject({ type: 'StorageUnreachable' });
  const scan = await scanCatalog([repository], 'database', { keys: [], host: 'h' });
  expect({ unlisted: scan.unlisted.map((u) => u.repository), damaged: scan.damaged }).toEqual({ unlisted: ['s3'], damaged: [] });
});

test('scanManifests: a manifest that cannot be read for good (a permanent refusal) is reported damaged, the rest still listed', async () => {
  const repository = failingReads('nas', (k) => k === manifestKey('database', 'locked'), () => permanent(ErrorType.StorageAccessDenied, 'repository nas: access denied'));
  await put(repository, manifestKey('database', 'locked'), { backupId: 'locked' });
  const scan = await scanManifests(repository, 'database', { keys: [], host: 'h' });
  expect(scan.damaged).toEqual([expect.objectContaining({ repository: 'nas', reason: expect.stringContaining('cannot be read: repository nas: access denied') })]);
});
