// Retention's decision: a pure function of (catalog, policy, clock). Given what each repository
// holds, it says of every backup and WAL file whether it goes or stays, and why; the workflow
// records that decision before it deletes anything. Nothing here reads or deletes.
//
// Per repository and component, grandfather-father-son: the newest N days, ISO weeks, months and
// years that hold a complete backup are kept, each by the first complete backup in it (a later
// backup of the same day never displaces it, so a decision made again keeps what it kept), plus
// everything younger than `withinDays`. Buckets are calendar periods in the policy's time zone.
// Only complete backups (manifest present, copies verified) count; a failed or half-written one
// never fills a bucket. Whatever the policy says, never deleted:
//   - the newest complete backup of each component in each repository;
//   - base backups the point-in-time window needs: the newest one completed at or before the
//     window's start, and every one after it;
//   - a WAL segment at or after the start of the oldest base backup kept in that repository (in
//     segment order, which runs on across timelines), and every timeline history file;
//   - in the spool (the WAL's first repository, on the database host): a segment not yet held,
//     verified, by every other repository.
// A backup without a manifest is our leftover: removed once its run has closed and it is older
// than the grace period; anything outside our key layout never reaches this function.

export type Granularity = 'daily' | 'weekly' | 'monthly' | 'yearly';
export const GRANULARITIES: Granularity[] = ['daily', 'weekly', 'monthly', 'yearly'];

export interface RetentionRule {
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** Everything completed within this many days of now stays. */
  withinDays?: number;
  /** Base backups only: the point-in-time window, in days back from now, that must stay recoverable. */
  pitrWindowDays?: number;
}

export interface RetentionPolicy {
  /** IANA time zone of the calendar buckets. */
  timezone: string;
  /** The rule for a component in a repository; none: everything of it stays. */
  ruleFor(component: string, repository: string): RetentionRule | undefined;
  /** How long a backup without a manifest, its run closed, is left before it is removed as a leftover. */
  leftoverGraceMs: number;
}

export interface CatalogBackup {
  repository: string;
  component: string;
  backupId: string;
  /** Manifest present and every copy verified; otherwise a leftover (or a run still under way). */
  complete: boolean;
  /** When it completed (complete) or last wrote (a leftover), ms since the epoch. */
  at: number;
  /** Leftovers: whether the run that wrote it has closed. */
  runClosed?: boolean;
  /** Base backups: the WAL segment its start needs (24 hex characters). */
  walStart?: string;
  /** S3 Object Lock: until when its objects cannot be destroyed; it is not pruned before. */
  lockedUntil?: number;
}

export interface CatalogWal {
  repository: string;
  /** A segment, a .partial or a timeline .history file name. */
  name: string;
  /** Held whole and checked (its entry and object agree). */
  verified: boolean;
}

export interface RetentionCatalog {
  backups: CatalogBackup[];
  wal: CatalogWal[];
  /** The repository that is the WAL spool on the database host, if WAL is archived. */
  spool?: string;
}

export interface BackupDecision {
  repository: string;
  component: string;
  backupId: string;
  action: 'keep' | 'delete';
  /** Why it stays (every rule that keeps it), or why it goes. */
  reasons: string[];
  /** A folder without a manifest here (a failed copy, a manifest lost, a prune cut short): not a copy the policy let go. */
  leftover?: true;
}

export interface WalDecision {
  repository: string;
  /** The oldest segment kept (every segment at or after it stays), or undefined: all WAL stays. */
  keepFrom?: string;
  why: string;
  /** The WAL files that go, in name order. */
  delete: string[];
  /** Spool only: segments below keepFrom that stay because another repository lacks them. */
  unshipped: string[];
}

/** Which components and repositories a run judges; everything else stays, and counts as staying. */
export interface RetentionScope {
  components?: string[];
  repositories?: string[];
}

export interface RetentionDecision {
  now: number;
  backups: BackupDecision[];
  wal: WalDecision[];
}

