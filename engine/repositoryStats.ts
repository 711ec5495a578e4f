// What each repository holds and how fast it fills: per component (database dumps, base
// backups, WAL) the count, the bytes stored, the oldest and newest; the free space of a
// filesystem repository and the days until it is full at the recent growth rate; and the
// point-in-time window that repository alone supports. For `backupctl status` and
// `backups list`. Read-only.
//
// It scales with the archive: one listing per prefix (`database/`, `base/`, `wal/`), the
// manifests of complete backups (one per backup), and for WAL only a handful of entries (a
// binary search by archive time), never one read per segment: a spool may hold 200,000.
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { componentPrefix, scanManifests, type Component, type Scanned } from './catalog.js';
import { compressionSuffix } from './compression.js';
import { errorText } from './errors.js';
import { admitted, type Verifier } from './manifestSignature.js';
import { FilesystemRepository } from './storage/filesystem.js';
import type { ObjectInfo, Repository } from './storage/repository.js';
import { readWalEntry } from './walArchive.js';
import { segmentOf } from './walHeader.js';
import { COMPRESSIONS } from '../common/types.js';

const DAY_MS = 86_400_000;
/** The growth rate is what was stored over this many days, per day. */
export const GROWTH_WINDOW_DAYS = 7;
const WAL_PREFIX = 'wal/';

export type StatsComponent = Component | 'wal';

export interface ComponentStats {
  component: StatsComponent;
  /** Complete backups (a whole manifest), or archived WAL files (an entry). */
  count: number;
  /** Every object under the component's folder, complete or not (a failed attempt's leftovers take space too). */
  objects: number;
  bytes: number;
  /** Backups: the oldest and newest complete one's finishedAt. WAL: the oldest and newest segment names (history files are counted, never oldest or newest). */
  oldest: string | null;
  newest: string | null;
  /** Manifests that could not be used (damaged, or unreadable for good): not counted. */
  damaged: number;
  /**
   * Bytes stored in the last GROWTH_WINDOW_DAYS days: backups finished then (all their
   * objects' bytes), WAL archived then (its entries' archivedAt, found by binary search, so
   * approximate when archive times are not in name order). Null when it cannot be told.
   */
  recentBytes: number | null;
}

/** The recovery window this repository alone supports. */
export interface RepositoryWindow {
  /** The oldest admitted (signed) base backup's stoppedAt here. */
  earliest: string | null;
  /** The newest archived WAL file's archivedAt here. */
  latest: string | null;
  newestSegment: string | null;
  /**
   * From the listing: the WAL between the base backup and the newest segment is not checked
   * for gaps, nor are the WAL entries' signatures; `pitr` checks both. Null window ends when
   * there is no base backup, no WAL, or the WAL ends before the oldest base backup stopped.
   */
  note: string;
}

export interface ReachableRepositoryStats {
  repository: string;
  kind: Repository['kind'];
  location: string;
  reachable: true;
  components: ComponentStats[];
  /** All components' bytes. */
  bytes: number;
  /** Free space for this host's user on a filesystem repository's filesystem; null for S3 or when unknown (freeError). */
  freeBytes: number | null;
  totalBytes: number | null;
  freeError?: string;
  /** What was stored per day over the last GROWTH_WINDOW_DAYS days; null when a component's recent bytes are unknown. */
  growthBytesPerDay: number | null;
  /** freeBytes / growthBytesPerDay; null without free space or without growth. */
  daysUntilFull: number | null;
  window: RepositoryWindow;
}

export interface UnreachableRepositoryStats {
  repository: string;
  kind: Repository['kind'];
  location: string;
  reachable: false;
  error: string;
}

export type RepositoryStats = ReachableRepositoryStats | UnreachableRepositoryStats;

/** Bytes per day over `days`: what was stored in that time, spread evenly. Zero when nothing was. */
export function growthRate(recentBytes: number, days = GROWTH_WINDOW_DAYS): number {
  if (!(days > 0)) throw new RangeError(`growth window of ${days} days: must be positive`);
  return Math.max(0, recentBytes) / days;
}

/**
 * Days until a filesystem with `freeBytes` left is full at `bytesPerDay`: undefined when the
 * free space is unknown or nothing grows (never full at this rate); 0 when it is full already.
 */
