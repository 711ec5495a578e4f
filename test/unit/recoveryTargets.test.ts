// Recovery targets against the recoverable window: the rules the workflow's signal and update
// handlers apply, and the base backup each target starts from.
import { segmentEndLsn, segmentOf } from '../../engine/walHeader.js';
import type { RecoverableWindow } from '../../common/pitrTypes.js';
import { checkTarget, lsnValue, targetFormProblem } from '../../workflows/recoveryTargets.js';

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

test('time targets at the bounds: the end of the oldest base backup is out, the newest archived WAL is in; a base backup counts once it has ended', () => {
  const at = (value: string) => checkTarget({ kind: 'time', value }, window);
  expect(at('2026-11-20T02:00:00.000Z')).toMatchObject({ ok: false, reason: expect.stringContaining('before the end of the oldest base backup') });
  expect(at('2026-11-20T02:00:00.001Z')).toMatchObject({ ok: true, base: { backupId: 'base-1' } });
  expect(at('2026-11-25T02:00:00.000Z')).toMatchObject({ ok: true, base: { backupId: 'base-1' } });
  expect(at('2026-11-25T02:00:00.001Z')).toMatchObject({ ok: true, base: { backupId: 'base-2' } });
  expect(at('2026-11-26T12:00:00.000Z')).toMatchObject({ ok: true, target: { value: '2026-11-26 12:00:00.000+00' } });
  expect(at('2026-11-26T12:00:00.001Z')).toMatchObject({ ok: false, reason: expect.stringContaining('after the newest archived WAL') });
  expect(checkTarget({ kind: 'time', value: '2026-11-22T10:00:00Z' }, { ...window, latest: null })).toMatchObject({ ok: false, reason: expect.stringContaining('(no archived WAL)') });
});

test("LSN targets at the bounds: a base backup's stop LSN is reachable from it; nothing past the end of the archived WAL is", () => {
  const at = (value: string) => checkTarget({ kind: 'lsn', value }, window);
  expect(at('0/20000FF')).toMatchObject({ ok: false, reason: expect.stringContaining('before the end of the oldest base backup (0/2000100)') });
  expect(at('0/2000100')).toMatchObject({ ok: true, base: { backupId: 'base-1' } });
  expect(at('0/90000FF')).toMatchObject({ ok: true, base: { backupId: 'base-1' } });
  expect(at('0/9000100')).toMatchObject({ ok: true, base: { backupId: 'base-2' } });
  expect(at('0/CFFFFFF')).toMatchObject({ ok: true, base: { backupId: 'base-2' } });
  expect(at('0/D000001')).toMatchObject({ ok: false, reason: expect.stringContaining('past the archived WAL (it ends at 0/D000000)') });
  // Numerically, not as text: 0/10000000 is past 0/D000000.
  expect(at('0/10000000')).toMatchObject({ ok: false, reason: expect.stringContaining('past the archived WAL') });
  expect(checkTarget({ kind: 'lsn', value: '0/5000000' }, { ...window, latestLsn: null })).toMatchObject({ ok: false, reason: expect.stringContaining('(it ends at nothing)') });
});

test.each([
  [{ kind: 'time', value: '2028-02-29T00:00:00Z' }, undefined],
  [{ kind: 'time', value: '2026-11-26T10:00Z' }, undefined],
  [{ kind: 'time', value: '2026-11-26T10:00:00.123456+05:30' }, undefined],
  [{ kind: 'time', value: '2026-11-26T10:00:00+0530' }, undefined],
  [{ kind: 'time', value: '2026-11-26T10:00:00-12' }, undefined],
  [{ kind: 'time', value: '2026-02-29T00:00:00Z' }, 'is not a valid time'],
  [{ kind: 'time', value: '2026-11-31T00:00:00Z' }, 'is not a valid time'],
  [{ kind: 'time', value: '2026-11-26T24:00:00Z' }, 'is not a valid time'],
  [{ kind: 'time', value: '2026-11-26T23:59:60Z' }, 'is not a valid time'],
  [{ kind: 'time', value: '2026-11-26T10:00:00+25:00' }, 'is not a valid time'],
  [{ kind: 'time', value: '2026-11-26T10:00:00.1234567Z' }, 'is not an ISO 8601 time with an explicit zone'],
  [{ kind: 'time', value: '1764151200' }, 'is not an ISO 8601 time with an explicit zone'],
  [{ kind: 'lsn', value: 'FFFFFFFF/FFFFFFFF' }, undefined],
  [{ kind: 'lsn', value: '0/123456789' }, 'is not an LSN such as 0/3000060'],
  [{ kind: 'lsn', value: '0x0/3000060' }, 'is not an LSN'],
  [{ kind: 'lsn', value: '0/3000060 ' }, 'is not an LSN'],
  [{ kind: 'xid', value: '4294967295' }, undefined],
  [{ kind: 'xid', value: '12345678901' }, 'is not a transaction id'],
  [{ kind: 'xid', value: '' }, 'is not a transaction id'],
  [{ kind: 'name', value: 'x'.repeat(63) }, undefined],
  [{ kind: 'name', value: '' }, 'a restore point name has 1 to 63 characters'],
  [null, 'a target is { kind: time | lsn | xid | name, value: string }'],
  [{ kind: 'time', value: 1764151200 }, 'a target is'],
  [{ kind: 'lsn' }, 'a target is'],
])('the form of %j: %s', (target, problem) => {
  const found = targetFormProblem(target);
  if (problem === undefined) expect(found).toBeUndefined();
  else expect(found).toContain(problem);
});
