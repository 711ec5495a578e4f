// The newest base backup is where every point-in-time recovery starts: like the newest dump,
// status says when none exists though base backups are configured, and when a repository lacks
// it (a copy lost on the NAS or never shipped to S3 leaves a recovery with fewer places to start).
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assessHealth } from '../../engine/health.js';
import { manifestKey } from '../../engine/catalog.js';
import { keyIdOf, signManifest, type Signer } from '../../engine/manifestSignature.js';
import { validateConfig } from '../../common/config.js';
import { plantedBaseManifest } from '../fixtures/baseManifest.js';
import { MemoryRepository } from '../fixtures/memoryRepository.js';

const CLUSTER = '7000000000000000001';
const dir = mkdtempSync(path.join(os.tmpdir(), 'status-base-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const pair = generateKeyPairSync('ed25519');
const signer: Signer = { keyId: keyIdOf(pair.publicKey), privateKey: pair.privateKey };
const publicKeyFile = path.join(dir, 'signing-public.pem');
writeFileSync(publicKeyFile, pair.publicKey.export({ type: 'spki', format: 'pem' }));

function config(baseBackupUrl?: string) {
  return validateConfig(
    {
      host: 'db-1',
      database: { url: 'postgres://app@127.0.0.1:1/app' },
      ...(baseBackupUrl ? { baseBackup: { url: baseBackupUrl } } : {}),
      repositories: { local: { type: 'filesystem', path: '/srv/backups' }, nas: { type: 'filesystem', path: '/mnt/nas' } },
      encryption: { publicKeyFile: '/etc/backupctl/public.asc' },
      signing: { publicKeyFiles: [publicKeyFile] },
      restore: { sourceSystemIdentifier: CLUSTER },
    },
    'test config',
  );
}


const keys = (problems: { key: string }[]) => problems.map((p) => p.key).filter((k) => k.startsWith('base.'));

test('base backups configured and none made: base.none', async () => {
  const health = await assessHealth(config('postgres://replicator@127.0.0.1:1/app'), [new MemoryRepository('local'), new MemoryRepository('nas')]);
  expect(keys(health.problems)).toEqual(['base.none']);
});

test('no base backups configured: nothing said of them', async () => {
  const health = await assessHealth(config(), [new MemoryRepository('local'), new MemoryRepository('nas')]);
  expect(keys(health.problems)).toEqual([]);
});

test('the newest base backup missing from a repository: base.copy-missing names it; an older one held everywhere does not hide it', async () => {
  const local = new MemoryRepository('local');
  const nas = new MemoryRepository('nas');
  const recent = new Date(Date.now() - 3600_000).toISOString();
  const older = new Date(Date.now() - 2 * 86_400_000).toISOString();
  for (const repository of [local, nas]) repository.set(manifestKey('base', 'b-old'), signManifest(baseManifest('b-old', older), signer));
  local.set(manifestKey('base', 'b-new'), signManifest(baseManifest('b-new', recent), signer));
  const health = await assessHealth(config('postgres://replicator@127.0.0.1:1/app'), [local, nas]);
  expect(health.latestBaseBackup).toMatchObject({ backupId: 'b-new', foundIn: ['local'] });
  expect(health.problems.filter((p) => p.key.startsWith('base.'))).toEqual([{ key: 'base.copy-missing', message: 'the newest base backup b-new is missing from: nas' }]);
});

function baseManifest(backupId: string, stoppedAt: string) {
  return plantedBaseManifest(backupId, { stoppedAt, systemIdentifier: CLUSTER });
}
