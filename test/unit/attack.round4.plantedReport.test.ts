// Attack round 4: a verification report planted in a repository. SECURITY.md answers the
// attacker who can write to a repository (and so delete or corrupt objects) with "the copy
// audit of every verification (each copy's state in `backups list` and `status`)". Reports
// are not signed (restore hosts hold no signing key), and the newest report is the one with
// the greatest id. One file, `verifications/99991231_235959-ffffffff.json`, saying "ok, every
// copy whole", dated in the future, stays the newest for ever: every real verification after
// it (finding the copies the attacker corrupted) is never shown, and "the newest verification
// is N days old" never fires. A report copied from another backup's folder counts too.
//
// Refused now: a report dated later than now (beyond a few minutes of clock skew), or whose id
// or backup is not the folder's. What stays possible (a report dated now, for this backup,
// shown until the next real verification) is in SECURITY.md.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { verificationKey, writeJson, writeManifest } from '../../engine/catalog.js';
import { keyIdOf, signManifest, loadVerifier } from '../../engine/manifestSignature.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';
import { ensureSigningKeyPair } from '../../client/dev/demoKeys.js';
import { readCatalog } from '../../client/commands/listBackups.js';
import { validateConfig } from '../../common/config.js';
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { stamp } from '../../workflows/restoreInput.js';
import type { BackupManifest } from '../../common/types.js';
import type { VerificationReport } from '../../common/restoreTypes.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'attack4-report-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function manifestOf(backupId: string, startedAt: string): BackupManifest {
  return {
    formatVersion: 1,
    component: 'database',
    backupId,
    workflowId: backupId,
    runId: '5e5e5e5e-0000-4000-8000-000000000005',
    startedAt,
    finishedAt: startedAt,
    source: { database: 'app', snapshotTakenAt: startedAt, systemIdentifier: '7000000000000000001' },
    compression: 'zstd',
    encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
    objects: [{ role: 'dump', key: `database/${backupId}/dump.pgcustom.zst.gpg`, bytes: 1, sha256: '0'.repeat(64), plainBytes: 1 }],
    rowCounts: {},
  } as unknown as BackupManifest;
}

function reportOf(backupId: string, at: Date, ok: boolean): VerificationReport {
  return {
    formatVersion: 1,
    kind: 'verification',
    reportId: `${stamp(at)}-${ok ? 'ffffffff' : '0a0a0a0a'}`,
    workflowId: `verify-backup-${stamp(at)}`,
    backupId,
    startedAt: at.toISOString(),
    finishedAt: at.toISOString(),
    ok,
    ...(ok ? {} : { failure: 'the copy in nas is damaged and the others could not be read' }),
    scratchDropped: true,
  };
}

test('a report dated in the future, or copied from another backup, never stands for the newest verification', async () => {
  const signing = ensureSigningKeyPair(path.join(dir, 'keys'));
  const config = validateConfig(
    {
      host: 'attack4-report',
      database: { url: 'postgres://app@127.0.0.1:1/app' },
      repositories: { nas: { type: 'filesystem', path: path.join(dir, 'nas') } },
      encryption: { publicKeyFile: path.join(dir, 'none.asc') },
      signing: { privateKeyFile: signing.privateKeyFile },
    },
    'attack config',
  );
  const nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
  const privateKey = createPrivateKey(readFileSync(signing.privateKeyFile, 'utf8'));
  const signer = { keyId: keyIdOf(privateKey), privateKey };
  const hourAgo = new Date(Date.now() - 3600_000);
  for (const id of ['backup-a', 'backup-b']) await writeManifest(nas, signManifest(manifestOf(id, hourAgo.toISOString()), signer));

  // The real, newest verification of backup-a failed.
  const genuine = reportOf('backup-a', new Date(Date.now() - 60_000), false);
  await writeJson(nas, verificationKey('backup-a', genuine.reportId), genuine);
  // Planted: "ok" dated years ahead in backup-a's folder; and backup-b's (dated now, ok) copied into it under a newer id.
  const future = reportOf('backup-a', new Date('2099-12-31T23:59:59Z'), true);
  await writeJson(nas, verificationKey('backup-a', future.reportId), future);
  const copied = { ...reportOf('backup-b', new Date(), true), reportId: `${stamp(new Date())}-fffffffe` };
  await writeJson(nas, verificationKey('backup-a', copied.reportId), copied);

  const catalog = await readCatalog([nas], await loadVerifier(config));
  const a = catalog.entries.find((e) => e.backupId === 'backup-a');
  expect(a?.lastVerification).toMatchObject({ reportId: genuine.reportId, ok: false });
});
