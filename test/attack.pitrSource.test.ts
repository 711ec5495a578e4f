// Attack on the source check of point-in-time recovery (README promise 5: a manifest's source
// "must match the configuration"). A repository shared by two clusters (two hosts, or a
// cluster rebuilt with initdb) holds base backups of both. Recovery is needed when the live
// cluster is down, so its system identifier cannot be read, and restore.sourceSystemIdentifier
// is not set. Database restores then refuse `latest` when the backups come from two clusters
// (sourceMatch.ts pickLatest); the recoverable window of PITR lists both clusters' base
// backups as starting points, and the workflow picks the newest one before the target,
// whichever cluster made it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { writeManifest } from '../engine/catalog.js';
import { createPitrActivities } from '../activities/pitr.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { validateConfig } from '../common/config.js';
import type { RecoverableWindow } from '../common/pitrTypes.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-attack-pitrsource-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function baseManifest(backupId: string, systemIdentifier: string, stoppedAt: string) {
  const key = `base/${backupId}/r0123456789ab-a1/base.tar.zst.gpg`;
  return {
    formatVersion: 1,
    backupId,
    component: 'base' as const,
    workflowId: backupId,
    runId: '0123456789ab-run',
    startedAt: stoppedAt,
    finishedAt: stoppedAt,
    server: { version: '15.8', versionNum: 150008, systemIdentifier },
    backup: { timeline: 1, startLsn: '0/2000028', stopLsn: '0/2000100', startedAt: stoppedAt, stoppedAt, includesBackupManifest: true },
    compression: 'zstd',
    encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
    objects: [{ role: 'base', key, bytes: 10, sha256: '0'.repeat(64), plainBytes: 10 }],
    copies: [{ repository: 'shared', key, bytes: 10, sha256: '0'.repeat(64), verified: true }],
  };
}

test('with the live cluster unreadable and no configured identifier, base backups of two clusters are never both offered as starting points', async () => {
  const root = path.join(dir, 'shared');
  const shared = new FilesystemRepository('shared', root);
  await writeManifest(shared, baseManifest('base-ours', '7100000000000000001', '2026-11-27T01:00:00.000Z'));
  await writeManifest(shared, baseManifest('base-other-host', '7200000000000000002', '2026-11-27T02:00:00.000Z'));
  // The live cluster is down: nothing listens on port 1.
  const config = validateConfig(
    { host: 'attack', database: { url: 'postgres://app@127.0.0.1:1/app' }, repositories: { shared: { type: 'filesystem', path: root } }, encryption: { publicKeyFile: path.join(dir, 'none.asc') } },
    'attack config',
  );
  const activities = createPitrActivities({ config, repositories: [shared] });
  const env = new MockActivityEnvironment({ workflowExecution: { workflowId: 'pitr', runId: 'run' } } as Partial<Info>);
  // Unsigned test manifests: admitted, so that the source check is what is tested here.
  const window = (await env.run(activities.describeRecoverableWindow, { allowUnsigned: true }).catch((err: unknown) => err)) as RecoverableWindow | Error;
  if (window instanceof Error) return; // refused: acceptable
  expect(window.baseBackups.map((b) => b.backupId).sort()).not.toEqual(['base-other-host', 'base-ours']);
});
