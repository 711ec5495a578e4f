// Attack on the pruning of aa43494 (engine/prune.ts, engine/manifestCache.ts): what a prune
// leaves when some deletions fail, what the worker's manifest cache keeps, and what a pruned
// marker proves. MemoryRepository stands in for a repository; its removeMany is made to refuse
// chosen keys, as S3's DeleteObjects answers per key (AccessDenied) and a folder answers EACCES.
import { applyReport, prunedMarkerKey, type RetentionReportFile } from '../../engine/prune.js';
import type { RemoveManyResult } from '../../engine/storage/repository.js';
import { MemoryRepository } from '../fixtures/memoryRepository.js';

const SEG = '000000010000000000000005';

function report(backups: RetentionReportFile['backups'], walDelete: string[]): RetentionReportFile {
  return {
    formatVersion: 1,
    reportId: 'r1',
    workflowId: 'w',
    runId: 'run',
    dryRun: false,
    decidedAt: '2026-11-29T00:00:00Z',
    timezone: 'UTC',
    scope: {},
    unreachable: [],
    forTheSweep: [],
    notes: [],
    backups,
    wal: walDelete.length ? [{ repository: 'nas', keepFrom: '000000010000000000000009', delete: walDelete, unshipped: [], why: 'test', held: 0, bytesToFree: 0 } as unknown as RetentionReportFile['wal'][number]] : [],
  };
}

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
