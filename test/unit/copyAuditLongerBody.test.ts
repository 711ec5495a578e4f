// The weekly verification's copy audit (activities/copyAudit.ts) reads each copy back in full:
// a body that goes on past its listed size (a link to /dev/zero swapped in, a file still
// growing, a store answering with another body) is read no further than its size.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createCopyAuditActivities } from '../../activities/copyAudit.js';
import { validateConfig } from '../../common/config.js';
import type { CopyAudit } from '../../common/restoreTypes.js';
import type { StoredObject } from '../../common/types.js';
import { manifestKey, writeManifest } from '../../engine/catalog.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';

let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'copy-audit-longer-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('an object, or a manifest, that reads back longer than listed is a mismatch read no further than its size (plus a chunk)', async () => {
  const backupId = '20261101_000000-aaaaaaaa';
  const nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
  mkdirSync(path.join(nas.root, 'database', backupId), { recursive: true });
  const body = Buffer.from('dump bytes '.repeat(100));
  const object: StoredObject = { role: 'dump', key: `database/${backupId}/dump.pgcustom.zst.gpg`, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') } as StoredObject;
  writeFileSync(path.join(nas.root, object.key), body);
  const startedAt = '2026-11-01T00:00:00.000Z';
  await writeManifest(nas, {
    formatVersion: 1,
    component: 'database',
    backupId,
    runId: 'run',
    startedAt,
    finishedAt: startedAt,
    source: { database: 'app', snapshotTakenAt: startedAt },
    compression: 'zstd',
    encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
    objects: [object],
    rowCounts: {},
    copies: [{ repository: 'nas' }],
  } as never);
  // Every read goes on past its end: 64 MiB here, for ever behind a link to /dev/zero.
  const endless = Object.assign(Object.create(nas) as FilesystemRepository, {
    get: async (key: string) =>
      Readable.from(
        (function* () {
          yield readFileSync(path.join(nas.root, key));
          for (let i = 0; i < 64; i++) yield Buffer.alloc(1024 * 1024);
        })(),
      ),
  });
  const config = validateConfig(
    {
      host: 'db1',
      database: { url: 'postgres://backup@127.0.0.1:5432/app' },
      repositories: { nas: { type: 'filesystem', path: nas.root } },
      encryption: { publicKeyFile: path.join(dir, 'unused.asc') },
    },
    'copy audit test config',
  );
  const { auditBackupCopies } = createCopyAuditActivities({ config, repositories: [endless] });
  const audit = (await new MockActivityEnvironment().run(auditBackupCopies, { backupId, objects: [object], allowUnsigned: true })) as CopyAudit;
  const [copy] = audit.repositories;
  expect(copy.manifest.state).toBe('damaged');
  expect(copy.objects[0].state).toBe('size-mismatch');
  expect(copy.objects[0].detail).toContain(`more than ${body.length} bytes`);
  expect(audit.bytesRead).toBeLessThanOrEqual(readFileSync(path.join(nas.root, manifestKey('database', backupId))).length + body.length + 2 * 1024 * 1024);
});