const DAY_MS = 86_400_000;
const SEGMENT = /^[0-9A-F]{24}$/;
const PARTIAL = /^([0-9A-F]{24})\.partial$/;
const BACKUP_HISTORY = /^([0-9A-F]{24})\.[0-9A-F]{8}\.backup$/;

/** The segment number of a segment, a .partial or a backup history file (named after its backup's start segment), timeline left out; undefined for timeline history files. */
function segmentNumber(name: string): string | undefined {
  if (SEGMENT.test(name)) return name.slice(8);
  return (PARTIAL.exec(name) ?? BACKUP_HISTORY.exec(name))?.[1].slice(8);
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The calendar date of an instant in a time zone. */
export function localDate(ms: number, timezone: string): { year: number; month: number; day: number } {
  let format = formatters.get(timezone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone: timezone, year: 'numeric', month: 'numeric', day: 'numeric', calendar: 'gregory', numberingSystem: 'latn' });
    formatters.set(timezone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(ms).map((p) => [p.type, p.value]));
  return { year: Number(parts.year), month: Number(parts.month), day: Number(parts.day) };
}

/** The ISO 8601 week (Monday first; week 1 holds the year's first Thursday) of a calendar date. */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = new Date(Date.UTC(year, month - 1, day));
  const weekday = (date.getUTCDay() + 6) % 7;
  // The Thursday of this week decides the year it belongs to.
  date.setUTCDate(date.getUTCDate() - weekday + 3);
  const weekYear = date.getUTCFullYear();
  const firstThursday = new Date(Date.UTC(weekYear, 0, 4));
  firstThursday.setUTCDate(firstThursday.getUTCDate() - ((firstThursday.getUTCDay() + 6) % 7) + 3);
  return { year: weekYear, week: 1 + Math.round((date.getTime() - firstThursday.getTime()) / (7 * DAY_MS)) };
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** The buckets of an instant: keys that sort in time order, as people write them (2024-03-31, 2024-W13, 2024-03, 2024). */
export function bucketsOf(ms: number, timezone: string): Record<Granularity, string> {
  const { year, month, day } = localDate(ms, timezone);
  const w = isoWeek(year, month, day);
  return { daily: `${year}-${pad(month)}-${pad(day)}`, weekly: `${w.year}-W${pad(w.week)}`, monthly: `${year}-${pad(month)}`, yearly: String(year) };
}

export function bucketOf(ms: number, granularity: Granularity, timezone: string): string {
  return bucketsOf(ms, timezone)[granularity];
}

const byTime = (a: CatalogBackup, b: CatalogBackup) => a.at - b.at || (a.backupId < b.backupId ? -1 : a.backupId > b.backupId ? 1 : 0);

