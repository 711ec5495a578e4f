// The class of fault behind issue 8 items 5 and 7, for both components (database dumps and
// base backups), on real filesystem repositories: every way a manifest copy can lie or be
// broken is a damaged copy, skipped and reported, never used.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { generateKeyPairSync } from 'node:crypto';
import { manifestKey, objectKey, readManifest, readManifestCopies, scanManifests, type Component } from '../../engine/catalog.js';
import { keyIdOf, signManifest, type Trust } from '../../engine/manifestSignature.js';
import { openRepositories } from '../../engine/storage/index.js';
import type { Repository } from '../../engine/storage/repository.js';
import { psqlRestricts } from '../../engine/restoreSource.js';

let dir: string;
let repositories: Repository[];
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const signer = { keyId: keyIdOf(publicKey), privateKey };
const trust: Trust = { verifier: { keys: [{ keyId: signer.keyId, publicKey, file: '/test/signing.pub' }], host: 'test' }, allowUnsigned: false };
/** A manifest as the backup host stores it: signed. */
const signed = (m: Record<string, unknown>) => JSON.stringify(signManifest(m, signer));

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-manifests-'));
  repositories = openRepositories({
    repositories: {
      local: { type: 'filesystem', path: path.join(dir, 'local') },
      nas: { type: 'filesystem', path: path.join(dir, 'nas') },
    },
  } as never);
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

function manifest(component: Component, backupId: string): Record<string, unknown> {
  const common = {
    formatVersion: 1,
    backupId,
    component,
    workflowId: backupId,
    runId: 'run-1',
    startedAt: '2026-11-27T02:00:00.000Z',
    finishedAt: '2026-11-27T02:01:00.000Z',
    compression: 'zstd',
    encryption: { type: 'openpgp', recipientFingerprint: 'ABCD' },
    copies: [],
  };
  const object = (role: 'dump' | 'globals' | 'base') => ({ role, key: objectKey(component, backupId, role, 'zstd'), bytes: 10, sha256: 'a'.repeat(64), plainBytes: 20 });
  if (component === 'base') {
    return {
      ...common,
      server: { version: '15.20', versionNum: 150020, systemIdentifier: '7000000000000000001' },
      backup: { timeline: 1, startLsn: '0/2000028', stopLsn: '0/2000100', startedAt: common.startedAt, stoppedAt: common.finishedAt, includesBackupManifest: true },
      objects: [object('base')],
    };
  }
  return {
    ...common,
    source: { database: 'app', systemIdentifier: '7000000000000000001', serverVersion: '15.20', lsn: null, snapshotTakenAt: common.startedAt, databaseBytes: 1 },
    objects: [object('globals'), object('dump')],
    rowCounts: { auth_user: 3 },
    readabilityCheck: 'pg_restore',
    warnings: [],
  };
}

async function put(repository: Repository, key: string, body: string | Buffer) {
  const bytes = Buffer.from(body);
  await repository.put(key, Readable.from([bytes]), { contentLength: bytes.length });
}

describe.each(['database', 'base'] as const)('%s manifests', (component) => {
  const lies: [string, (id: string) => string | Buffer][] = [
    ['truncated', (id) => JSON.stringify(manifest(component, id)).slice(0, 80)],
    ['empty', () => ''],
    ['another backup', () => JSON.stringify(manifest(component, 'other-backup'))],
    ['the other component', (id) => JSON.stringify({ ...manifest(component === 'base' ? 'database' : 'base', id) })],
    [
      'objects outside its folder',
      (id) => {
        const m = manifest(component, id) as { objects: { key: string }[] };
        m.objects[0].key = m.objects[0].key.replace(`/${id}/`, '/other-backup/');
        return JSON.stringify(m);
      },
    ],
    ['missing fields', (id) => JSON.stringify({ formatVersion: 1, backupId: id, component })],
  ];

  test.each(lies)('a copy that is %s is skipped and reported; the next whole copy is used', async (_name, lie) => {
    const id = 'backup-1';
    await put(repositories[0], manifestKey(component, id), lie(id));
    await put(repositories[1], manifestKey(component, id), signed(manifest(component, id)));
    const copies = await readManifestCopies(repositories, component, id, trust);
    expect(copies.manifest).toMatchObject({ backupId: id, component });
    expect(copies.holders).toEqual(['nas']);
    expect(copies.skipped).toEqual([expect.objectContaining({ repository: 'local', key: manifestKey(component, id), errorType: 'ManifestDamaged' })]);
    await expect(readManifest(repositories[0], component, id)).rejects.toMatchObject({ type: 'ManifestDamaged', nonRetryable: true });
    const scan = await scanManifests(repositories[0], component, trust.verifier);
    expect(scan.manifests).toEqual([]);
    expect(scan.damaged).toHaveLength(1);
  });

  test('copies that differ: the first whole one is used, the other reported', async () => {
    const id = 'backup-2';
    await put(repositories[0], manifestKey(component, id), signed(manifest(component, id)));
    await put(repositories[1], manifestKey(component, id), signed({ ...manifest(component, id), finishedAt: '2026-11-27T03:00:00.000Z' }));
    const copies = await readManifestCopies(repositories, component, id, trust);
    expect(copies.manifest!.finishedAt).toBe('2026-11-27T02:01:00.000Z');
    expect(copies.holders).toEqual(['local']);
    expect(copies.skipped).toEqual([expect.objectContaining({ repository: 'nas', reason: expect.stringContaining('differs from the copy in local') })]);
  });

  test('the reason never quotes the manifest', async () => {
    const id = 'backup-3';
    await put(repositories[0], manifestKey(component, id), '{"backupId": "sk_live_secret-in-a-manifest", ');
    const copies = await readManifestCopies(repositories, component, id, trust);
    expect(copies.manifest).toBeUndefined();
    expect(JSON.stringify(copies.skipped)).not.toContain('sk_live');
  });
});

test('psql refuses backslash commands only from the releases that have \\restrict', () => {
  expect(psqlRestricts('psql (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)')).toBe(true);
  expect(psqlRestricts('psql (PostgreSQL) 15.13')).toBe(false);
  expect(psqlRestricts('psql (PostgreSQL) 17.6')).toBe(true);
  expect(psqlRestricts('psql (PostgreSQL) 12.22')).toBe(false);
  expect(psqlRestricts('psql (PostgreSQL) 18.0')).toBe(true);
  expect(psqlRestricts('something else')).toBe(false);
});
