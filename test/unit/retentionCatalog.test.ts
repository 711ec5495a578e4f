// What retention reads from a repository (engine/retentionCatalog.ts): a backup counts as
// complete only with a whole manifest of its own folder whose signature is admitted; a forged,
// unsigned, damaged or misplaced one is kept and reported, never counted; a folder without a
// manifest is a leftover of a finished backup when another repository has its manifest, else
// the sweep's; WAL is verified when both its entry and its object are there; a repository
// that cannot be listed is reported and left out; what is not ours is noted.
import { createHash, generateKeyPairSync } from 'node:crypto';
import { ManifestCache } from '../../engine/manifestCache.js';
import { keyIdOf, signManifest, type Signer, type Verifier } from '../../engine/manifestSignature.js';
import { readRetentionCatalog } from '../../engine/retentionCatalog.js';
import { MemoryRepository } from '../fixtures/memoryRepository.js';

function keyPair(): { signer: Signer; verifier: Verifier } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { signer: { keyId: keyIdOf(publicKey), privateKey }, verifier: { keys: [{ keyId: keyIdOf(publicKey), publicKey, file: 'test.pub' }], host: 'test' } };
}

const ours = keyPair();
const theirs = keyPair();

function manifest(component: 'database' | 'base', id: string, finishedAt: string, extra: object = {}) {
  // Names the one object planted() stores beside it, at its size.
  return { formatVersion: 1, backupId: id, component, finishedAt, startedAt: finishedAt, objects: [{ role: 'dump', key: `${component}/${id}/dump.pgcustom.zst.gpg`, bytes: 5, sha256: 'a'.repeat(64) }], ...extra };
}

function planted(repository: MemoryRepository, component: 'database' | 'base', id: string, body: unknown) {
  repository.set(`${component}/${id}/dump.pgcustom.zst.gpg`, 'bytes');
  repository.set(`${component}/${id}/manifest.json`, body);
}

test('only a whole manifest of its own folder, signed by a trusted key, counts as complete', async () => {
  const local = new MemoryRepository('local');
  planted(local, 'database', 'good', signManifest(manifest('database', 'good', '2026-11-20T02:00:00Z'), ours.signer));
  planted(local, 'database', 'unsigned', manifest('database', 'unsigned', '2026-11-28T02:00:00Z'));
  planted(local, 'database', 'forged', signManifest(manifest('database', 'forged', '2026-11-28T02:00:00Z'), theirs.signer));
  planted(local, 'database', 'copied', signManifest(manifest('database', 'good', '2026-11-20T02:00:00Z'), ours.signer));
  planted(local, 'database', 'cut', '{"backupId": "cut", "compo');
  const reading = await readRetentionCatalog([local], { verifier: ours.verifier, allowUnsigned: false });
  expect(reading.catalog.backups).toEqual([{ repository: 'local', component: 'database', backupId: 'good', complete: true, at: Date.parse('2026-11-20T02:00:00Z') }]);
  const notes = reading.contents[0].notes.join('\n');
  for (const id of ['unsigned', 'forged', 'copied', 'cut']) expect(notes).toContain(`database/${id}/manifest.json`);
  expect(notes).toMatch(/unsigned\/manifest.json is not signed/);
  expect(notes).toMatch(/copied\/manifest.json is not a whole database manifest of copied/);
  // In an S3 repository with Object Lock: locked for its days from its finish, an hour's margin.
  const locked = await readRetentionCatalog([local], { verifier: ours.verifier, allowUnsigned: false, lockDays: { local: 30 } });
  expect(locked.catalog.backups[0].lockedUntil).toBe(Date.parse('2026-11-20T02:00:00Z') + 30 * 86_400_000 + 3_600_000);
  // With signing.required false, an unsigned one counts; a wrongly signed one never does.
  const lax = await readRetentionCatalog([local], { verifier: ours.verifier, allowUnsigned: true });
  expect(lax.catalog.backups.map((b) => b.backupId).sort()).toEqual(['good', 'unsigned']);
});

test('a folder without a manifest: a leftover where another repository has it, else the sweep\'s', async () => {
  const local = new MemoryRepository('local');
  const nas = new MemoryRepository('nas');
  planted(local, 'database', 'b1', signManifest(manifest('database', 'b1', '2026-11-20T02:00:00Z'), ours.signer));
  nas.set('database/b1/dump.pgcustom.zst.gpg', 'half a copy');
  nas.set('database/nobody/dump.pgcustom.zst.gpg', 'a run that died');
  const reading = await readRetentionCatalog([local, nas], { verifier: ours.verifier, allowUnsigned: false });
  expect(reading.catalog.backups).toContainEqual({ repository: 'nas', component: 'database', backupId: 'b1', complete: false, runClosed: true, at: Date.parse('2026-11-20T02:00:00Z') });
  expect(reading.forTheSweep).toEqual(['nas: database/nobody/ (no manifest in any repository)']);
});