/** The decision for one component's backups in one repository. */
function decideBackups(backups: CatalogBackup[], rule: RetentionRule, policy: RetentionPolicy, now: number): BackupDecision[] {
  const complete = backups.filter((b) => b.complete).sort(byTime);
  const reasons = new Map<CatalogBackup, string[]>();
  const keep = (b: CatalogBackup, why: string) => {
    const list = reasons.get(b) ?? [];
    list.push(why);
    reasons.set(b, list);
  };
  const buckets = GRANULARITIES.some((g) => (rule[g] ?? 0) > 0) ? complete.map((b) => bucketsOf(b.at, policy.timezone)) : [];
  for (const granularity of GRANULARITIES) {
    const count = rule[granularity] ?? 0;
    if (count <= 0) continue;
    // The first complete backup of each bucket represents it; the newest `count` buckets stay.
    const firsts = new Map<string, CatalogBackup>();
    complete.forEach((b, i) => {
      const bucket = buckets[i][granularity];
      if (!firsts.has(bucket)) firsts.set(bucket, b);
    });
    for (const bucket of [...firsts.keys()].sort().slice(-count)) keep(firsts.get(bucket)!, `${granularity} ${bucket}`);
  }
  if (rule.withinDays !== undefined) {
    for (const b of complete) if (b.at >= now - rule.withinDays * DAY_MS) keep(b, `younger than ${rule.withinDays} days`);
  }
  if (rule.pitrWindowDays !== undefined) {
    const start = now - rule.pitrWindowDays * DAY_MS;
    const anchor = complete.filter((b) => b.at <= start).at(-1);
    if (anchor) keep(anchor, `the point-in-time window (${rule.pitrWindowDays} days) starts from it`);
    for (const b of complete) if (b.at > start) keep(b, `inside the point-in-time window (${rule.pitrWindowDays} days)`);
  }
  const newest = complete.at(-1);
  if (newest) keep(newest, 'the newest complete backup');

  return backups.map((b) => {
    const base = { repository: b.repository, component: b.component, backupId: b.backupId };
    if (b.complete) {
      const why = reasons.get(b);
      if (why) return { ...base, action: 'keep', reasons: why };
      // Pruning never fights a lock: it goes once its lock has ended.
      if (b.lockedUntil !== undefined && b.lockedUntil > now) return { ...base, action: 'keep', reasons: [`kept by no rule, but locked (S3 Object Lock) until ${new Date(b.lockedUntil).toISOString()}: pruned after`] };
      return { ...base, action: 'delete', reasons: ['complete, and kept by no rule of the policy'] };
    }
    if (b.runClosed && b.at < now - policy.leftoverGraceMs) return { ...base, action: 'delete', leftover: true, reasons: ['a leftover: no manifest, its run closed, older than the grace period'] };
    return { ...base, action: 'keep', leftover: true, reasons: [b.runClosed ? 'no manifest yet: inside the grace period' : 'no manifest: its run has not closed'] };
  });
}

/** Where a repository's WAL is needed from: the start of the oldest base backup kept there, or undefined (all of it stays). */
function walNeededFrom(keptBases: CatalogBackup[]): { keepFrom?: string; why: string } {
  const starts = keptBases.map((b) => b.walStart).filter((s): s is string => s !== undefined && SEGMENT.test(s));
  if (starts.length === 0 || starts.length < keptBases.length) {
    // No base backup kept here (or one whose start is unknown): no recovery starts from this
    // repository's WAL at a known point, so none of it is judged unneeded.
    return { why: keptBases.length ? 'a kept base backup does not say where its WAL starts: all WAL kept' : 'no base backup kept in this repository: all WAL kept' };
  }
  const number = starts.map((s) => s.slice(8)).sort()[0];
  const keepFrom = starts.find((s) => s.slice(8) === number)!;
  return { keepFrom, why: `the oldest base backup kept here starts at ${keepFrom}` };
}

/** The segments and .partial files of a repository below keepFrom (in segment order); history files never. */
function walBelow(files: CatalogWal[], keepFrom: string): CatalogWal[] {
  const limit = keepFrom.slice(8);
  return files.filter((f) => {
    const n = segmentNumber(f.name);
    return n !== undefined && n < limit;
  });
}

/**
 * The decision: every backup's fate, and each repository's WAL. `knownRepositories` lists every
 * repository the configuration has, so the spool knows how many others must hold a segment
 * (one that holds no WAL yet holds none of it).
 */
