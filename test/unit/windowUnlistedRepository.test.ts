// Issue 10 (no behaviour changes): the recoverable window read each repository in one go, its
// base backups then its WAL, and a repository whose base backups could not be listed was not
// read for the window at all (one warning). Since scanCatalog took the base backups out of that
// loop, such a repository's WAL is still read, so the window's end can come from a repository
// the window otherwise counts as unread (and the warning is given twice when its WAL fails too).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createPitrActivities } from '../../activities/pitr.js';
import { transient } from '../../engine/errors.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';
import { walEntryKey } from '../../engine/walArchive.js';
import { validateConfig } from '../../common/config.js';
import type { RecoverableWindow } from '../../common/pitrTypes.js';
import { ErrorType } from '../../common/types.js';

const SYSID = '7000000000000000001';
const SEGMENT = '000000010000000000000005';
let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'window-unlisted-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('a repository whose base backups cannot be listed now is not read for the window, its WAL neither (as before the shared scan)', async () => {
  const root = path.join(dir, 'nas');
  const config = validateConfig(
    {
      host: 'window-unlisted',
      database: { url: 'postgres://app@127.0.0.1:1/app' },
      repositories: { nas: { type: 'filesystem', path: root } },
      encryption: { publicKeyFile: path.join(dir, 'none.asc') },
      signing: { publicKeyFiles: [], required: false },
      restore: { sourceSystemIdentifier: SYSID },
    },
    'test config',
  );
  const nas = new FilesystemRepository('nas', root);
  const entry = { segment: SEGMENT, key: `wal/${SEGMENT}.zst.gpg`, compression: 'zstd', bytes: 10, sha256: 'a'.repeat(64), plainBytes: 16 * 1024 * 1024, plainSha256: 'b'.repeat(64), archivedAt: new Date().toISOString() };
  await nas.put(walEntryKey(SEGMENT), Readable.from([Buffer.from(JSON.stringify(entry))]));
  const list = nas.list.bind(nas);
  nas.list = (prefix) => (prefix.startsWith('base') ? Promise.reject(transient(ErrorType.StorageUnreachable, 'repository nas: cannot be listed now')) : list(prefix));

  const env = new MockActivityEnvironment({ workflowExecution: { workflowId: 'pitr', runId: 'run' } } as Partial<Info>);
  const window: RecoverableWindow = await env.run(createPitrActivities({ config, repositories: [nas] }).describeRecoverableWindow, { allowUnsigned: true });
  expect(window).toMatchObject({ baseBackups: [], newestSegment: null, latest: null });
});
