// Attack on the pruning of aa43494 (engine/prune.ts, engine/manifestCache.ts): what a prune
// leaves when some deletions fail, what the worker's manifest cache keeps, and what a pruned
// marker proves. MemoryRepository stands in for a repository; its removeMany is made to refuse
// chosen keys, as S3's DeleteObjects answers per key (AccessDenied) and a folder answers EACCES.
import { reportOf } from '../fixtures/retentionReport.js';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createCopyAuditActivities } from '../../activities/copyAudit.js';
import type { Config } from '../../common/config.js';
import type { CopyAudit } from '../../common/restoreTypes.js';
import type { StoredObject } from '../../common/types.js';
import { ManifestCache } from '../../engine/manifestCache.js';
import { applyReport, buildReport, prunedMarkerKey, type RetentionReportFile } from '../../engine/prune.js';
import { decideRetention, type RetentionPolicy } from '../../engine/retention.js';
import { readRetentionCatalog } from '../../engine/retentionCatalog.js';
import type { RemoveManyResult } from '../../engine/storage/repository.js';
import { MemoryRepository } from '../fixtures/memoryRepository.js';

const SEG = '000000010000000000000005';

const report = (backups: RetentionReportFile['backups'], walDelete: string[]) => reportOf(backups, { repository: 'nas', keepFrom: '000000010000000000000009', delete: walDelete });

/** A repository whose batch removal refuses `refused` keys (each reported, the rest removed). */
function refusing(name: string, refused: Set<string>): MemoryRepository {
  const repo = new MemoryRepository(name);
  (repo as MemoryRepository & { removeMany(keys: string[]): Promise<RemoveManyResult> }).removeMany = async (keys: string[]) => {
    const failed: RemoveManyResult['failed'] = [];
    for (const key of keys) {
      if (refused.has(key)) failed.push({ key, reason: 'AccessDenied' });
      else repo.objects.delete(key);
    }
    return { failed };
  };
  return repo;
}

describe('a manifest or WAL entry that could not be deleted: the objects it names stay', () => {
  test('a backup whose manifest deletion was refused keeps its objects (and gets no pruned marker)', async () => {
    const manifest = 'database/b1/manifest.json';
    const nas = refusing('nas', new Set([manifest]));
    nas.set(manifest, '{}').set('database/b1/dump.pgcustom.zst.gpg', 'dump').set('database/b2/manifest.json', '{}').set('database/b2/dump.pgcustom.zst.gpg', 'dump');
    const result = await applyReport(
      nas,
      report(
        [
          { repository: 'nas', component: 'database', backupId: 'b1', action: 'delete', reasons: ['r'], bytes: 6 },
          { repository: 'nas', component: 'database', backupId: 'b2', action: 'delete', reasons: ['r'], bytes: 6 },
          { repository: 's3', component: 'database', backupId: 'b1', action: 'keep', reasons: ['monthly'], bytes: 6 },
        ],
        [],
      ),
    );
    expect(result.backups).toMatchObject({ deleted: 1, failed: 1 });
    // The manifest stays, so every object it names must stay: a manifest naming an object gone
    // is a copy that looks whole (listed, signed) and cannot be restored.
    expect(nas.objects.has(manifest)).toBe(true);
    expect(nas.objects.has('database/b1/dump.pgcustom.zst.gpg')).toBe(true);
    // A marker would say the copy was let go while its manifest still stands.
    expect(nas.objects.has(prunedMarkerKey('database', 'b1'))).toBe(false);
    // The other backup went whole.
    expect([...nas.objects.keys()].filter((k) => k.startsWith('database/b2/'))).toEqual([]);
  });

  test('a WAL segment whose entry deletion was refused keeps its object', async () => {
    const entry = `wal/${SEG}.json`;
    const nas = refusing('nas', new Set([entry]));
    const other = '000000010000000000000004';
    nas.set(entry, '{}').set(`wal/${SEG}.zst.gpg`, 'seg').set(`wal/${other}.json`, '{}').set(`wal/${other}.zst.gpg`, 'seg');
    const result = await applyReport(nas, report([], [other, SEG]));
    expect(result.wal).toMatchObject({ deleted: 1, failed: 1 });
    // The entry says the segment is stored whole: its object must still be there.
    expect(nas.objects.has(entry)).toBe(true);
    expect(nas.objects.has(`wal/${SEG}.zst.gpg`)).toBe(true);
    expect([...nas.objects.keys()].filter((k) => k.includes(other))).toEqual([]);
  });
});

