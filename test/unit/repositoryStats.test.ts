// engine/repositoryStats.ts: the growth rate and days-until-full arithmetic at its edges (no
// growth, no free space, unknown free space), the binary search for the WAL archived in the
// growth window (and how few entries it reads), and one repository's statistics from in-memory
// objects: counts, bytes, oldest/newest, the window it alone supports, an unreachable one.
import { generateKeyPairSync } from 'node:crypto';
import { daysUntilFull, growthRate, recentWalBytes, repositoryStats, walNameOfKey, GROWTH_WINDOW_DAYS, type ReachableRepositoryStats } from '../../engine/repositoryStats.js';
import { manifestKey } from '../../engine/catalog.js';
import { keyIdOf, signManifest, type Signer, type Verifier } from '../../engine/manifestSignature.js';
import { walEntryKey } from '../../engine/walArchive.js';
import { MemoryRepository } from '../fixtures/memoryRepository.js';

const NOW = Date.parse('2026-11-26T12:00:00.000Z');
const HOUR = 3600_000;
const DAY = 24 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

describe('growth rate and days until full', () => {
  test('the rate is the bytes of the window spread over its days', () => {
    expect(growthRate(7000)).toBe(1000);
    expect(growthRate(7000, 7)).toBe(1000);
    expect(growthRate(300, 3)).toBe(100);
    expect(GROWTH_WINDOW_DAYS).toBe(7);
  });

  test('nothing stored: no growth; a window of no days is refused', () => {
    expect(growthRate(0)).toBe(0);
    expect(() => growthRate(10, 0)).toThrow(/must be positive/);
  });

  test('days until full is free / rate', () => {
    expect(daysUntilFull(10_000, 1000)).toBe(10);
    expect(daysUntilFull(1500, 1000)).toBe(1.5);
  });

  test('no growth: never full at this rate (undefined), however little is free', () => {
    expect(daysUntilFull(10_000, 0)).toBeUndefined();
    expect(daysUntilFull(1, 0)).toBeUndefined();
    expect(daysUntilFull(10_000, null)).toBeUndefined();
  });

  test('nothing free: full now (0 days), growing or not', () => {
    expect(daysUntilFull(0, 1000)).toBe(0);
    expect(daysUntilFull(0, 0)).toBe(0);
  });

  test('free space unknown (an S3 repository): undefined', () => {
    expect(daysUntilFull(undefined, 1000)).toBeUndefined();
    expect(daysUntilFull(null, 1000)).toBeUndefined();
  });
});

describe('the WAL archived in the growth window', () => {
  const names = Array.from({ length: 1000 }, (_, i) => `00000001000000${(i >> 8).toString(16).toUpperCase().padStart(2, '0')}000000${(i & 0xff).toString(16).toUpperCase().padStart(2, '0')}`);
  const bytesOf = new Map(names.map((n) => [n, 100]));
  // One file an hour, the newest an hour ago.
  const times = names.map((_, i) => NOW - (names.length - i) * HOUR);

  test('the bytes of the files archived after the start, found in about log2(n) reads', async () => {
    const reads: number[] = [];
    const at = async (i: number) => {
      reads.push(i);
      return times[i];
    };
    // 7 days = 168 hours: the newest 167 files were archived after NOW - 168 h (the 168th exactly at it, not after).
    expect(await recentWalBytes(names, bytesOf, at, NOW - 7 * DAY)).toBe(167 * 100);
    expect(reads.length).toBeLessThanOrEqual(12);
  });

  test('all or nothing in the window', async () => {
    const at = async (i: number) => times[i];
    expect(await recentWalBytes(names, bytesOf, at, NOW - 2000 * HOUR)).toBe(1000 * 100);
    expect(await recentWalBytes(names, bytesOf, at, NOW)).toBe(0);
    expect(await recentWalBytes([], new Map(), at, NOW)).toBe(0);
  });

  test('an unreadable entry is stepped over, not taken as a boundary', async () => {
    const unreadable = new Set([833, 834, 835, 900, 999]);
    const at = async (i: number) => (unreadable.has(i) ? NaN : times[i]);
    expect(await recentWalBytes(names, bytesOf, at, NOW - 7 * DAY)).toBe(167 * 100);
  });

  test('names of entries and objects', () => {
    expect(walNameOfKey('wal/000000010000000000000003.json')).toBe('000000010000000000000003');
    expect(walNameOfKey('wal/000000010000000000000003.zst.gpg')).toBe('000000010000000000000003');
    expect(walNameOfKey('wal/00000002.history.gz.gpg')).toBe('00000002.history');
    expect(walNameOfKey('wal/000000010000000000000003.partial.json')).toBe('000000010000000000000003.partial');
    expect(walNameOfKey('wal/stray.txt')).toBeUndefined();
  });
});

