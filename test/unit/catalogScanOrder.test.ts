// Issue 10 (one engine, no behaviour changes): scanCatalog replaced the loops of `restore
// latest` and `backups list`, and the order of what they report changed with it. The loops
// reported each repository in turn (the one that cannot be listed, or its damaged manifests,
// in repository order), and met the backups in the order the repositories listed them; the
// scan reports every unlisted repository before any damaged manifest, and re-sorts the backups.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { manifestKey, writeManifest } from '../../engine/catalog.js';
import { transient } from '../../engine/errors.js';
import { resolveCatalogBackup } from '../../engine/restoreSource.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';
import { readCatalog } from '../../client/commands/listBackups.js';
import { ErrorType, type BackupManifest } from '../../common/types.js';

let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'catalog-scan-order-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const SYSID = '7000000000000000001';
const verifier = { keys: [], host: 'h' };
const expected = { database: 'app', systemIdentifier: SYSID, from: 'restore.sourceSystemIdentifier' as const };

function manifestOf(backupId: string, startedAt: string, database = 'app'): BackupManifest {
  return {
    formatVersion: 1,
    component: 'database',
    backupId,
    workflowId: backupId,
    runId: '6e6e6e6e-0000-4000-8000-000000000006',
    startedAt,
    finishedAt: startedAt,
    source: { database, snapshotTakenAt: startedAt, systemIdentifier: SYSID },
    compression: 'zstd',
    encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
    objects: [{ role: 'dump', key: `database/${backupId}/dump.pgcustom.zst.gpg`, bytes: 1, sha256: '0'.repeat(64), plainBytes: 1 }],
    rowCounts: {},
  } as unknown as BackupManifest;
}

const repo = (name: string) => new FilesystemRepository(name, path.join(dir, name));

function unlistable(name: string): FilesystemRepository {
  const repository = repo(name);
  repository.list = () => Promise.reject(transient(ErrorType.StorageUnreachable, `repository ${name}: 500 InternalError`));
  return repository;
}

test('restore latest: skipped copies are reported repository by repository, as before the scan was shared', async () => {
  const nas = repo('nas');
  const s3 = unlistable('s3');
  await writeManifest(nas, manifestOf('b1', '2026-11-01T00:00:00.000Z'));
  await nas.put(manifestKey('database', 'broken'), Readable.from([Buffer.from('{"half')]));
  const source = await resolveCatalogBackup('latest', [nas, s3], expected, { verifier, allowUnsigned: true });
  expect(source.backupId).toBe('b1');
  // nas first (its damaged manifest), then s3 (cannot be listed now): the repositories' order.
  expect(source.skipped?.map((s) => s.repository)).toEqual(['nas', 's3']);
});

test('backups list: backups of other sources are listed in the order the repositories hold them, as before', async () => {
  const nas = repo('nas');
  const s3 = repo('s3');
  await writeManifest(nas, manifestOf('other-new', '2026-11-02T00:00:00.000Z', 'otherdb'));
  await writeManifest(s3, manifestOf('other-old', '2026-11-01T00:00:00.000Z', 'otherdb'));
  const catalog = await readCatalog([nas, s3], verifier, expected);
  expect(catalog.otherSources.map((o) => o.backupId)).toEqual(['other-new', 'other-old']);
});
