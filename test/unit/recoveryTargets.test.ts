// Recovery targets against the recoverable window: the rules the workflow's signal and update
// handlers apply, and the base backup each target starts from.
import { segmentEndLsn, segmentOf } from '../../activities/pitr.js';
import type { RecoverableWindow } from '../../common/pitrTypes.js';
import { checkTarget, lsnValue } from '../../workflows/recoveryTargets.js';

const window: RecoverableWindow = {
  baseBackups: [
    { backupId: 'base-1', timeline: 1, startLsn: '0/2000028', stopLsn: '0/2000100', stoppedAt: '2026-11-20T02:00:00.000Z' },
    { backupId: 'base-2', timeline: 1, startLsn: '0/9000028', stopLsn: '0/9000100', stoppedAt: '2026-11-25T02:00:00.000Z' },
  ],
  earliest: '2026-11-20T02:00:00.000Z',
  latest: '2026-11-26T12:00:00.000Z',
  newestSegment: '00000001000000000000000C',
  latestLsn: '0/D000000',
};

test.each([
  ['2026-11-22T10:00:00Z', 'base-1', '2026-11-22 10:00:00.000+00'],
  ['2026-11-26T11:00:00+01:00', 'base-2', '2026-11-26 10:00:00.000+00'],
  ['2026-11-25 03:00:00.5-02', 'base-2', '2026-11-25 05:00:00.500+00'],
])('time %s starts from %s, normalised to UTC', (value, base, normalised) => {
  const verdict = checkTarget({ kind: 'time', value }, window);
  expect(verdict).toEqual({ ok: true, target: { kind: 'time', value: normalised }, base: expect.objectContaining({ backupId: base }) });
});

test.each([
  ['2026-11-26T10:00:00', /explicit zone/],
  ['next tuesday', /not an ISO 8601 time/],
  ['2026-11-19T00:00:00Z', /before the end of the oldest base backup; the recoverable window is 2026-11-20T02:00:00.000Z \.\. 2026-11-26T12:00:00.000Z/],
  ['2026-11-26T12:00:01Z', /after the newest archived WAL/],
  ['2026-02-30T00:00:00Z', /./],
])('time %s is rejected', (value, reason) => {
  const verdict = checkTarget({ kind: 'time', value }, window);
  expect(verdict.ok).toBe(false);
  if (!verdict.ok) expect(verdict.reason).toMatch(reason);
});

test('LSN targets: inside the archive, after a base backup', () => {
  expect(checkTarget({ kind: 'lsn', value: '0/a000000' }, window)).toMatchObject({ ok: true, target: { value: '0/A000000' }, base: { backupId: 'base-2' } });
  expect(checkTarget({ kind: 'lsn', value: '0/5000000' }, window)).toMatchObject({ ok: true, base: { backupId: 'base-1' } });
  expect(checkTarget({ kind: 'lsn', value: '0/1000000' }, window)).toMatchObject({ ok: false, reason: expect.stringContaining('before the end of the oldest') });
  expect(checkTarget({ kind: 'lsn', value: '0/E000000' }, window)).toMatchObject({ ok: false, reason: expect.stringContaining('past the archived WAL') });
  expect(checkTarget({ kind: 'lsn', value: 'zz' }, window)).toMatchObject({ ok: false });
});

test('xid and restore point targets start from the oldest base backup; shapes are checked', () => {
  expect(checkTarget({ kind: 'xid', value: '1234' }, window)).toMatchObject({ ok: true, base: { backupId: 'base-1' } });
  expect(checkTarget({ kind: 'name', value: 'before-upgrade' }, window)).toMatchObject({ ok: true, base: { backupId: 'base-1' } });
  expect(checkTarget({ kind: 'xid', value: '-1' }, window)).toMatchObject({ ok: false });
  expect(checkTarget({ kind: 'name', value: 'x'.repeat(64) }, window)).toMatchObject({ ok: false });
  expect(checkTarget({ kind: 'when', value: 'x' }, window)).toMatchObject({ ok: false });
  expect(checkTarget({ kind: 'time', value: '2026-11-22T10:00:00Z' }, { ...window, baseBackups: [] })).toMatchObject({ ok: false, reason: expect.stringContaining('no base backup') });
});

test('the segment holding an LSN', () => {
  expect(segmentOf(1, '0/2000028')).toBe('000000010000000000000002');
  expect(segmentOf(3, '1A/FF000000')).toBe('000000030000001A000000FF');
});

test('the end of a segment as an LSN', () => {
  expect(segmentEndLsn('00000001000000000000000C')).toBe('0/D000000');
  expect(segmentEndLsn('0000000100000002000000FF')).toBe('3/0');
  expect(lsnValue('1/0')).toBe(0x100000000n);
});
