// `backupctl status` (client/commands/storageStats.ts): a filesystem repository full now, or
// projected full within 14 days at the recent growth rate (a WAL spool growing while S3 is
// down), is a problem; later, never (no growth), or unknown (S3: no free space to measure) is not.
import { storageLines } from '../../client/commands/storageStats.js';
import { storageIssues, STORAGE_FULL_WITHIN_DAYS } from '../../engine/health.js';

const storageProblems = (stats: Parameters<typeof storageIssues>[0]) => storageIssues(stats).map((p) => p.message);
import type { ReachableRepositoryStats, RepositoryStats } from '../../engine/repositoryStats.js';

const GiB = 1024 ** 3;

function spool(freeBytes: number | null, growthBytesPerDay: number | null, daysUntilFull: number | null): ReachableRepositoryStats {
  return {
    repository: 'spool',
    kind: 'filesystem',
    location: '/var/lib/backupctl/spool',
    reachable: true,
    components: [{ component: 'wal', count: 10, objects: 20, bytes: 10 * GiB, oldest: '000000010000000000000001', newest: '00000001000000000000000A', damaged: 0, recentBytes: 7 * GiB }],
    bytes: 10 * GiB,
    freeBytes,
    totalBytes: freeBytes === null ? null : 100 * GiB,
    growthBytesPerDay,
    daysUntilFull,
    window: { earliest: null, latest: null, newestSegment: '00000001000000000000000A', note: 'from listing' },
  };
}

test('full within the bound: a problem naming the repository, the days, the free space and the rate', () => {
  expect(STORAGE_FULL_WITHIN_DAYS).toBe(14);
  expect(storageProblems([spool(13 * GiB, GiB, 13)])).toEqual(['repository spool (/var/lib/backupctl/spool) is full in 13.0 days: 13.0 GiB free, growing 1.0 GiB/day (the last 7 days)']);
});

test('at the bound and later, with no growth, or on S3: no problem', () => {
  expect(storageProblems([spool(14 * GiB, GiB, 14)])).toEqual([]);
  expect(storageProblems([spool(GiB, 0, null)])).toEqual([]);
  expect(storageProblems([spool(null, GiB, null)])).toEqual([]);
  const unreachable: RepositoryStats = { repository: 'offsite', kind: 's3', location: 's3://b/', reachable: false, error: 'connect ECONNREFUSED' };
  expect(storageProblems([unreachable])).toEqual([]);
});

test('nothing free: FULL', () => {
  expect(storageProblems([spool(0, GiB, 0)])).toEqual(['repository spool (/var/lib/backupctl/spool) is FULL: no space left on its filesystem']);
  expect(storageLines([spool(0, GiB, 0)]).at(-1)).toContain('growing 1.0 GiB/day: FULL;');
});

test('the summary line: days, or none without growth, or S3 not measured', () => {
  expect(storageLines([spool(13 * GiB, GiB, 13)]).at(-1)).toBe('  spool: 10.0 GiB stored, 13.0 GiB free of 100.0 GiB, growing 1.0 GiB/day: full in 13.0 days; no point-in-time window here');
  expect(storageLines([spool(13 * GiB, 0, null)]).at(-1)).toBe('  spool: 10.0 GiB stored, 13.0 GiB free of 100.0 GiB, growing 0 B/day; no point-in-time window here');
  expect(storageLines([{ ...spool(null, GiB, null), kind: 's3' }]).at(-1)).toContain('free space not measured (S3)');
});
