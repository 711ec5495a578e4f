// Retention's decision (engine/retention.ts), a pure function: calendar buckets at the edges
// (DST, month ends, leap days, ISO weeks across years), then properties over synthetic catalogs
// spanning 8 years of nightly dumps, weekly base backups and continuous WAL, with gaps, failed
// runs and runs still under way, in several time zones.
import fc from 'fast-check';
import { bucketOf, bucketsOf, decideRetention, isoWeek, localDate, GRANULARITIES, type CatalogBackup, type CatalogWal, type RetentionCatalog, type RetentionPolicy, type RetentionRule } from '../../engine/retention.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const utc = (iso: string) => Date.parse(iso);

describe('calendar buckets', () => {
  test('a day is the local calendar day: across a DST change, and at midnight in the zone, not in UTC', () => {
    // Europe/Berlin went from +01:00 to +02:00 at 2024-03-31 01:00 UTC.
    expect(bucketOf(utc('2024-03-30T22:59:59Z'), 'daily', 'Europe/Berlin')).toBe('2024-03-30');
    expect(bucketOf(utc('2024-03-30T23:00:00Z'), 'daily', 'Europe/Berlin')).toBe('2024-03-31');
    expect(bucketOf(utc('2024-03-31T21:59:59Z'), 'daily', 'Europe/Berlin')).toBe('2024-03-31');
    expect(bucketOf(utc('2024-03-31T22:00:00Z'), 'daily', 'Europe/Berlin')).toBe('2024-04-01');
    // Back to +01:00 at 2024-10-27 01:00 UTC: the hour 02:00-03:00 local happens twice, one day.
    expect(bucketOf(utc('2024-10-27T00:30:00Z'), 'daily', 'Europe/Berlin')).toBe('2024-10-27');
    expect(bucketOf(utc('2024-10-27T01:30:00Z'), 'daily', 'Europe/Berlin')).toBe('2024-10-27');
    expect(bucketOf(utc('2024-10-27T22:59:59Z'), 'daily', 'Europe/Berlin')).toBe('2024-10-27');
    expect(bucketOf(utc('2024-01-01T04:00:00Z'), 'daily', 'America/New_York')).toBe('2023-12-31');
    expect(bucketOf(utc('2024-01-01T04:00:00Z'), 'yearly', 'America/New_York')).toBe('2023');
  });

  test('months end where the calendar says, leap days included', () => {
    expect(bucketOf(utc('2024-02-29T12:00:00Z'), 'monthly', 'UTC')).toBe('2024-02');
    expect(bucketOf(utc('2024-02-29T12:00:00Z'), 'daily', 'UTC')).toBe('2024-02-29');
    expect(bucketOf(utc('2024-02-29T23:30:00Z'), 'monthly', 'Asia/Tokyo')).toBe('2024-03');
    expect(bucketOf(utc('2023-02-28T23:59:59Z'), 'monthly', 'UTC')).toBe('2023-02');
    expect(bucketOf(utc('2023-03-01T00:00:00Z'), 'monthly', 'UTC')).toBe('2023-03');
  });

  test('weeks are ISO weeks: Monday first, and the first week of a year holds its first Thursday', () => {
    expect(isoWeek(2020, 12, 31)).toEqual({ year: 2020, week: 53 });
    expect(isoWeek(2021, 1, 3)).toEqual({ year: 2020, week: 53 });
    expect(isoWeek(2021, 1, 4)).toEqual({ year: 2021, week: 1 });
    expect(isoWeek(2024, 12, 30)).toEqual({ year: 2025, week: 1 });
    expect(isoWeek(2026, 11, 29)).toEqual({ year: 2026, week: 48 });
    expect(bucketOf(utc('2024-12-30T10:00:00Z'), 'weekly', 'UTC')).toBe('2025-W01');
    // Sunday late evening in New York is Monday in UTC: the week is New York's.
    expect(bucketOf(utc('2024-03-11T02:00:00Z'), 'weekly', 'America/New_York')).toBe('2024-W10');
    expect(bucketOf(utc('2024-03-11T02:00:00Z'), 'weekly', 'UTC')).toBe('2024-W11');
  });

  test('a week number agrees with a count of Mondays, every day of 30 years', () => {
    // An independent count: days since the Monday of 1990-01-01 (a Monday, ISO week 1990-W01).
    const wrong: string[] = [];
    for (let t = Date.UTC(1990, 0, 1); t < Date.UTC(2020, 0, 1); t += DAY) {
      const d = new Date(t);
      const w = isoWeek(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate());
      const thursday = new Date(t + (3 - ((d.getUTCDay() + 6) % 7)) * DAY);
      const jan1 = Date.UTC(thursday.getUTCFullYear(), 0, 1);
      const expected = { year: thursday.getUTCFullYear(), week: Math.floor((thursday.getTime() - jan1) / DAY / 7) + 1 };
      if (w.year !== expected.year || w.week !== expected.week) wrong.push(`${d.toISOString().slice(0, 10)}: ${w.year}-W${w.week}`);
    }
    expect(wrong).toEqual([]);
  });

  test('localDate reads the zone, not the machine', () => {
    expect(localDate(utc('2024-06-30T23:30:00Z'), 'Australia/Lord_Howe')).toEqual({ year: 2024, month: 7, day: 1 });
    expect(localDate(utc('2024-06-30T23:30:00Z'), 'UTC')).toEqual({ year: 2024, month: 6, day: 30 });
  });
});