export function daysUntilFull(freeBytes: number | undefined | null, bytesPerDay: number | undefined | null): number | undefined {
  if (freeBytes === undefined || freeBytes === null || !Number.isFinite(freeBytes)) return undefined;
  if (freeBytes <= 0) return 0;
  if (bytesPerDay === undefined || bytesPerDay === null || !(bytesPerDay > 0) || !Number.isFinite(bytesPerDay)) return undefined;
  return freeBytes / bytesPerDay;
}

/** The sum of the sizes of objects. */
function sumBytes(objects: ObjectInfo[]): number {
  return objects.reduce((sum, o) => sum + o.bytes, 0);
}

/** The WAL file a `wal/` key belongs to: `<name>.json` (its entry) or `<name>.<zst|gz>.gpg` (its object). */
export function walNameOfKey(key: string): string | undefined {
  const rest = key.slice(WAL_PREFIX.length);
  if (rest.endsWith('.json')) return rest.slice(0, -'.json'.length);
  for (const compression of COMPRESSIONS) {
    const suffix = `.${compressionSuffix(compression)}.gpg`;
    if (rest.endsWith(suffix)) return rest.slice(0, -suffix.length);
  }
  return undefined;
}

export interface StatsOptions {
  /** Which manifests' signatures count for the window's earliest base backup. */
  verifier: Verifier;
  /** Admit unsigned base backups to the window (as `pitr --allow-unsigned`). */
  allowUnsigned?: boolean;
  now?: number;
}

/** Statistics of every repository, in order; one that cannot be listed is reported unreachable, the others still are. */
export async function repositoryStats(repositories: Repository[], options: StatsOptions): Promise<RepositoryStats[]> {
  return Promise.all(repositories.map((r) => statsOf(r, options)));
}

/** One repository's statistics; never throws for a repository that cannot be read (unreachable, with the reason). */
export async function statsOf(repository: Repository, options: StatsOptions): Promise<RepositoryStats> {
  const now = options.now ?? Date.now();
  const since = now - GROWTH_WINDOW_DAYS * DAY_MS;
  const head = { repository: repository.name, kind: repository.kind, location: repository.location };
  try {
    const database = await backupStats(repository, 'database', options.verifier, since);
    const base = await backupStats(repository, 'base', options.verifier, since);
    const wal = await walStats(repository, since);
    const components = [database.stats, base.stats, wal.stats];
    const space = await freeSpace(repository);
    const recent = components.map((c) => c.recentBytes);
    const growth = recent.some((b) => b === null) ? null : growthRate(recent.reduce<number>((a, b) => a + (b ?? 0), 0));
    const days = daysUntilFull(space.freeBytes, growth);
    // Admitted base backups only: what a recovery may start from (an unsigned one never, by default).
    const starts = base.manifests.filter((m) => admitted(m.signature, options.allowUnsigned === true)).map((m) => m.manifest.backup);
    const oldestStart = starts.sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt))[0];
    // The window opens only when WAL reaches past that base backup's end.
    const reaches = oldestStart && wal.newestSegment !== null && wal.newestSegment >= segmentOf(oldestStart.timeline, oldestStart.stopLsn);
    return {
      ...head,
      reachable: true,
      components,
      bytes: components.reduce((sum, c) => sum + c.bytes, 0),
      ...space,
      growthBytesPerDay: growth,
      daysUntilFull: days ?? null,
      window: {
        earliest: reaches ? oldestStart.stoppedAt : null,
        latest: reaches ? wal.newestArchivedAt : null,
        newestSegment: wal.newestSegment,
        note: 'from listing: WAL continuity and WAL signatures not checked',
      },
    };
  } catch (err) {
    return { ...head, reachable: false, error: errorText(err) };
  }
}

async function backupStats<C extends Component>(repository: Repository, component: C, verifier: Verifier, since: number): Promise<{ stats: ComponentStats; manifests: Scanned<C>[] }> {
  const listed = await repository.list(componentPrefix(component));
  const { manifests, damaged } = await scanManifests(repository, component, verifier, listed);
  const finished = manifests.map((m) => m.manifest.finishedAt).sort();
  // A backup's bytes are every object in its folder (attempts' leftovers included): what it takes.
  const bytesById = new Map<string, number>();
  for (const o of listed) {
    const id = o.key.slice(componentPrefix(component).length).split('/')[0];
    bytesById.set(id, (bytesById.get(id) ?? 0) + o.bytes);
  }
  const recentBytes = manifests.filter((m) => Date.parse(m.manifest.finishedAt) > since).reduce((sum, m) => sum + (bytesById.get(m.manifest.backupId) ?? 0), 0);
  return {
    manifests,
    stats: {
      component,
      count: manifests.length,
      objects: listed.length,
      bytes: sumBytes(listed),
      oldest: finished[0] ?? null,
      newest: finished.at(-1) ?? null,
      damaged: damaged.length,
      recentBytes,
    },
  };
}

