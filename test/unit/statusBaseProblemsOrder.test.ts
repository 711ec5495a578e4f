// Issue 10 (no behaviour changes): `status` reported the base backups' problems repository by
// repository (local's damaged manifests and wrongly signed base backups, then nas's). Since
// scanCatalog replaced its loop, every damaged manifest came first, then the wrongly signed.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { collectStatus } from '../../client/commands/status.js';
import { manifestKey } from '../../engine/catalog.js';
import { keyIdOf, signManifest, type Signer } from '../../engine/manifestSignature.js';
import { validateConfig } from '../../common/config.js';
import { plantedBaseManifest } from '../fixtures/baseManifest.js';
import { MemoryRepository } from '../fixtures/memoryRepository.js';

const CLUSTER = '7000000000000000001';
const dir = mkdtempSync(path.join(os.tmpdir(), 'status-order-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { publicKey } = generateKeyPairSync('ed25519');
const publicKeyFile = path.join(dir, 'signing-public.pem');
writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
const attacker: Signer = (() => {
  const pair = generateKeyPairSync('ed25519');
  return { keyId: keyIdOf(pair.publicKey), privateKey: pair.privateKey };
})();

const config = validateConfig(
  {
    host: 'db-1',
    database: { url: 'postgres://app@127.0.0.1:1/app' },
    repositories: { local: { type: 'filesystem', path: '/srv/backups' }, nas: { type: 'filesystem', path: '/mnt/nas' } },
    encryption: { publicKeyFile: '/etc/backupctl/public.asc' },
    signing: { publicKeyFiles: [publicKeyFile], required: false },
    restore: { sourceSystemIdentifier: CLUSTER },
  },
  'test config',
);


test('status: the base backups\' problems come repository by repository, as before the shared scan', async () => {
  const local = new MemoryRepository('local');
  const nas = new MemoryRepository('nas');
  local.set(manifestKey('base', 'planted'), signManifest(baseManifest('planted', '2026-11-20T00:00:00.000Z'), attacker));
  nas.set(manifestKey('base', 'broken'), '{"half');
  const report = await collectStatus(undefined, 'down', config, [local, nas]);
  const baseProblems = report.problems.filter((p) => p.includes('base/broken/') || p.includes('planted'));
  expect(baseProblems).toHaveLength(2);
  expect(baseProblems[0]).toMatch(/^base backup planted in local: manifest /);
  expect(baseProblems[1]).toContain('base/broken/');
});

function baseManifest(backupId: string, stoppedAt: string) {
  return plantedBaseManifest(backupId, { stoppedAt, systemIdentifier: CLUSTER });
}