// ---- a synthetic catalog ------------------------------------------------------------------

const SEGMENT_EVERY = 6 * HOUR;
const hex = (n: number, width: number) => n.toString(16).toUpperCase().padStart(width, '0');
/** The name of the n-th segment (16 MiB each) on a timeline. */
const segmentName = (timeline: number, n: number) => `${hex(timeline, 8)}${hex(Math.floor(n / 256), 8)}${hex(n % 256, 8)}`;

interface Shape {
  timezone: string;
  start: number;
  years: number;
  /** Per night: missed (no run), failed (a leftover), or done. */
  nights: Array<'done' | 'missed' | 'failed'>;
  /** Minutes after 00:00 UTC the nightly runs (near midnight in some zones). */
  minuteOfDay: number;
  /** The segment at which timeline 2 begins. */
  switchAt: number;
  /** Segments at the end that the offsite repository does not hold yet. */
  unshippedTail: number;
  /** Segments the offsite repository holds but has not verified. */
  unverified: number[];
  /** Hours after the last night that the decision is made. */
  nowAfterHours: number;
}

const shapeArb: fc.Arbitrary<Shape> = fc
  .record({
    timezone: fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata'),
    startDay: fc.integer({ min: 0, max: 6 * 365 }),
    years: fc.constantFrom(8),
    missRate: fc.constantFrom(0, 0.02, 0.2),
    failRate: fc.constantFrom(0, 0.05, 0.3),
    seed: fc.integer(),
    minuteOfDay: fc.constantFrom(0, 59, 60, 22 * 60 + 30, 23 * 60 + 59, 2 * 60),
    switchFraction: fc.double({ min: 0.1, max: 0.95, noNaN: true }),
    unshippedTail: fc.integer({ min: 0, max: 40 }),
    unverifiedCount: fc.integer({ min: 0, max: 5 }),
    nowAfterHours: fc.integer({ min: 0, max: 72 }),
  })
  .map((r) => {
    const start = Date.UTC(2012, 0, 1) + r.startDay * DAY;
    const nightsCount = Math.round(r.years * 365.25);
    // A small deterministic generator from the seed: the same shape gives the same catalog.
    let state = r.seed >>> 0 || 1;
    const random = () => ((state = (state * 1664525 + 1013904223) >>> 0) / 2 ** 32);
    const nights = Array.from({ length: nightsCount }, () => {
      const x = random();
      return x < r.missRate ? 'missed' : x < r.missRate + r.failRate ? 'failed' : 'done';
    }) as Shape['nights'];
    const segments = Math.floor((nightsCount * DAY) / SEGMENT_EVERY);
    return {
      timezone: r.timezone,
      start,
      years: r.years,
      nights,
      minuteOfDay: r.minuteOfDay,
      switchAt: Math.floor(segments * r.switchFraction),
      unshippedTail: r.unshippedTail,
      unverified: Array.from({ length: r.unverifiedCount }, () => Math.floor(random() * segments)),
      nowAfterHours: r.nowAfterHours,
    };
  });