async function walStats(repository: Repository, since: number): Promise<{ stats: ComponentStats; newestSegment: string | null; newestArchivedAt: string | null }> {
  const listed = await repository.list(WAL_PREFIX);
  // Bytes by WAL file name, in name order (the listing's key order groups a file's two objects).
  const names: string[] = [];
  const bytesOf = new Map<string, number>();
  for (const o of listed) {
    const name = walNameOfKey(o.key);
    if (name === undefined) continue;
    bytesOf.set(name, (bytesOf.get(name) ?? 0) + o.bytes);
    if (o.key.endsWith('.json')) names.push(name);
  }
  names.sort();
  const segments = names.filter((n) => /^[0-9A-F]{24}(\.partial)?$/.test(n));
  const newestSegment = segments.at(-1) ?? null;
  const archivedAt = archiveTimes(repository, names);
  const newestArchivedAt = newestSegment === null ? null : await archivedAt.ofName(newestSegment);
  const recent = await recentWalBytes(names, bytesOf, archivedAt.at, since);
  return {
    newestSegment,
    newestArchivedAt,
    stats: {
      component: 'wal',
      count: names.length,
      objects: listed.length,
      bytes: sumBytes(listed),
      oldest: segments[0] ?? null,
      newest: newestSegment,
      damaged: 0,
      recentBytes: recent,
    },
  };
}

/** The archive time of WAL files by index, read from their entries once each; NaN for one that cannot be read. */
function archiveTimes(repository: Repository, names: string[]) {
  const read = new Map<string, Promise<string | null>>();
  const ofName = (name: string): Promise<string | null> => {
    if (!read.has(name)) read.set(name, readWalEntry(repository, name).then((e) => (e && !Number.isNaN(Date.parse(e.archivedAt)) ? e.archivedAt : null), () => null));
    return read.get(name)!;
  };
  return { ofName, at: async (i: number): Promise<number> => Date.parse((await ofName(names[i])) ?? '') };
}

/**
 * The bytes of the WAL files archived after `since`: the first such file found by binary search
 * over the names (archive times rise with the names: PostgreSQL archives in order), then the
 * sum of the listing's sizes from there. About log2(n) entry reads. An entry that cannot be
 * read is stepped over (the next one is read instead).
 */
export async function recentWalBytes(names: string[], bytesOf: Map<string, number>, at: (i: number) => Promise<number>, since: number): Promise<number> {
  if (!names.length) return 0;
  // The first readable time at or after index i (below `end`), and its index; undefined when none is.
  const readable = async (i: number, end: number): Promise<{ i: number; t: number } | undefined> => {
    for (let j = i; j < end && j < i + 8; j++) {
      const t = await at(j);
      if (!Number.isNaN(t)) return { i: j, t };
    }
    return undefined;
  };
  let lo = 0;
  let hi = names.length; // the answer is in [lo, hi]: every name from hi on was archived after since
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const found = await readable(mid, hi);
    if (!found) {
      // Nothing readable from mid on (or in 8 names): counted as recent, which overstates the
      // growth (by those names' bytes) rather than understate how soon a disk fills.
      hi = mid;
      continue;
    }
    if (found.t > since) hi = found.i;
    else lo = found.i + 1;
  }
  return names.slice(lo).reduce((sum, n) => sum + (bytesOf.get(n) ?? 0), 0);
}

/** Free and total bytes of a filesystem repository's filesystem (statfs on its folder); nulls for S3. */
async function freeSpace(repository: Repository): Promise<{ freeBytes: number | null; totalBytes: number | null; freeError?: string }> {
  if (!(repository instanceof FilesystemRepository)) return { freeBytes: null, totalBytes: null };
  // A repository not written to yet has no folder: its filesystem is that of the nearest folder above.
  for (let folder = repository.root; ; folder = path.dirname(folder)) {
    try {
      const fs = await statfs(folder);
      return { freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(folder) === folder) return { freeBytes: null, totalBytes: null, freeError: errorText(err) };
    }
  }
}
