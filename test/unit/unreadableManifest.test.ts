// A manifest a filesystem repository cannot read for good is a damaged copy, not a repository
// that cannot be listed. 9abffa3 made scanManifests throw for every read error that is not a
// permanent EngineError, meaning to let only a momentary one through. But a filesystem
// repository's get() hands back a read stream whose open/read errors are raw Node errors
// (EACCES on a manifest owned by another user, EISDIR, EIO): not EngineErrors, so they now
// hide the whole repository from `restore latest`, `backups list`, status and the recoverable
// window, and with one repository `latest` fails with a retryable StorageUnreachable for ever.
// Before, the copy was reported damaged and the rest listed (the commit's comment says so too:
// "Refused for good (access denied to this object): damaged, the rest still listed").
// The test runs as root, which reads any file, so the unreadable file is a directory read as a
// file: the same raw error path (fs.createReadStream), EISDIR instead of EACCES.
import { createReadStream, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { manifestKey, scanManifests, writeManifest } from '../../engine/catalog.js';
import { resolveCatalogBackup } from '../../engine/restoreSource.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';
import type { BackupManifest } from '../../common/types.js';

let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'unreadable-manifest-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const SYSID = '7000000000000000001';
const verifier = { keys: [], host: 'h' };

function manifestOf(backupId: string, startedAt: string): BackupManifest {
  return {
    formatVersion: 1,
    component: 'database',
    backupId,
    workflowId: backupId,
    runId: '6e6e6e6e-0000-4000-8000-000000000006',
    startedAt,
    finishedAt: startedAt,
    source: { database: 'app', snapshotTakenAt: startedAt, systemIdentifier: SYSID },
    compression: 'zstd',
    encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
    objects: [{ role: 'dump', key: `database/${backupId}/dump.pgcustom.zst.gpg`, bytes: 1, sha256: '0'.repeat(64), plainBytes: 1 }],
    rowCounts: {},
  } as unknown as BackupManifest;
}

/** A filesystem repository whose `locked` manifest cannot be read: its read stream fails as fs does. */
async function nasWithUnreadableManifest(): Promise<FilesystemRepository> {
  const nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
  await writeManifest(nas, manifestOf('b1', '2026-11-01T00:00:00.000Z'));
  await writeManifest(nas, manifestOf('locked', '2026-11-02T00:00:00.000Z'));
  const unreadable = path.join(dir, 'a-directory');
  mkdirSync(unreadable);
  const get = nas.get.bind(nas);
  nas.get = async (key, options) => (key === manifestKey('database', 'locked') ? (await get(key, options), createReadStream(unreadable)) : get(key, options));
  return nas;
}

test('scanManifests: a manifest whose file cannot be read (a raw filesystem error) is damaged, the rest still listed', async () => {
  const nas = await nasWithUnreadableManifest();
  const scan = await scanManifests(nas, 'database', verifier);
  expect(scan.manifests.map((m) => m.manifest.backupId)).toEqual(['b1']);
  expect(scan.damaged).toEqual([expect.objectContaining({ repository: 'nas', reason: expect.stringContaining('cannot be read: EISDIR') })]);
});

test('restore latest: an unreadable manifest in the only repository does not make it unlistable', async () => {
  const nas = await nasWithUnreadableManifest();
  const expected = { database: 'app', systemIdentifier: SYSID, from: 'restore.sourceSystemIdentifier' as const };
  const source = await resolveCatalogBackup('latest', [nas], expected, { verifier, allowUnsigned: true });
  expect(source.backupId).toBe('b1');
});