function catalogOf(shape: Shape): { catalog: RetentionCatalog; now: number; segments: number } {
  const backups: CatalogBackup[] = [];
  const last = shape.start + (shape.nights.length - 1) * DAY + shape.minuteOfDay * 60_000;
  const now = last + shape.nowAfterHours * HOUR;
  shape.nights.forEach((night, i) => {
    const at = shape.start + i * DAY + shape.minuteOfDay * 60_000;
    const id = `d${i}`;
    for (const repository of ['local', 'offsite']) {
      if (night === 'done') backups.push({ repository, component: 'database', backupId: id, complete: true, at });
      // A failed run left its objects in one repository and no manifest; the newest may still run.
      if (night === 'failed' && repository === 'local') backups.push({ repository, component: 'database', backupId: id, complete: false, at, runClosed: now - at > 12 * HOUR });
      // A base backup every Sunday-ish (every 7th night), its WAL starting at that night's segment.
      if (i % 7 === 3 && night !== 'missed') {
        const n = Math.floor((i * DAY) / SEGMENT_EVERY);
        backups.push({ repository, component: 'base', backupId: `b${i}`, complete: night === 'done', at: at + HOUR, runClosed: true, walStart: segmentName(n >= shape.switchAt ? 2 : 1, n) });
      }
    }
  });
  const segments = Math.floor((shape.nights.length * DAY) / SEGMENT_EVERY);
  const wal: CatalogWal[] = [];
  const unverified = new Set(shape.unverified);
  for (let n = 0; n < segments; n++) {
    const name = segmentName(n >= shape.switchAt ? 2 : 1, n);
    wal.push({ repository: 'local', name, verified: true });
    if (n < segments - shape.unshippedTail) wal.push({ repository: 'offsite', name, verified: !unverified.has(n) });
  }
  // The switch: the old timeline's last segment as a .partial, and the new timeline's history.
  for (const repository of ['local', 'offsite']) {
    wal.push({ repository, name: `${segmentName(1, shape.switchAt)}.partial`, verified: true });
    wal.push({ repository, name: '00000002.history', verified: true });
  }
  return { catalog: { backups, wal, spool: 'local' }, now, segments };
}

const RULES: Record<string, RetentionRule> = {
  'local/database': { daily: 30, weekly: 12, monthly: 12, yearly: 7 },
  'offsite/database': { daily: 30, weekly: 12, monthly: 24, yearly: 7 },
  'local/base': { weekly: 2, pitrWindowDays: 21 },
  'offsite/base': { weekly: 4, monthly: 2, pitrWindowDays: 45 },
};

const policyOf = (timezone: string): RetentionPolicy => ({ timezone, ruleFor: (c, r) => RULES[`${r}/${c}`] ?? {}, leftoverGraceMs: DAY });

const RUNS = Number(process.env.RETENTION_RUNS ?? 8);

