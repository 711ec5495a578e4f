// Does a described schedule fire when our cron line says? The server compiles a cron line into a
// structured calendar (describe() returns ranges such as { start: 'JANUARY', end: 'DECEMBER',
// step: 2 }, never the line), and one set of times has many spellings ('*' and '1-31', '0-6'
// and '*', '*/2' and '1-12/2'). So both sides are expanded to the set of values each field
// admits, and those sets compared. A line we cannot expand is reported as differing: the caller
// then writes it again, which is harmless, where a wrong 'same' would leave a stale schedule.
import { DAYS_OF_WEEK, MONTHS, type CalendarSpecDescription, type ScheduleSpecDescription } from '@temporalio/client';

type Field = 'minute' | 'hour' | 'dayOfMonth' | 'month' | 'dayOfWeek';
const CRON_FIELDS: { field: Field; min: number; max: number; names?: readonly string[] }[] = [
  { field: 'minute', min: 0, max: 59 },
  { field: 'hour', min: 0, max: 23 },
  { field: 'dayOfMonth', min: 1, max: 31 },
  { field: 'month', min: 1, max: 12, names: MONTHS },
  { field: 'dayOfWeek', min: 0, max: 6, names: DAYS_OF_WEEK },
];

function cronValue(text: string, names: readonly string[] | undefined, min: number): number | undefined {
  if (/^\d+$/.test(text)) return Number(text);
  const index = names?.findIndex((name) => name.slice(0, 3) === text.toUpperCase()) ?? -1;
  // Month names count from 1 (JAN), day names from 0 (SUN).
  return index >= 0 ? index + min : undefined;
}

/** The values one cron field admits, or undefined for a spelling we do not expand. */
function expandCronField(text: string, { min, max, names, field }: (typeof CRON_FIELDS)[number]): Set<number> | undefined {
  const values = new Set<number>();
  for (const item of text.split(',')) {
    const match = /^(\*|\?|[A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?(?:\/(\d+))?$/.exec(item);
    if (!match) return undefined;
    const [, first, last, stepText] = match;
    const step = stepText === undefined ? 1 : Number(stepText);
    const start = first === '*' || first === '?' ? min : cronValue(first, names, min);
    // 'a/n' runs from a to the field's end, as in every cron.
    const end = first === '*' || first === '?' || (last === undefined && stepText !== undefined) ? max : last === undefined ? start : cronValue(last, names, min);
    if (start === undefined || end === undefined || step < 1) return undefined;
    for (let v = start; v <= end; v += step) values.add(field === 'dayOfWeek' && v === 7 ? 0 : v);
  }
  return [...values].every((v) => v >= min && v <= max) ? values : undefined;
}

function rangeValue(value: number | string, names: readonly string[] | undefined, min: number): number {
  return typeof value === 'number' ? value : (names?.indexOf(value) ?? -1) + min;
}

function expandRanges(ranges: CalendarSpecDescription[Field], names: readonly string[] | undefined, min: number): Set<number> {
  const values = new Set<number>();
  for (const range of ranges as { start: number | string; end: number | string; step: number }[]) {
    const end = rangeValue(range.end, names, min);
    for (let v = rangeValue(range.start, names, min); v <= end; v += Math.max(1, range.step)) values.add(v);
  }
  return values;
}

const sameSet = (a: Set<number>, b: Set<number>) => a.size === b.size && [...a].every((v) => b.has(v));

/** The zone a spec means: none is UTC. */
const zoneOf = (timezone: string | undefined) => timezone || 'UTC';

/** True when `described` fires at exactly the times of the five-field `cron` in `timezone`, and at no others. */
export function specMatchesCron(described: ScheduleSpecDescription, cron: string, timezone: string): boolean {
  if (zoneOf(described.timezone) !== zoneOf(timezone)) return false;
  const calendars = described.calendars ?? [];
  if (calendars.length !== 1 || (described.intervals ?? []).length > 0 || (described.skip ?? []).length > 0) return false;
  if (described.startAt || described.endAt || described.jitter) return false;
  const calendar = calendars[0];
  if (!sameSet(expandRanges(calendar.second, undefined, 0), new Set([0])) || calendar.year.length > 0) return false;
  const parts = cron.trim().split(/\s+/);
  if (parts.length !== CRON_FIELDS.length) return false;
  return CRON_FIELDS.every((spec, i) => {
    const wanted = expandCronField(parts[i], spec);
    return wanted !== undefined && sameSet(wanted, expandRanges(calendar[spec.field], spec.names, spec.min));
  });
}