test('a base backup says where its WAL starts only with its segment size; WAL is verified with both entry and object', async () => {
  const local = new MemoryRepository('local');
  const backup = { timeline: 2, startLsn: '1/B374D848', stopLsn: '1/C0000000', stoppedAt: '2026-11-20T02:00:00Z' };
  planted(local, 'base', 'sized', signManifest(manifest('base', 'sized', '2026-11-20T02:00:00Z', { server: { walSegmentBytes: 16 * 1024 * 1024 }, backup }), ours.signer));
  planted(local, 'base', 'old', signManifest(manifest('base', 'old', '2026-11-13T02:00:00Z', { server: {}, backup }), ours.signer));
  local.set('wal/0000000200000001000000B3.json', '{}').set('wal/0000000200000001000000B3.zst.gpg', 'x');
  local.set('wal/0000000200000001000000B4.zst.gpg', 'object, no entry yet');
  local.set('wal/00000002.history.json', '{}').set('wal/00000002.history.zst.gpg', 'x');
  local.set('wal/README', 'not ours');
  const reading = await readRetentionCatalog([local], { verifier: ours.verifier, allowUnsigned: false, spool: 'local' });
  expect(reading.catalog.backups.find((b) => b.backupId === 'sized')!.walStart).toBe('0000000200000001000000B3');
  expect(reading.catalog.backups.find((b) => b.backupId === 'old')!.walStart).toBeUndefined();
  expect(reading.catalog.wal).toEqual([
    { repository: 'local', name: '00000002.history', verified: true },
    { repository: 'local', name: '0000000200000001000000B3', verified: true },
    { repository: 'local', name: '0000000200000001000000B4', verified: false },
  ]);
  expect(reading.catalog.spool).toBe('local');
  expect(reading.contents[0].notes).toEqual(['wal/README: not a WAL file\'s entry or object; left alone']);
});

test('a repository that cannot be listed is reported and left out; the others are read', async () => {
  const local = new MemoryRepository('local');
  const s3 = new MemoryRepository('s3');
  s3.failing = new Error('connect ECONNREFUSED 127.0.0.1:8333');
  planted(local, 'database', 'b1', signManifest(manifest('database', 'b1', '2026-11-20T02:00:00Z'), ours.signer));
  const reading = await readRetentionCatalog([local, s3], { verifier: ours.verifier, allowUnsigned: false });
  expect(reading.unreachable).toEqual([{ repository: 's3', reason: expect.stringContaining('ECONNREFUSED') }]);
  expect(reading.contents.map((c) => c.repository)).toEqual(['local']);
  expect(reading.catalog.backups).toHaveLength(1);
});

describe('manifests read before, kept by the worker (engine/manifestCache.ts)', () => {
  test('an unchanged manifest is not read again; one written again is, and is judged afresh', async () => {
    const s3 = new MemoryRepository('s3');
    for (const id of ['b1', 'b2', 'b3']) planted(s3, 'database', id, signManifest(manifest('database', id, '2026-11-20T02:00:00Z'), ours.signer));
    const cache = new ManifestCache();
    const options = { verifier: ours.verifier, allowUnsigned: false, manifestCache: cache };
    const first = await readRetentionCatalog([s3], options);
    expect(s3.read.sort()).toEqual(['database/b1/manifest.json', 'database/b2/manifest.json', 'database/b3/manifest.json']);
    s3.read.length = 0;
    const again = await readRetentionCatalog([s3], options);
    expect(s3.read).toEqual([]);
    expect(again.catalog).toEqual(first.catalog);
    // b2's manifest replaced by an unsigned one: read again, and refused.
    s3.set('database/b2/manifest.json', manifest('database', 'b2', '2026-11-21T02:00:00Z'));
    const third = await readRetentionCatalog([s3], options);
    expect(s3.read).toEqual(['database/b2/manifest.json']);
    expect(third.catalog.backups.map((b) => b.backupId)).toEqual(['b1', 'b3']);
    expect(third.contents[0].notes.join('\n')).toMatch(/b2\/manifest.json is not signed/);
    // Without the objects it names, a cached manifest counts no more than a read one.
    s3.objects.delete('database/b3/dump.pgcustom.zst.gpg');
    s3.read.length = 0;
    const fourth = await readRetentionCatalog([s3], options);
    expect(s3.read).toEqual([]);
    expect(fourth.catalog.backups.map((b) => b.backupId)).toEqual(['b1']);
  });

  test('kept only when the text is what the listed version (a plain ETag, its MD5) names', () => {
    const cache = new ManifestCache();
    const body = '{"backupId":"b1"}';
    const md5 = createHash('md5').update(body).digest('hex');
    cache.set('s3://bucket', 'database/b1/manifest.json', `"${md5}"`, '{"backupId":"not what was listed"}');
    expect(cache.size).toBe(0);
    cache.set('s3://bucket', 'database/b1/manifest.json', `"${md5}-2"`, body);
    cache.set('s3://bucket', 'database/b1/manifest.json', undefined, body);
    expect(cache.size).toBe(0);
    cache.set('s3://bucket', 'database/b1/manifest.json', `"${md5}"`, body);
    expect(cache.get('s3://bucket', 'database/b1/manifest.json', `"${md5}"`)).toBe(body);
    expect(cache.get('s3://other', 'database/b1/manifest.json', `"${md5}"`)).toBeUndefined();
    expect(cache.get('s3://bucket', 'database/b2/manifest.json', `"${md5}"`)).toBeUndefined();
    expect(cache.get('s3://bucket', 'database/b1/manifest.json', `"${'0'.repeat(32)}"`)).toBeUndefined();
  });

  test('bounded: the least recently used goes first', () => {
    // Each entry costs its text, its key and some bookkeeping (about 140 bytes here): two fit.
    const cache = new ManifestCache(300);
    const put = (key: string, body: string) => cache.set('s3', key, createHash('md5').update(body).digest('hex'), body);
    const got = (key: string, body: string) => cache.get('s3', key, createHash('md5').update(body).digest('hex'));
    put('a', 'x'.repeat(40));
    put('b', 'y'.repeat(40));
    expect(got('a', 'x'.repeat(40))).toBeDefined();
    put('c', 'z'.repeat(40));
    expect(got('b', 'y'.repeat(40))).toBeUndefined();
    expect(got('a', 'x'.repeat(40))).toBeDefined();
    expect(got('c', 'z'.repeat(40))).toBeDefined();
    put('huge', 'h'.repeat(300));
    expect(cache.size).toBe(2);
  });
});
