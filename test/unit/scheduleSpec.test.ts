// A cron line against the calendar the server compiled it into (shapes as a Temporal 1.32 dev
// server's describe() returns them): the same times in any spelling match, any other time or
// zone does not, and a line we cannot expand never matches.
import type { CalendarSpecDescription as Calendar, ScheduleSpecDescription } from '@temporalio/client';
import { specMatchesCron } from '../../client/scheduleSpec.js';

const r = <T>(start: T, end: T = start, step = 1) => ({ start, end, step });
const calendar = (over: Partial<Calendar> = {}): Calendar =>
  ({
    second: [r(0)],
    minute: [r(0)],
    hour: [r(2)],
    dayOfMonth: [r(1, 31)],
    month: [r('JANUARY', 'DECEMBER')],
    year: [],
    dayOfWeek: [r('SUNDAY', 'SATURDAY')],
    comment: '',
    ...over,
  }) as Calendar;
const spec = (calendars: Calendar[], over: Partial<ScheduleSpecDescription> = {}): ScheduleSpecDescription =>
  ({ calendars, intervals: [], skip: [], timezone: '', ...over }) as ScheduleSpecDescription;

test('the nightly line as the server stores it matches, in UTC whether the zone is named or not', () => {
  expect(specMatchesCron(spec([calendar()]), '0 2 * * *', 'UTC')).toBe(true);
  expect(specMatchesCron(spec([calendar()], { timezone: 'UTC' }), '0 2 * * *', 'UTC')).toBe(true);
  expect(specMatchesCron(spec([calendar()], { timezone: 'Europe/Berlin' }), '0 2 * * *', 'Europe/Berlin')).toBe(true);
});

test('another time or zone does not match', () => {
  expect(specMatchesCron(spec([calendar()]), '0 3 * * *', 'UTC')).toBe(false);
  expect(specMatchesCron(spec([calendar()]), '5 2 * * *', 'UTC')).toBe(false);
  expect(specMatchesCron(spec([calendar()]), '0 2 * * 0', 'UTC')).toBe(false);
  expect(specMatchesCron(spec([calendar()], { timezone: 'Europe/Berlin' }), '0 2 * * *', 'UTC')).toBe(false);
});

test('names, ranges, steps and lists: the same values in other spellings match', () => {
  const described = spec([
    calendar({ minute: [r(30)], hour: [r(5)], dayOfMonth: [r(1), r(15)], month: [r('JANUARY', 'DECEMBER', 2)], dayOfWeek: [r('MONDAY', 'FRIDAY')] }),
  ]);
  expect(specMatchesCron(described, '30 5 1,15 */2 MON-FRI', 'UTC')).toBe(true);
  expect(specMatchesCron(described, '30 5 15,1 1-12/2 1-5', 'UTC')).toBe(true);
  expect(specMatchesCron(described, '30 5 1,15 JAN,MAR,MAY,JUL,SEP,NOV mon,tue,wed,thu,fri', 'UTC')).toBe(true);
  expect(specMatchesCron(described, '30 5 1,15 */3 MON-FRI', 'UTC')).toBe(false);
  expect(specMatchesCron(described, '30 5 1,15 */2 MON-SAT', 'UTC')).toBe(false);
});

test('Sunday is 0 or 7', () => {
  const sunday = spec([calendar({ dayOfWeek: [r('SUNDAY')] })]);
  expect(specMatchesCron(sunday, '0 2 * * 0', 'UTC')).toBe(true);
  expect(specMatchesCron(sunday, '0 2 * * 7', 'UTC')).toBe(true);
  expect(specMatchesCron(sunday, '0 2 * * SUN', 'UTC')).toBe(true);
});

test('anything beyond one calendar (more calendars, intervals, exclusions, jitter, a year, seconds) is not our line', () => {
  expect(specMatchesCron(spec([calendar(), calendar({ hour: [r(3)] })]), '0 2 * * *', 'UTC')).toBe(false);
  expect(specMatchesCron(spec([calendar()], { intervals: [{ every: 3_600_000 }] } as never), '0 2 * * *', 'UTC')).toBe(false);
  expect(specMatchesCron(spec([calendar()], { skip: [calendar()] }), '0 2 * * *', 'UTC')).toBe(false);
  expect(specMatchesCron(spec([calendar()], { jitter: 60_000 }), '0 2 * * *', 'UTC')).toBe(false);
  expect(specMatchesCron(spec([calendar({ year: [r(2027)] })]), '0 2 * * *', 'UTC')).toBe(false);
  expect(specMatchesCron(spec([calendar({ second: [r(30)] })]), '0 2 * * *', 'UTC')).toBe(false);
  expect(specMatchesCron(spec([]), '0 2 * * *', 'UTC')).toBe(false);
});

test('a line we cannot expand never matches (the schedule is then written again)', () => {
  expect(specMatchesCron(spec([calendar()]), '0 2 L * *', 'UTC')).toBe(false);
  expect(specMatchesCron(spec([calendar()]), '0 2 * * 1#2', 'UTC')).toBe(false);
  expect(specMatchesCron(spec([calendar()]), '0 24 * * *', 'UTC')).toBe(false);
  expect(specMatchesCron(spec([calendar()]), '0 2 * *', 'UTC')).toBe(false);
});
