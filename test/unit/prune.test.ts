// Carrying out a report (engine/prune.ts), and the markers it leaves. The WAL listing stops after the last segment that
// goes, and still finds every file of every segment that goes (its entry and object, its
// .partial, a .backup file whose name extends the segment's, sorting before or after it).
import { reportOf } from '../fixtures/retentionReport.js';
import { generateKeyPairSync } from 'node:crypto';
import { keyIdOf, signManifest } from '../../engine/manifestSignature.js';
import { applyReport, prunedHere, prunedMarkerKey } from '../../engine/prune.js';
import { MemoryRepository } from '../fixtures/memoryRepository.js';

const X = '000000010000000000000005';
const Y = '000000010000000000000006';
const KEEP = '000000010000000000000007';

const report = (deleteNames: string[]) => reportOf([], { repository: 's3', keepFrom: KEEP, delete: deleteNames });

test('every file of every segment that goes is deleted; the listing stops past the last of them', async () => {
  const s3 = new MemoryRepository('s3');
  const files = (name: string) => [`wal/${name}.json`, `wal/${name}.zst.gpg`];
  const doomed = [X, `${X}.00000028.backup`, Y, `${Y}.partial`];
  for (const name of doomed) for (const key of files(name)) s3.set(key, 'x');
  for (const name of [KEEP, `${KEEP}.00000028.backup`, '00000002.history']) for (const key of files(name)) s3.set(key, 'x');
  const listed: string[] = [];
  const list = s3.list.bind(s3);
  s3.list = async (prefix, options) => {
    const found = await list(prefix, options);
    listed.push(...found.map((o) => o.key));
    return found;
  };
  const result = await applyReport(s3, report(doomed));
  expect(result.wal).toMatchObject({ deleted: 4, failed: 0 });
  expect([...s3.objects.keys()].sort()).toEqual([...files(KEEP), ...files(`${KEEP}.00000028.backup`), ...files('00000002.history')].sort());
  for (const name of doomed) for (const key of files(name)) expect(s3.objects.has(key)).toBe(false);
  // What stays above the last segment that goes was never listed.
  expect(listed.filter((k) => k.includes(KEEP) || k.includes('history'))).toEqual([]);
});

describe('pruned markers: the copy audit takes one as proof only when it is trusted as a manifest is', () => {
  const keyPair = () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    return { signer: { keyId: keyIdOf(publicKey), privateKey }, verifier: { keys: [{ keyId: keyIdOf(publicKey), publicKey, file: 'test.pub' }], host: 'test' } };
  };
  const ours = keyPair();
  const theirs = keyPair();
  const marker = { component: 'database', backupId: 'b1', repository: 'nas', reportId: 'r1', decidedAt: '2026-11-29T00:00:00Z', reasons: ['complete, and kept by no rule of the policy'] };

  test('a prune signs the markers it writes; the audit admits them', async () => {
    const nas = new MemoryRepository('nas');
    nas.set('database/b1/manifest.json', '{}').set('database/b1/dump.pgcustom.zst.gpg', 'x');
    const r = report([]);
    r.wal = [];
    r.backups = [
      { repository: 'nas', component: 'database', backupId: 'b1', action: 'delete', reasons: marker.reasons, bytes: 3 },
      { repository: 's3', component: 'database', backupId: 'b1', action: 'keep', reasons: ['monthly 2026-11'], bytes: 3 },
    ];
    await applyReport(nas, r, { signer: ours.signer });
    expect([...nas.objects.keys()]).toEqual([prunedMarkerKey('database', 'b1')]);
    expect(await prunedHere(nas, 'database', 'b1', { verifier: ours.verifier, allowUnsigned: false })).toBe(true);
    expect(await prunedHere(nas, 'database', 'b1', { verifier: theirs.verifier, allowUnsigned: true })).toBe(false);
  });

  test('planted, forged, copied from another backup or repository, damaged or absent: no proof', async () => {
    const trust = { verifier: ours.verifier, allowUnsigned: false };
    const nas = new MemoryRepository('nas');
    const at = (value: unknown) => nas.set(prunedMarkerKey('database', 'b1'), value);
    at(marker);
    expect(await prunedHere(nas, 'database', 'b1', trust)).toBe(false);
    expect(await prunedHere(nas, 'database', 'b1', { ...trust, allowUnsigned: true })).toBe(true);
    at(signManifest(marker, theirs.signer));
    expect(await prunedHere(nas, 'database', 'b1', { ...trust, allowUnsigned: true })).toBe(false);
    at(signManifest({ ...marker, repository: 's3' }, ours.signer));
    expect(await prunedHere(nas, 'database', 'b1', trust)).toBe(false);
    at(signManifest({ ...marker, backupId: 'b2' }, ours.signer));
    expect(await prunedHere(nas, 'database', 'b1', trust)).toBe(false);
    at('{"component": "datab');
    expect(await prunedHere(nas, 'database', 'b1', trust)).toBe(false);
    nas.objects.clear();
    expect(await prunedHere(nas, 'database', 'b1', trust)).toBe(false);
    at(signManifest(marker, ours.signer));
    expect(await prunedHere(nas, 'database', 'b1', trust)).toBe(true);
  });
});