export function decideRetention(catalog: RetentionCatalog, policy: RetentionPolicy, now: number, knownRepositories: string[] = [], only: RetentionScope = {}): RetentionDecision {
  const inScope = (component: string, repository: string) => (!only.components || only.components.includes(component)) && (!only.repositories || only.repositories.includes(repository));
  const groups = new Map<string, CatalogBackup[]>();
  for (const b of catalog.backups) {
    const key = JSON.stringify([b.repository, b.component]);
    const group = groups.get(key);
    if (group) group.push(b);
    else groups.set(key, [b]);
  }
  const backups: BackupDecision[] = [];
  for (const [key, list] of groups) {
    const [repository, component] = JSON.parse(key) as [string, string];
    const rule = policy.ruleFor(component, repository);
    // Outside this run's scope: kept, and WAL below judged against it as a base backup that stays.
    if (!inScope(component, repository)) backups.push(...list.map((b) => ({ repository, component, backupId: b.backupId, action: 'keep' as const, reasons: ['outside this run (--component/--repository)'] })));
    // A component no policy speaks of (one added later): nothing of it is judged unneeded.
    else if (!rule) backups.push(...list.map((b) => ({ repository, component, backupId: b.backupId, action: 'keep' as const, reasons: ['no retention rule for this component'] })));
    else backups.push(...decideBackups(list, rule, policy, now));
  }
  // Repositories that must hold a segment before the spool lets it go: every other one known.
  const walRepositories = [...new Set([...catalog.wal.map((w) => w.repository), ...knownRepositories])].sort();
  const filesOf = new Map(walRepositories.map((r) => [r, [] as CatalogWal[]]));
  for (const w of catalog.wal) filesOf.get(w.repository)!.push(w);
  const needs = new Map<string, { keepFrom?: string; why: string }>();
  for (const repository of walRepositories) {
    if (!inScope('wal', repository)) {
      needs.set(repository, { why: 'outside this run (--component/--repository): all WAL kept' });
      continue;
    }
    const kept = new Set(backups.filter((d) => d.repository === repository && d.component === 'base' && d.action === 'keep').map((d) => d.backupId));
    needs.set(repository, walNeededFrom(catalog.backups.filter((b) => b.repository === repository && b.component === 'base' && b.complete && kept.has(b.backupId))));
  }
  const spool = catalog.spool !== undefined && filesOf.has(catalog.spool) ? catalog.spool : undefined;
  // The spool goes only of what every other repository holds verified.
  let spoolDecision: WalDecision | undefined;
  if (spool) {
    const others = walRepositories.filter((r) => r !== spool);
    const verified = new Map(others.map((r) => [r, new Set<string>()]));
    for (const w of catalog.wal) if (w.verified) verified.get(w.repository)?.add(w.name);
    const shipped = (name: string) => others.length > 0 && others.every((r) => verified.get(r)!.has(name));
    const need = needs.get(spool)!;
    const below = need.keepFrom ? walBelow(filesOf.get(spool)!, need.keepFrom) : [];
    spoolDecision = {
      repository: spool,
      keepFrom: need.keepFrom,
      why: need.keepFrom ? `${need.why}; below it, only what every other repository holds verified goes` : need.why,
      delete: below.filter((f) => shipped(f.name)).map((f) => f.name).sort(),
      unshipped: below.filter((f) => !shipped(f.name)).map((f) => f.name).sort(),
    };
  }
  // Another repository goes only of what the spool no longer holds (or lets go now): the
  // shipping copies whatever the spool holds and a repository lacks, so it would come back.
  const spoolKeeps = new Set(spool ? filesOf.get(spool)!.map((f) => f.name) : []);
  for (const name of spoolDecision?.delete ?? []) spoolKeeps.delete(name);
  const wal: WalDecision[] = [];
  for (const repository of walRepositories) {
    const files = filesOf.get(repository)!;
    if (files.length === 0) continue;
    if (repository === spool) {
      wal.push(spoolDecision!);
      continue;
    }
    const need = needs.get(repository)!;
    const below = need.keepFrom ? walBelow(files, need.keepFrom) : [];
    const held = below.filter((f) => spoolKeeps.has(f.name));
    wal.push({
      repository,
      keepFrom: need.keepFrom,
      why: held.length ? `${need.why}; ${held.length} below it stay while the spool still holds them` : need.why,
      delete: below.filter((f) => !spoolKeeps.has(f.name)).map((f) => f.name).sort(),
      unshipped: [],
    });
  }
  const order = (a: BackupDecision, b: BackupDecision) => (a.repository + a.component + a.backupId < b.repository + b.component + b.backupId ? -1 : 1);
  return { now, backups: backups.sort(order), wal };
}