describe('one repository from its listing', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const signer: Signer = { keyId: keyIdOf(publicKey), privateKey };
  const verifier: Verifier = { keys: [{ keyId: signer.keyId, publicKey, file: 'test' }], host: 'db-1' };

  function database(r: MemoryRepository, backupId: string, finishedAt: number, dumpBytes: number) {
    r.set(`database/${backupId}/dump.pgcustom.zst.gpg`, 'x'.repeat(dumpBytes));
    const manifest = {
      formatVersion: 1,
      backupId,
      component: 'database',
      runId: 'run',
      startedAt: iso(finishedAt - 600_000),
      finishedAt: iso(finishedAt),
      compression: 'zstd',
      encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
      source: { database: 'app', systemIdentifier: '7', snapshotTakenAt: iso(finishedAt - 600_000) },
      rowCounts: {},
      objects: [{ role: 'dump', key: `database/${backupId}/dump.pgcustom.zst.gpg`, bytes: dumpBytes, sha256: 'a'.repeat(64) }],
    };
    r.set(manifestKey('database', backupId), signManifest(manifest, signer));
  }

  function base(r: MemoryRepository, backupId: string, stoppedAt: number, stopLsn: string, sign = true) {
    r.set(`base/${backupId}/base.tar.zst.gpg`, 'y'.repeat(50));
    const manifest = {
      formatVersion: 1,
      backupId,
      component: 'base',
      runId: 'run',
      startedAt: iso(stoppedAt - HOUR),
      finishedAt: iso(stoppedAt),
      compression: 'zstd',
      encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
      server: { systemIdentifier: '7', versionNum: 150008 },
      backup: { timeline: 1, startLsn: '0/1000028', stopLsn, stoppedAt: iso(stoppedAt) },
      objects: [{ role: 'base', key: `base/${backupId}/base.tar.zst.gpg`, bytes: 50, sha256: 'a'.repeat(64) }],
    };
    r.set(manifestKey('base', backupId), sign ? signManifest(manifest, signer) : manifest);
  }

  function wal(r: MemoryRepository, segment: string, archivedAt: number, bytes: number) {
    r.set(`wal/${segment}.zst.gpg`, 'w'.repeat(bytes));
    r.set(walEntryKey(segment), { segment, key: `wal/${segment}.zst.gpg`, compression: 'zstd', bytes, sha256: 'a'.repeat(64), plainBytes: 1, plainSha256: 'b'.repeat(64), archivedAt: iso(archivedAt) });
  }

  const size = (r: MemoryRepository, prefix: string) => [...r.objects].filter(([k]) => k.startsWith(prefix)).reduce((s, [, b]) => s + b.length, 0);

  test('counts, bytes, oldest and newest per component; recent bytes; the window', async () => {
    const local = new MemoryRepository('local');
    database(local, 'd-old', NOW - 20 * DAY, 1000);
    database(local, 'd-new', NOW - 1 * DAY, 3000);
    local.set('database/d-half/dump.pgcustom.zst.gpg', 'z'.repeat(400)); // a failed attempt: bytes, no backup
    base(local, 'b-unsigned', NOW - 30 * DAY, '0/1000100', false);
    base(local, 'b1', NOW - 10 * DAY, '0/2000100');
    wal(local, '000000010000000000000001', NOW - 30 * DAY, 100);
    wal(local, '000000010000000000000002', NOW - 10 * DAY, 100);
    wal(local, '000000010000000000000003', NOW - 2 * DAY, 200);
    wal(local, '000000010000000000000004', NOW - HOUR, 300);

    const [stats] = (await repositoryStats([local], { verifier, now: NOW })) as ReachableRepositoryStats[];
    expect(stats.reachable).toBe(true);
    const [db, bases, w] = stats.components;
    expect(db).toMatchObject({ component: 'database', count: 2, objects: 5, bytes: size(local, 'database/'), oldest: iso(NOW - 20 * DAY), newest: iso(NOW - DAY), damaged: 0 });
    // Only d-new finished in the last 7 days: its dump and its manifest.
    expect(db.recentBytes).toBe(size(local, 'database/d-new/'));
    expect(bases).toMatchObject({ component: 'base', count: 2, bytes: size(local, 'base/'), oldest: iso(NOW - 30 * DAY), newest: iso(NOW - 10 * DAY), recentBytes: 0 });
    expect(w).toMatchObject({ component: 'wal', count: 4, objects: 8, bytes: size(local, 'wal/'), oldest: '000000010000000000000001', newest: '000000010000000000000004' });
    expect(w.recentBytes).toBe(size(local, 'wal/000000010000000000000003') + size(local, 'wal/000000010000000000000004'));
    expect(stats.bytes).toBe(size(local, ''));
    expect(stats.growthBytesPerDay).toBe((db.recentBytes! + w.recentBytes!) / 7);
    // In memory: no filesystem to ask, so no free space and no projection.
    expect(stats.freeBytes).toBeNull();
    expect(stats.daysUntilFull).toBeNull();
    // The unsigned base backup is older, but no recovery starts from it.
    expect(stats.window).toMatchObject({ earliest: iso(NOW - 10 * DAY), latest: iso(NOW - HOUR), newestSegment: '000000010000000000000004' });
  });

  test('no window when the WAL ends before the oldest base backup stopped, or there is no WAL', async () => {
    const r = new MemoryRepository('r');
    base(r, 'b1', NOW - DAY, '0/5000100'); // stopped in segment ...05
    wal(r, '000000010000000000000004', NOW - 2 * DAY, 10);
    const [stats] = (await repositoryStats([r], { verifier, now: NOW })) as ReachableRepositoryStats[];
    expect(stats.window).toMatchObject({ earliest: null, latest: null, newestSegment: '000000010000000000000004' });
    const empty = new MemoryRepository('empty');
    const [none] = (await repositoryStats([empty], { verifier, now: NOW })) as ReachableRepositoryStats[];
    expect(none.components.map((c) => [c.count, c.bytes, c.oldest])).toEqual([
      [0, 0, null],
      [0, 0, null],
      [0, 0, null],
    ]);
    expect(none.growthBytesPerDay).toBe(0);
    expect(none.window).toMatchObject({ earliest: null, latest: null, newestSegment: null });
  });

  test('a repository that cannot be listed is unreachable with its reason; the others are shown', async () => {
    const good = new MemoryRepository('good');
    database(good, 'd1', NOW - DAY, 10);
    const bad = new MemoryRepository('bad');
    bad.failing = new Error('connect ECONNREFUSED 127.0.0.1:9');
    const stats = await repositoryStats([bad, good], { verifier, now: NOW });
    expect(stats[0]).toMatchObject({ repository: 'bad', reachable: false, error: expect.stringContaining('ECONNREFUSED') });
    expect(stats[1]).toMatchObject({ repository: 'good', reachable: true });
    expect((stats[1] as ReachableRepositoryStats).components[0].count).toBe(1);
  });
});
