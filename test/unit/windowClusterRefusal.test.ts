// The recoverable window refuses (SourceMismatch) when the configured cluster is unknown and
// base backups of several clusters are in the repositories: "refuse rather than start from
// another's". 9abffa3 let chooseCopy pick each base backup's copy (declared), and since then
// only the chosen copy's cluster is counted: two signed copies of one base backup that name
// two clusters no longer refuse, and the recovery starts from the first repository's. Before,
// every admitted copy counted.
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { writeManifest } from '../../engine/catalog.js';
import { createPitrActivities } from '../../activities/pitr.js';
import { keyIdOf, signManifest } from '../../engine/manifestSignature.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';
import { ensureSigningKeyPair } from '../../client/dev/demoKeys.js';
import { validateConfig } from '../../common/config.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'window-clusters-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function baseManifestOf(backupId: string, stoppedAt: string, systemIdentifier: string) {
  return {
    formatVersion: 1,
    backupId,
    component: 'base' as const,
    workflowId: backupId,
    runId: '6e6e6e6e-0000-4000-8000-000000000007',
    startedAt: stoppedAt,
    finishedAt: stoppedAt,
    server: { version: '15.8', versionNum: 150008, systemIdentifier },
    backup: { timeline: 1, startLsn: '0/2000028', stopLsn: '0/2000100', startedAt: stoppedAt, stoppedAt, includesBackupManifest: true },
    compression: 'zstd',
    encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
    objects: [{ role: 'base', key: `base/${backupId}/r0123456789ab-a1/base.tar.zst.gpg`, bytes: 10, sha256: '0'.repeat(64), plainBytes: 10 }],
  };
}

test('with the cluster unknown, copies of one base backup naming two clusters refuse the window, as before', async () => {
  const signing = ensureSigningKeyPair(path.join(dir, 'keys'));
  const config = validateConfig(
    {
      host: 'window-clusters',
      // Nothing listens here, and no restore.sourceSystemIdentifier: the configured cluster is unknown.
      database: { url: 'postgres://app@127.0.0.1:1/app' },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') }, nas: { type: 'filesystem', path: path.join(dir, 'nas') } },
      encryption: { publicKeyFile: path.join(dir, 'none.asc') },
      signing: { publicKeyFiles: [signing.publicKeyFile], required: false },
    },
    'test config',
  );
  const privateKey = createPrivateKey(readFileSync(signing.privateKeyFile, 'utf8'));
  const signer = { keyId: keyIdOf(privateKey), privateKey };
  const local = new FilesystemRepository('local', path.join(dir, 'local'));
  const nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
  await writeManifest(local, signManifest(baseManifestOf('b1', '2026-11-01T00:00:00.000Z', '7000000000000000001'), signer));
  await writeManifest(nas, signManifest(baseManifestOf('b1', '2026-11-01T00:00:00.000Z', '7000000000000000002'), signer));
  const env = new MockActivityEnvironment({ workflowExecution: { workflowId: 'pitr', runId: 'run' } } as Partial<Info>);
  await expect(env.run(createPitrActivities({ config, repositories: [local, nas] }).describeRecoverableWindow, {})).rejects.toMatchObject({
    type: 'SourceMismatch',
    message: expect.stringContaining('base backups of 2 clusters (system identifiers 7000000000000000001, 7000000000000000002)'),
  });
});
