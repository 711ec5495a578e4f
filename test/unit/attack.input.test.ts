// Hostile backup references (README promise 9: "Bad input is refused before a workflow
// starts, with a non-retryable error naming what is wrong"): "." and ".." pass the backup id
// check of the CLI and of the workflows (restoreInput.ts) and of resolveCatalogBackup, then
// the storage key check refuses them deep inside, which readManifestCopies reports as a
// repository that "cannot be read now": the restore or verification is retried and fails as
// StorageUnreachable, telling the operator the storage is down.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveCatalogBackup } from '../../engine/restoreSource.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';
import { checkBackupReference } from '../../workflows/restoreInput.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-attack-input-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe.each(['.', '..'])('the backup reference %j', (reference) => {
  test('is refused before a workflow starts', () => {
    expect(() => checkBackupReference(reference, true)).toThrow(/input\.backup/);
  });

  test('is refused by the catalog as bad input (non-retryable InvalidInput), never reported as unreachable storage', async () => {
    const repositories = [new FilesystemRepository('local', path.join(dir, 'local')), new FilesystemRepository('nas', path.join(dir, 'nas'))];
    const failure = (await resolveCatalogBackup(reference, repositories, { database: 'app', from: 'unknown' }, { verifier: { keys: [], host: 'test' }, allowUnsigned: false }).catch((err: unknown) => err)) as { type?: string; nonRetryable?: boolean; message?: string };
    expect({ type: failure.type, nonRetryable: failure.nonRetryable }).toEqual({ type: 'InvalidInput', nonRetryable: true });
  });
});
