// status: PostgreSQL's archive queue becomes a problem when archiving fails or falls behind,
// by count (pg_wal grows) or by age (the RPO grows), and not before.
import { walQueueProblems, type StatusReport } from '../../client/commands/status.js';

const archiver = { archivedCount: 10, lastArchivedWal: '00000001000000000000000A', lastArchivedTime: '2026-11-29T00:00:10.000Z', failedCount: 0, lastFailedWal: null, lastFailedTime: null };
const queue = (ready: number, oldestReadySeconds: number | null, failing = false): StatusReport['walQueue'] => ({
  ready,
  oldestReadyAt: oldestReadySeconds === null ? null : '2026-11-29T00:00:00.000Z',
  oldestReadySeconds,
  archiver: failing ? { ...archiver, failedCount: 1, lastFailedWal: '00000001000000000000000B', lastFailedTime: '2026-11-29T00:00:20.000Z' } : archiver,
  failing,
});

test('a short, young queue is no problem', () => {
  expect(walQueueProblems(queue(0, null), 32)).toEqual([]);
  expect(walQueueProblems(queue(32, 300), 32)).toEqual([]);
  expect(walQueueProblems(null, 32)).toEqual([]);
});

test('more files than the limit, or a file older than 300 s, is a problem naming both', () => {
  expect(walQueueProblems(queue(33, 5), 32)).toEqual([expect.stringMatching(/^WAL archiving is behind: 33 WAL file\(s\) wait in pg_wal.*\(5 s\).*limit 32 files, 300 s/)]);
  expect(walQueueProblems(queue(2, 301), 32)).toEqual([expect.stringMatching(/^WAL archiving is behind: 2 WAL file\(s\).*\(301 s\)/)]);
});

test('a failing archive_command is a problem of its own, naming the file', () => {
  expect(walQueueProblems(queue(1, 3, true), 32)).toEqual([expect.stringMatching(/^archive_command is failing: 00000001000000000000000B failed at 2026-11-29T00:00:20.000Z/)]);
});

test('a queue that cannot be read is a problem saying why', () => {
  expect(walQueueProblems({ error: 'permission denied for function pg_ls_archive_statusdir' }, 32)).toEqual([
    expect.stringMatching(/cannot be read: permission denied .*pg_monitor/),
  ]);
});