describe('a pruned marker planted where the audit admits unsigned manifests', () => {
  test('hosts sign (a trusted key is configured): an unsigned marker does not hide a lost copy, even in an audit run with allowUnsigned', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'attack-retention2-'));
    try {
      const { publicKey } = generateKeyPairSync('ed25519');
      const pub = path.join(dir, 'signing.pub');
      writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
      const config = { host: 'verifier', signing: { publicKeyFiles: [pub], required: false } } as unknown as Config;
      const dump = Buffer.from('dump of old');
      const object: StoredObject = { role: 'dump', key: 'database/old/dump.pgcustom.zst.gpg', bytes: dump.length, plainBytes: dump.length, sha256: createHash('sha256').update(dump).digest('hex') };
      // A backup made before backups were signed: its manifest in s3 lists a copy in nas.
      const s3 = new MemoryRepository('s3');
      s3.set('database/old/manifest.json', { formatVersion: 1, backupId: 'old', component: 'database', objects: [object], copies: [{ repository: 'nas' }, { repository: 's3' }] });
      s3.objects.set(object.key, dump);
      // Whoever can write to nas deleted its copy and left a marker no host signed.
      const nas = new MemoryRepository('nas');
      nas.set(prunedMarkerKey('database', 'old'), { component: 'database', backupId: 'old', repository: 'nas', reportId: 'r1', decidedAt: '2026-11-29T00:00:00Z', reasons: ['planted'] });
      const audit = createCopyAuditActivities({ config, repositories: [nas, s3] });
      const result = (await new MockActivityEnvironment().run(audit.auditBackupCopies, { backupId: 'old', objects: [object], allowUnsigned: true })) as CopyAudit;
      expect(result.pruned ?? []).toEqual([]);
      expect(result.damaged).toEqual(['nas']);
      // Where no host signs (no key trusted), the prune's unsigned marker is the proof: no false alarm.
      const unsignedEverywhere = createCopyAuditActivities({ config: { ...config, signing: { publicKeyFiles: [], required: false } } as Config, repositories: [nas, s3] });
      const again = (await new MockActivityEnvironment().run(unsignedEverywhere.auditBackupCopies, { backupId: 'old', objects: [object], allowUnsigned: true })) as CopyAudit;
      expect(again.pruned).toEqual(['nas']);
      expect(again.damaged).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the worker\'s manifest cache', () => {
  test('is bounded in entries too: manifests planted empty (no text to count) do not pile up night after night', () => {
    const cache = new ManifestCache(64 * 1024);
    const empty = createHash('md5').update('').digest('hex');
    for (let night = 0; night < 20; night++) {
      for (let i = 0; i < 5000; i++) cache.set('s3://bucket/prefix', `database/planted-${night}-${i}/manifest.json`, `"${empty}"`, '');
    }
    // 100,000 keys of about 60 characters each: far more than 64 KiB held as keys.
    expect(cache.size).toBeLessThan(2000);
  });
});

describe('a copy whose manifest vanished is not pruned by retention: no marker launders its loss', () => {
  test('the manifest of the newest backup deleted in nas: retention removes the leftover after the grace period, and writes no pruned marker (the copy audit still reports the copy lost)', async () => {
    const DAY = 86_400_000;
    const now = Date.UTC(2026, 10, 29, 12);
    const id = '20261120_120000-aaaaaaaa';
    const finishedAt = new Date(now - 9 * DAY).toISOString();
    const dump = `database/${id}/dump.pgcustom.zst.gpg`;
    const manifest = { formatVersion: 1, backupId: id, component: 'database', finishedAt, objects: [{ key: dump, bytes: 4 }], copies: [{ repository: 'nas' }, { repository: 's3' }] };
    const nas = new MemoryRepository('nas');
    const s3 = new MemoryRepository('s3');
    for (const repo of [nas, s3]) repo.set(dump, 'dump').set(`database/${id}/manifest.json`, manifest);
    // Whoever can delete in nas deletes the manifest there (or the NAS loses that file).
    nas.objects.delete(`database/${id}/manifest.json`);
    const reading = await readRetentionCatalog([nas, s3], { verifier: { keys: [], host: 't' }, allowUnsigned: true, now });
    const policy: RetentionPolicy = { timezone: 'UTC', ruleFor: () => ({ daily: 7 }), leftoverGraceMs: 2 * DAY };
    const decision = decideRetention(reading.catalog, policy, now, ['nas', 's3']);
    // The policy keeps the backup (the newest, in s3); what is left in nas goes as a leftover.
    expect(decision.backups.find((b) => b.repository === 's3')).toMatchObject({ action: 'keep' });
    expect(decision.backups.find((b) => b.repository === 'nas')).toMatchObject({ action: 'delete' });
    const report = buildReport({ reportId: 'r1', workflowId: 'w', runId: 'run', dryRun: false, timezone: 'UTC', scope: {} }, reading, decision);
    await applyReport(nas, report);
    expect(nas.objects.has(dump)).toBe(false);
    // No marker: the copy was not let go by the policy, it was lost.
    expect(nas.objects.has(prunedMarkerKey('database', id))).toBe(false);
  });
});