describe('the decision over 8 years of backups', () => {
  test('each rule keeps exactly its count of buckets, the newest ones, each by its first complete backup', () => {
    fc.assert(
      fc.property(shapeArb, (shape) => {
        const { catalog, now } = catalogOf(shape);
        const decision = decideRetention(catalog, policyOf(shape.timezone), now);
        for (const [key, rule] of Object.entries(RULES)) {
          const [repository, component] = key.split('/');
          const complete = catalog.backups.filter((b) => b.repository === repository && b.component === component && b.complete).sort((a, b) => a.at - b.at);
          const decided = new Map(decision.backups.filter((d) => d.repository === repository && d.component === component).map((d) => [d.backupId, d]));
          const keys = new Map(complete.map((b) => [b, bucketsOf(b.at, shape.timezone)]));
          for (const g of GRANULARITIES) {
            const count = rule[g] ?? 0;
            const firsts = new Map<string, CatalogBackup>();
            for (const b of complete) if (!firsts.has(keys.get(b)![g])) firsts.set(keys.get(b)![g], b);
            const buckets = [...firsts.keys()].sort();
            const expected = count ? buckets.slice(-count) : [];
            const kept = complete.filter((b) => decided.get(b.backupId)!.reasons.some((r) => r.startsWith(`${g} `)));
            expect(kept.map((b) => keys.get(b)![g])).toEqual(expected);
            // Each kept one is the first complete backup of its bucket.
            for (const b of kept) expect(firsts.get(keys.get(b)![g])).toBe(b);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('nothing needed goes: the newest complete backup, the base backup the window starts from, WAL from the oldest kept base on, history files, unshipped spool segments, runs under way', () => {
    fc.assert(
      fc.property(shapeArb, (shape) => {
        const { catalog, now } = catalogOf(shape);
        const decision = decideRetention(catalog, policyOf(shape.timezone), now);
        const fate = new Map(decision.backups.map((d) => [`${d.repository}/${d.component}/${d.backupId}`, d]));
        for (const repository of ['local', 'offsite']) {
          for (const component of ['database', 'base']) {
            const complete = catalog.backups.filter((b) => b.repository === repository && b.component === component && b.complete).sort((a, b) => a.at - b.at);
            if (complete.length) expect(fate.get(`${repository}/${component}/${complete.at(-1)!.backupId}`)!.action).toBe('keep');
          }
          const windowDays = RULES[`${repository}/base`].pitrWindowDays!;
          const bases = catalog.backups.filter((b) => b.repository === repository && b.component === 'base' && b.complete).sort((a, b) => a.at - b.at);
          const anchor = bases.filter((b) => b.at <= now - windowDays * DAY).at(-1);
          if (anchor) expect(fate.get(`${repository}/base/${anchor.backupId}`)!.action).toBe('keep');
          const keptBases = bases.filter((b) => fate.get(`${repository}/base/${b.backupId}`)!.action === 'keep');
          const cut = keptBases.map((b) => b.walStart!.slice(8)).sort()[0];
          const walDecision = decision.wal.find((w) => w.repository === repository)!;
          // Collected, then one expect: an expect per file costs more than the decision.
          expect(walDecision.delete.filter((name) => name.endsWith('.history') || !(name.replace('.partial', '').slice(8) < cut))).toEqual([]);
          if (repository === 'local') {
            const offsiteVerified = new Set(catalog.wal.filter((w) => w.repository === 'offsite' && w.verified).map((w) => w.name));
            expect(walDecision.delete.filter((name) => !offsiteVerified.has(name))).toEqual([]);
          }
        }
        for (const b of catalog.backups.filter((x) => !x.complete)) {
          const d = fate.get(`${b.repository}/${b.component}/${b.backupId}`)!;
          expect(d.action).toBe(b.runClosed && b.at < now - DAY ? 'delete' : 'keep');
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('failed runs never count: the decision on complete backups is the same without them', () => {
    fc.assert(
      fc.property(shapeArb, (shape) => {
        const { catalog, now } = catalogOf(shape);
        const policy = policyOf(shape.timezone);
        const complete = new Set(catalog.backups.filter((c) => c.complete).map((c) => `${c.repository}/${c.component}/${c.backupId}`));
        const completeOnly = (d: ReturnType<typeof decideRetention>) => d.backups.filter((b) => complete.has(`${b.repository}/${b.component}/${b.backupId}`));
        const withFailed = completeOnly(decideRetention(catalog, policy, now));
        const without = completeOnly(decideRetention({ ...catalog, backups: catalog.backups.filter((b) => b.complete) }, policy, now));
        expect(withFailed).toEqual(without);
      }),
      { numRuns: RUNS },
    );
  });

  test('a decision applied and made again deletes nothing more, and the window it promised is still recoverable: a kept base backup and every segment after it, unbroken', () => {
    fc.assert(
      fc.property(shapeArb, (shape) => {
        const { catalog, now, segments } = catalogOf(shape);
        const policy = policyOf(shape.timezone);
        const first = decideRetention(catalog, policy, now);
        const gone = new Set(first.backups.filter((d) => d.action === 'delete').map((d) => `${d.repository}/${d.component}/${d.backupId}`));
        const walGone = new Set(first.wal.flatMap((w) => w.delete.map((n) => `${w.repository}/${n}`)));
        const after: RetentionCatalog = {
          ...catalog,
          backups: catalog.backups.filter((b) => !gone.has(`${b.repository}/${b.component}/${b.backupId}`)),
          wal: catalog.wal.filter((w) => !walGone.has(`${w.repository}/${w.name}`)),
        };
        const second = decideRetention(after, policy, now);
        expect(second.backups.filter((d) => d.action === 'delete')).toEqual([]);
        expect(second.wal.flatMap((w) => w.delete)).toEqual([]);
        for (const repository of ['local', 'offsite']) {
          const windowDays = RULES[`${repository}/base`].pitrWindowDays!;
          const bases = after.backups.filter((b) => b.repository === repository && b.component === 'base' && b.complete).sort((a, b) => a.at - b.at);
          if (!bases.length) continue;
          // Every point of the promised window has a kept base backup at or before it...
          const windowStart = now - windowDays * DAY;
          if (catalog.backups.some((b) => b.repository === repository && b.component === 'base' && b.complete && b.at <= windowStart)) expect(bases[0].at).toBeLessThanOrEqual(windowStart);
          // ...and from the oldest kept base on, every segment the repository had is still there.
          const startN = parseInt(bases[0].walStart!.slice(8, 16), 16) * 256 + parseInt(bases[0].walStart!.slice(16), 16);
          const held = new Set(after.wal.filter((w) => w.repository === repository).map((w) => w.name));
          const had = new Set(catalog.wal.filter((w) => w.repository === repository).map((w) => w.name));
          const lost: string[] = [];
          for (let n = startN; n < segments; n++) {
            const name = segmentName(n >= shape.switchAt ? 2 : 1, n);
            if (had.has(name) && !held.has(name)) lost.push(name);
          }
          expect(lost).toEqual([]);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe('the spool', () => {
  const base = (repository: string, walStart: string, at: number): CatalogBackup => ({ repository, component: 'base', backupId: `b-${walStart}`, complete: true, at, walStart });
  const seg = (n: number) => segmentName(1, n);
  const now = utc('2026-11-29T12:00:00Z');
  const policy: RetentionPolicy = { timezone: 'UTC', ruleFor: () => ({ weekly: 1 }), leftoverGraceMs: DAY };

  test('keeps what another repository lacks (S3 down), and what it holds unverified; lets go of the rest below the cut', () => {
    const catalog: RetentionCatalog = {
      spool: 'local',
      backups: [base('local', seg(10), now - HOUR), base('offsite', seg(10), now - HOUR)],
      wal: [
        ...[0, 1, 2, 3, 10, 11].map((n) => ({ repository: 'local', name: seg(n), verified: true })),
        { repository: 'offsite', name: seg(0), verified: true },
        { repository: 'offsite', name: seg(1), verified: false },
        { repository: 'offsite', name: seg(10), verified: true },
      ],
    };
    const spool = decideRetention(catalog, policy, now, ['local', 'offsite', 'nas']).wal.find((w) => w.repository === 'local')!;
    // nas, configured, holds nothing: nothing is shipped everywhere.
    expect(spool.delete).toEqual([]);
    expect(spool.unshipped).toEqual([seg(0), seg(1), seg(2), seg(3)]);
    const twoRepos = decideRetention(catalog, policy, now, ['local', 'offsite']).wal.find((w) => w.repository === 'local')!;
    expect(twoRepos.delete).toEqual([seg(0)]);
    expect(twoRepos.unshipped).toEqual([seg(1), seg(2), seg(3)]);
  });

  test('another repository keeps what the spool still holds below its cut: the shipping would copy it back every day', () => {
    // The spool's kept base starts at 2; offsite's at 10. Offsite needs nothing below 10, but
    // 2 and 3 are still in the spool (local needs them), so offsite keeps them.
    const catalog: RetentionCatalog = {
      spool: 'local',
      backups: [base('local', seg(2), now - HOUR), base('offsite', seg(10), now - HOUR)],
      wal: [...[0, 1, 2, 3, 10].map((n) => ({ repository: 'local', name: seg(n), verified: true })), ...[0, 1, 2, 3, 10].map((n) => ({ repository: 'offsite', name: seg(n), verified: true }))],
    };
    const decision = decideRetention(catalog, policy, now, ['local', 'offsite']);
    const spool = decision.wal.find((w) => w.repository === 'local')!;
    const offsite = decision.wal.find((w) => w.repository === 'offsite')!;
    expect(spool.delete).toEqual([seg(0), seg(1)]);
    expect(offsite.delete).toEqual([seg(0), seg(1)]);
    expect(offsite.why).toMatch(/2 below it stay while the spool still holds them/);
  });

  test('a run scoped to some components or repositories keeps the rest, and WAL stays for a base backup kept because it was out of scope', () => {
    const old = { repository: 'offsite', component: 'base', backupId: 'old', complete: true, at: now - 60 * DAY, walStart: seg(1) };
    const catalog: RetentionCatalog = {
      backups: [old, base('offsite', seg(10), now - HOUR), { repository: 'offsite', component: 'database', backupId: 'd-old', complete: true, at: now - 60 * DAY }, { repository: 'offsite', component: 'database', backupId: 'd-new', complete: true, at: now - HOUR }],
      wal: [0, 1, 2, 10].map((n) => ({ repository: 'offsite', name: seg(n), verified: true })),
    };
    const all = decideRetention(catalog, policy, now, ['offsite']);
    expect(all.backups.filter((b) => b.action === 'delete').map((b) => b.backupId).sort()).toEqual(['d-old', 'old']);
    expect(all.wal[0].delete).toEqual([seg(0), seg(1), seg(2)]);
    const walOnly = decideRetention(catalog, policy, now, ['offsite'], { components: ['wal'] });
    expect(walOnly.backups.every((b) => b.action === 'keep' && /outside this run/.test(b.reasons[0]))).toBe(true);
    expect(walOnly.wal[0].delete).toEqual([seg(0)]);
    const otherRepository = decideRetention(catalog, policy, now, ['offsite'], { repositories: ['local'] });
    expect(otherRepository.backups.every((b) => b.action === 'keep')).toBe(true);
    expect(otherRepository.wal[0].delete).toEqual([]);
  });

  test('with no base backup kept in a repository, none of its WAL goes', () => {
    const catalog: RetentionCatalog = { spool: 'local', backups: [], wal: [0, 1, 2].map((n) => ({ repository: 'offsite', name: seg(n), verified: true })) };
    const offsite = decideRetention(catalog, policy, now).wal.find((w) => w.repository === 'offsite')!;
    expect(offsite.delete).toEqual([]);
    expect(offsite.keepFrom).toBeUndefined();
    expect(offsite.why).toMatch(/no base backup kept/);
  });
});

describe('S3 Object Lock', () => {
  test('a backup no rule keeps, still locked, stays with the date its lock ends; once the lock ended it goes; what a rule keeps is unchanged', () => {
    const now = utc('2026-11-29T12:00:00Z');
    const at = (daysAgo: number) => now - daysAgo * DAY;
    const policy: RetentionPolicy = { timezone: 'UTC', ruleFor: () => ({ daily: 1 }), leftoverGraceMs: DAY };
    const backup = (id: string, daysAgo: number, lockDays?: number): CatalogBackup => ({
      repository: 's3',
      component: 'database',
      backupId: id,
      complete: true,
      at: at(daysAgo),
      ...(lockDays ? { lockedUntil: at(daysAgo) + lockDays * DAY } : {}),
    });
    const decision = decideRetention({ backups: [backup('locked', 10, 30), backup('expired', 40, 30), backup('unlocked', 9), backup('newest', 0, 30)], wal: [] }, policy, now);
    const byId = Object.fromEntries(decision.backups.map((d) => [d.backupId, d]));
    expect(byId.locked).toMatchObject({ action: 'keep', reasons: [expect.stringMatching(/locked \(S3 Object Lock\) until 2026-12-19T12:00:00.000Z: pruned after/)] });
    expect(byId.expired.action).toBe('delete');
    expect(byId.unlocked.action).toBe('delete');
    expect(byId.newest.reasons).toEqual(['daily 2026-11-29', 'the newest complete backup']);
  });
});
