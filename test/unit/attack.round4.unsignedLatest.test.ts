// Attack round 4: `latest` with --allow-unsigned. The flag is there to admit "the unsigned
// backups made before this change" (issue 9): while a host's first signed backups are being
// made, an operator restores, drills or recovers with it. But it admitted every unsigned
// backup for `latest`, and `latest` is the newest by the manifest's own startedAt: a backup
// planted in a repository (anyone can encrypt to the public key), unsigned and dated a minute
// ago (or in 2099), was taken over every signed backup, its SQL run as a superuser, and for
// `restore --replace latest` swapped in as the live database. The result warned, after the fact.
//
// The same for point-in-time recovery: the base backup a recovery starts from is the newest
// one before its target, and a planted unsigned base backup, dated just before it, was taken.
//
// Once a signed backup of the source exists, `latest` is the newest SIGNED one; unsigned
// backups stay reachable by explicit id with the flag. Without any signed backup (a host that
// never signed), `latest` with the flag is still the newest unsigned one.
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { writeManifest } from '../../engine/catalog.js';
import { createPitrActivities } from '../../activities/pitr.js';
import { keyIdOf, loadVerifier, signManifest } from '../../engine/manifestSignature.js';
import { resolveCatalogBackup } from '../../engine/restoreSource.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';
import { ensureSigningKeyPair } from '../../client/dev/demoKeys.js';
import { validateConfig } from '../../common/config.js';
import type { RecoverableWindow } from '../../common/pitrTypes.js';
import type { BackupManifest } from '../../common/types.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'attack4-latest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SYSID = '7000000000000000001';

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

test('with --allow-unsigned, `latest` is never an unsigned backup while a signed one of the source exists', async () => {
  const signing = ensureSigningKeyPair(path.join(dir, 'keys'));
  const config = validateConfig(
    {
      host: 'attack4-latest',
      database: { url: 'postgres://app@127.0.0.1:1/app' },
      repositories: { nas: { type: 'filesystem', path: path.join(dir, 'nas') } },
      encryption: { publicKeyFile: path.join(dir, 'none.asc') },
      signing: { publicKeyFiles: [signing.publicKeyFile], required: false },
    },
    'attack config',
  );
  const nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
  const privateKey = createPrivateKey(readFileSync(signing.privateKeyFile, 'utf8'));
  const signer = { keyId: keyIdOf(privateKey), privateKey };
  const now = Date.now();
  // Made before signing began, then the host's signed backups.
  await writeManifest(nas, manifestOf('backup-old-unsigned', new Date(now - 3 * 86400_000).toISOString()));
  await writeManifest(nas, signManifest(manifestOf('backup-signed', new Date(now - 3600_000).toISOString()), signer));
  // Planted: unsigned, and newer.
  await writeManifest(nas, manifestOf('backup-planted', new Date(now - 60_000).toISOString()));

  const expected = { database: 'app', systemIdentifier: SYSID, from: 'restore.sourceSystemIdentifier' as const };
  const trust = { verifier: await loadVerifier(config), allowUnsigned: true };
  const latest = await resolveCatalogBackup('latest', [nas], expected, trust);
  expect(latest.backupId).toBe('backup-signed');
  expect(latest.warnings?.join(' ')).toContain('backup-planted');
  // The explicit id of a backup made before signing is still admitted with the flag.
  expect((await resolveCatalogBackup('backup-old-unsigned', [nas], expected, trust)).backupId).toBe('backup-old-unsigned');
});

function baseManifestOf(backupId: string, stoppedAt: string) {
  const key = `base/${backupId}/r0123456789ab-a1/base.tar.zst.gpg`;
  return {
    formatVersion: 1,
    backupId,
    component: 'base' as const,
    workflowId: backupId,
    runId: '6e6e6e6e-0000-4000-8000-000000000007',
    startedAt: stoppedAt,
    finishedAt: stoppedAt,
    server: { version: '15.8', versionNum: 150008, systemIdentifier: SYSID },
    backup: { timeline: 1, startLsn: '0/2000028', stopLsn: '0/2000100', startedAt: stoppedAt, stoppedAt, includesBackupManifest: true },
    compression: 'zstd',
    encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
    objects: [{ role: 'base', key, bytes: 10, sha256: '0'.repeat(64), plainBytes: 10 }],
  };
}

test('with --allow-unsigned, a recovery never starts from an unsigned base backup newer than the first signed one', async () => {
  const signing = ensureSigningKeyPair(path.join(dir, 'keys'));
  const root = path.join(dir, 'pitr-nas');
  const config = validateConfig(
    {
      host: 'attack4-latest',
      database: { url: 'postgres://app@127.0.0.1:1/app' },
      repositories: { nas: { type: 'filesystem', path: root } },
      encryption: { publicKeyFile: path.join(dir, 'none.asc') },
      signing: { publicKeyFiles: [signing.publicKeyFile], required: false },
      restore: { sourceSystemIdentifier: SYSID },
    },
    'attack config',
  );
  const nas = new FilesystemRepository('nas', root);
  const privateKey = createPrivateKey(readFileSync(signing.privateKeyFile, 'utf8'));
  const signer = { keyId: keyIdOf(privateKey), privateKey };
  const now = Date.now();
  await writeManifest(nas, baseManifestOf('base-before-signing', new Date(now - 7 * 86400_000).toISOString()));
  await writeManifest(nas, signManifest(baseManifestOf('base-signed', new Date(now - 86400_000).toISOString()), signer));
  await writeManifest(nas, baseManifestOf('base-planted', new Date(now - 120_000).toISOString()));

  const env = new MockActivityEnvironment({ workflowExecution: { workflowId: 'pitr', runId: 'run' } } as Partial<Info>);
  const window: RecoverableWindow = await env.run(createPitrActivities({ config, repositories: [nas] }).describeRecoverableWindow, { allowUnsigned: true });
  expect(window.baseBackups.map((b) => b.backupId)).toEqual(['base-before-signing', 'base-signed']);
});
