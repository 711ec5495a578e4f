// What the repositories, the WAL archive and PostgreSQL's archiver say about the backups right
// now, against the objectives: the part of `backupctl status` that needs no Temporal, shared
// with the monitor. Every problem carries a key that stays the same from one look to the next
// while the problem lasts (its message may change: an age grows), so that a problem can be
// opened once, reminded of, and resolved.
import type { Config } from '../common/config.js';
import { formatBytes } from '../common/formatBytes.js';
import { baseBackupsWanted, pitrPreconditionProblems } from '../common/pitrPreconditions.js';
import type { DrillReport } from '../common/restoreTypes.js';
import { archiveQueue, type ArchiveQueue } from './archiveCheck.js';
import { latestDrillReport, scanCatalog } from './catalog.js';
import { readCatalog, type LastVerification } from './catalogView.js';
import { errorText } from './errors.js';
import type { IntegritySummary } from './integritySample.js';
import { loadVerifier, type Verifier } from './manifestSignature.js';
import { assessObjectives, type ObjectivesStatus } from './objectives.js';
import { readReport, RETENTION_REPORT_PREFIX } from './prune.js';
import { GROWTH_WINDOW_DAYS, repositoryStats, type RepositoryStats } from './repositoryStats.js';
import { expectedSource, pickLatest, sourceVerdict, type ExpectedSource } from './sourceMatch.js';
import type { Problem } from './problem.js';
import type { Repository } from './storage/repository.js';
import { archiveLag, listWalEntries, newestSegmentOf, readWalEntry, spoolRepository } from './walArchive.js';

export type { Problem } from './problem.js';

/** WAL must reach every repository within this (DESIGN: archive within 5 minutes at most). */
export const WAL_MAX_LAG_SECONDS = 300;
/** How many of the newest backups the report lists (the seed's dashboard listed five). */
const RECENT_BACKUPS = 5;
/** A filesystem repository projected to be full within this many days is a problem. */
export const STORAGE_FULL_WITHIN_DAYS = 14;

export interface WalArchiveStatus {
  spool: string;
  newestSegment: string;
  newestArchivedAt: string;
  repositories: { name: string; newestSegment: string | null; behind: number | null; lagSeconds: number | null; error?: string }[];
}

export interface HealthReport {
  /** The newest few complete, signed database backups of ours, newest last. */
  recentBackups: { backupId: string; startedAt: string; finishedAt: string; bytes: number; foundIn: string[] }[];
  latestBackup: { backupId: string; finishedAt: string; ageHours: number; foundIn: string[] } | null;
  /** The newest verification of any backup: the last time a backup was proved to restore. */
  latestVerification: { backupId: string; reportId: string; ok: boolean; finishedAt: string; ageDays: number; copies?: LastVerification['copies'] } | null;
  /** The WAL archive: newest segment in the spool, and how far each other repository lags. */
  walArchive: WalArchiveStatus | null;
  /** PostgreSQL's archive queue (WAL files finished but not archived yet): back-pressure on pg_wal. */
  walQueue: (ArchiveQueue & { error?: undefined }) | { error: string } | null;
  /** The newest base backup: where every point-in-time recovery starts. */
  latestBaseBackup: { backupId: string; stoppedAt: string; ageDays: number; foundIn: string[] } | null;
  /**
   * Per repository and component: count, bytes, oldest, newest; free space, growth and days
   * until full (filesystem repositories); the window that repository alone supports. One that
   * cannot be listed is there as unreachable, with the reason.
   */
  storage: RepositoryStats[];
  /**
   * What the configuration asks for and cannot have (point-in-time recovery without a base
   * backup source or without archiving): shown, and failed by `backupctl check`.
   */
  configuration: string[];
  /** The newest retention run recorded in the repositories (backupctl prune, the daily schedule). */
  latestRetention: { reportId: string; decidedAt: string; dryRun: boolean; deletedBackups: number; deletedWal: number; foundIn: string } | null;
  /** RPO and RTO measured now against config `objectives` (engine/objectives.ts). */
  objectives: ObjectivesStatus;
  problems: Problem[];
  /** What the monitor's look re-read of the integrity sample (never `backupctl status`: it reads nothing back). */
  integrity?: IntegritySummary;
}

async function latestBaseBackup(repositories: Repository[], expected: ExpectedSource, verifier: Verifier, problems: Problem[], now: number): Promise<HealthReport['latestBaseBackup']> {
  const { copiesById, damaged } = await scanCatalog(repositories, 'base', verifier);
  // A base backup of another cluster cannot start a recovery of ours; an unsigned or wrongly signed one starts none by default.
  const ours = (c: { manifest: { server: { systemIdentifier: string } } }) => ['match', 'unchecked'].includes(sourceVerdict({ systemIdentifier: c.manifest.server.systemIdentifier }, expected).kind);
  // Repository by repository, in their order: its damaged manifests, then its wrongly signed base
  // backups of ours, oldest first. A repository that cannot be listed is reported elsewhere.
  for (const repository of repositories) {
    damaged.filter((d) => d.repository === repository.name).forEach((d) => problems.push({ key: `catalog.damaged:${d.repository}:${d.key}`, message: d.reason }));
    [...copiesById.values()]
      .flatMap((copies) => copies.filter((c) => c.repository === repository.name))
      .sort((a, b) => a.manifest.startedAt.localeCompare(b.manifest.startedAt))
      .filter((c) => ours(c) && c.signature.state === 'bad-signature')
      .forEach((c) =>
        problems.push({ key: `base.bad-signature:${c.repository}:${c.manifest.backupId}`, message: `base backup ${c.manifest.backupId} in ${c.repository}: manifest ${(c.signature as { reason: string }).reason}` }),
      );
  }
  let newest: { backupId: string; stoppedAt: string; foundIn: string[] } | undefined;
  for (const copies of copiesById.values()) {
    const signed = copies.filter((c) => ours(c) && c.signature.state === 'signed');
    if (signed.length && (!newest || signed[0].manifest.backup.stoppedAt > newest.stoppedAt)) {
      newest = { backupId: signed[0].manifest.backupId, stoppedAt: signed[0].manifest.backup.stoppedAt, foundIn: signed.map((c) => c.repository) };
    }
  }
  if (!newest) return null;
  return { ...newest, ageDays: Math.round(((now - Date.parse(newest.stoppedAt)) / 86_400_000) * 100) / 100 };
}

async function walArchiveStatus(config: Config, repositories: Repository[], now: number): Promise<WalArchiveStatus | null> {
  let spool: Repository;
  try {
    spool = spoolRepository(config, repositories);
  } catch {
    return null; // no filesystem repository here: this host keeps no WAL archive
  }
  const newest = newestSegmentOf(await listWalEntries(spool));
  if (!newest) return null;
  const newestEntry = await readWalEntry(spool, newest);
  const status: WalArchiveStatus = { spool: spool.name, newestSegment: newest, newestArchivedAt: newestEntry?.archivedAt ?? '', repositories: [] };
  for (const target of repositories.filter((r) => r !== spool)) {
    try {
      const lag = await archiveLag(spool, target);
      const oldestMissing = lag.behind[0] ? await readWalEntry(spool, lag.behind[0]) : undefined;
      const lagSeconds = oldestMissing ? Math.round((now - Date.parse(oldestMissing.archivedAt)) / 1000) : 0;
      status.repositories.push({ name: target.name, newestSegment: lag.newestSegment, behind: lag.behind.length, lagSeconds });
    } catch (err) {
      // Unreachable now: the spool keeps the segments, and shipping catches up when it returns.
      status.repositories.push({ name: target.name, newestSegment: null, behind: null, lagSeconds: null, error: (err as Error).message });
    }
  }
  return status;
}

/** The newest retention report in the first repository that holds one (report ids sort by time). */
async function latestRetention(repositories: Repository[]): Promise<HealthReport['latestRetention']> {
  for (const repository of repositories) {
    try {
      const keys = (await repository.list(RETENTION_REPORT_PREFIX)).map((o) => o.key).filter((k) => /^retention\/[^/]+\.json$/.test(k)).sort();
      const newest = keys.at(-1);
      if (!newest) continue;
      const report = await readReport(repository, newest.slice(RETENTION_REPORT_PREFIX.length, -'.json'.length));
      const deletedBackups = report.backups.filter((b) => b.action === 'delete').length;
      const deletedWal = report.wal.reduce((n, w) => n + w.delete.length, 0);
      return { reportId: report.reportId, decidedAt: report.decidedAt, dryRun: report.dryRun, deletedBackups, deletedWal, foundIn: repository.name };
    } catch {
      continue;
    }
  }
  return null;
}

function hasSpool(config: Config, repositories: Repository[]): boolean {
  try {
    spoolRepository(config, repositories);
    return true;
  } catch {
    return false;
  }
}

/** The archive queue's problems: archiving failing, or falling behind (pg_wal grows until the disk is full). */
export function walQueueIssues(queue: HealthReport['walQueue'], maxSegments: number): Problem[] {
  if (!queue) return [];
  if (queue.error !== undefined) {
    return [{ key: 'wal.queue-unreadable', message: `PostgreSQL's WAL archive queue cannot be read: ${queue.error}${/permission denied/i.test(queue.error) ? ' (the role needs pg_monitor)' : ''}` }];
  }
  const problems: Problem[] = [];
  if (queue.failing) problems.push({ key: 'wal.archiving-failing', message: `archive_command is failing: ${queue.archiver.lastFailedWal} failed at ${queue.archiver.lastFailedTime} (the PostgreSQL log has its message)` });
  const age = queue.oldestReadySeconds ?? 0;
  if (queue.ready > maxSegments || age > WAL_MAX_LAG_SECONDS) {
    problems.push({
      key: 'wal.archiving-behind',
      message: `WAL archiving is behind: ${queue.ready} WAL file(s) wait in pg_wal, the oldest ready since ${queue.oldestReadyAt} (${age} s); pg_wal grows until archiving catches up (limit ${maxSegments} files, ${WAL_MAX_LAG_SECONDS} s)`,
    });
  }
  return problems;
}

/** A repository full now or soon at the recent growth rate. */
export function storageIssues(stats: RepositoryStats[]): Problem[] {
  const problems: Problem[] = [];
  for (const s of stats) {
    if (!s.reachable || s.daysUntilFull === null) continue;
    if (s.daysUntilFull === 0) problems.push({ key: `storage.full:${s.repository}`, message: `repository ${s.repository} (${s.location}) is FULL: no space left on its filesystem` });
    else if (s.daysUntilFull < STORAGE_FULL_WITHIN_DAYS) {
      problems.push({
        key: `storage.filling:${s.repository}`,
        message: `repository ${s.repository} (${s.location}) is full in ${s.daysUntilFull.toFixed(1)} days: ${formatBytes(s.freeBytes ?? 0)} free, growing ${formatBytes(s.growthBytesPerDay ?? 0)}/day (the last ${GROWTH_WINDOW_DAYS} days)`,
      });
    }
  }
  return problems;
}

/** Everything but Temporal: catalog, verification, WAL, base backups, storage, retention, objectives. */
export async function assessHealth(config: Config, repositories: Repository[], now = Date.now()): Promise<HealthReport> {
  const problems: Problem[] = [];
  const add = (key: string, message: string) => problems.push({ key, message });
  const { maxAgeHours } = config.objectives;
  const report: HealthReport = {
    recentBackups: [],
    latestBackup: null,
    latestVerification: null,
    walArchive: null,
    walQueue: null,
    latestBaseBackup: null,
    storage: [],
    configuration: [],
    latestRetention: null,
    objectives: null as unknown as ObjectivesStatus,
    problems,
  };
  const expected = await expectedSource(config);
  let verifier: Verifier = { keys: [], host: config.host };
  try {
    verifier = await loadVerifier(config);
  } catch (err) {
    add('signing.unusable', `signatures cannot be checked: ${(err as Error).message}`);
  }
  const { entries: listed, errors, damaged } = await readCatalog(repositories, verifier, expected);
  errors.forEach((e) => add(`repository.unreadable:${e.repository}`, `repository ${e.repository} cannot be read: ${e.error}`));
  damaged.forEach((d) => add(`catalog.damaged:${d.repository}:${d.key}`, d.reason));
  // Only backups of the configured database and cluster are ours (a shared repository holds
  // others), and only signed ones count: an unsigned one is never `latest`.
  const signed = listed.filter((e) => e.signature === 'signed');
  const choice = pickLatest(signed, (e) => ({ database: e.database, systemIdentifier: e.systemIdentifier ?? undefined }), (e) => e.startedAt, expected);
  for (const e of listed.filter((e) => e.signature !== 'signed' && e.sourceMatch === 'match')) {
    if (e.signature === 'bad-signature') add(`database.bad-signature:${e.backupId}`, `backup ${e.backupId} is wrongly signed and never used: manifest ${e.signatureProblem}`);
    else if (!choice.chosen || e.startedAt > choice.chosen.startedAt) {
      add(
        `database.unsigned-newer:${e.backupId}`,
        `backup ${e.backupId} is newer than the newest signed backup${choice.chosen ? ` (${choice.chosen.backupId})` : ''} but UNSIGNED: not counted (planted, or made by a host without signing.privateKeyFile)`,
      );
    }
  }
  if (choice.refusal) add('source.refused', choice.refusal);
  if (choice.warning) add('source.warning', choice.warning);
  const latest = choice.chosen;
  const entries = listed.filter((e) => e.sourceMatch === 'match' || (latest && e.systemIdentifier === latest.systemIdentifier));
  report.recentBackups = entries
    .filter((e) => e.signature === 'signed')
    .slice(-RECENT_BACKUPS)
    .map((e) => ({ backupId: e.backupId, startedAt: e.startedAt, finishedAt: e.finishedAt, bytes: e.bytes, foundIn: e.foundIn }));
  if (latest) {
    const ageHours = (now - Date.parse(latest.finishedAt)) / 3600_000;
    report.latestBackup = { backupId: latest.backupId, finishedAt: latest.finishedAt, ageHours: Math.round(ageHours * 100) / 100, foundIn: latest.foundIn };
    if (ageHours > maxAgeHours.database) add('database.stale', `the newest database backup is ${ageHours.toFixed(1)} hours old (at most ${maxAgeHours.database} expected)`);
    const missing = repositories.map((r) => r.name).filter((name) => !latest.foundIn.includes(name));
    if (missing.length) add('database.copy-missing', `the newest backup is missing from: ${missing.join(', ')}`);
  } else {
    add('database.none', 'there is no complete database backup');
  }
  const verified = entries
    .filter((e) => e.lastVerification)
    .sort((a, b) => a.lastVerification!.finishedAt.localeCompare(b.lastVerification!.finishedAt))
    .at(-1);
  if (verified) {
    const v = verified.lastVerification!;
    const ageDays = (now - Date.parse(v.finishedAt)) / 86_400_000;
    report.latestVerification = { backupId: verified.backupId, reportId: v.reportId, ok: v.ok, finishedAt: v.finishedAt, ageDays: Math.round(ageDays * 100) / 100, copies: v.copies };
    if (!v.ok) add('verification.failed', `the newest verification (backup ${verified.backupId}) FAILED: ${v.failure ?? 'see its report'}`);
    // A restorable backup with a damaged copy has lost a copy the 3-2-1 rule counts on.
    if (v.copies?.damaged.length) add('verification.copies-damaged', `the newest verification (backup ${verified.backupId}) found ${v.copies.summary}: ${v.copies.problems.join('; ')}`);
    if (v.copies?.notChecked) add('verification.copies-unchecked', `the newest verification (backup ${verified.backupId}) could not check its copies: ${v.copies.notChecked}`);
    if (ageDays * 24 > maxAgeHours.verification) add('verification.stale', `the newest verification is ${ageDays.toFixed(1)} days old (at most ${(maxAgeHours.verification / 24).toFixed(1)} expected)`);
  } else {
    // None yet is fine for a new installation; not once backups have been made for longer than a verification may take.
    const oldest = entries.filter((e) => e.signature === 'signed').reduce<string | undefined>((min, e) => (!min || e.finishedAt < min ? e.finishedAt : min), undefined);
    const madeForHours = oldest ? (now - Date.parse(oldest)) / 3_600_000 : 0;
    if (madeForHours > maxAgeHours.verification) {
      add(
        'verification.none',
        `no backup has ever been verified, though backups have been made for ${(madeForHours / 24).toFixed(1)} days (a verification at least every ${(maxAgeHours.verification / 24).toFixed(1)} days expected): backupctl verify latest`,
      );
    }
  }
  try {
    report.walArchive = await walArchiveStatus(config, repositories, now);
    for (const r of report.walArchive?.repositories ?? []) {
      if (r.error) add(`wal.unreadable:${r.name}`, `the WAL archive in ${r.name} cannot be read: ${r.error}`);
      else if ((r.lagSeconds ?? 0) > WAL_MAX_LAG_SECONDS) {
        add(`wal.lag:${r.name}`, `WAL shipping to ${r.name} is ${r.behind} segment(s), ${r.lagSeconds} s behind (is the wal-shipping workflow running? is ${r.name} reachable?)`);
      }
    }
  } catch (err) {
    add('wal.archive-unreadable', `the WAL archive cannot be read: ${(err as Error).message}`);
  }
  // On a host that archives WAL (it has a spool, perhaps still empty: archiving that fails from
  // the start): is PostgreSQL's queue keeping up?
  if (hasSpool(config, repositories)) {
    try {
      report.walQueue = await archiveQueue(config);
    } catch (err) {
      report.walQueue = { error: errorText(err) };
    }
    problems.push(...walQueueIssues(report.walQueue, config.wal.queueMaxSegments));
  }
  report.latestBaseBackup = await latestBaseBackup(repositories, expected, verifier, problems, now);
  if (report.latestBaseBackup) {
    const { backupId, foundIn } = report.latestBaseBackup;
    const missing = repositories.map((r) => r.name).filter((name) => !foundIn.includes(name));
    if (missing.length) add('base.copy-missing', `the newest base backup ${backupId} is missing from: ${missing.join(', ')}`);
  } else if (baseBackupsWanted(config)) {
    add('base.none', 'there is no complete base backup: point-in-time recovery has nowhere to start (backupctl backup base)');
  }
  // The age unrounded: rounded to 0.01 days it reads 8.00 for up to 7 minutes past the bound.
  if (report.latestBaseBackup && (now - Date.parse(report.latestBaseBackup.stoppedAt)) / 3_600_000 > maxAgeHours.base) {
    add('base.stale', `the newest base backup is ${report.latestBaseBackup.ageDays.toFixed(1)} days old: point-in-time recovery replays all the WAL since`);
  }
  report.storage = await repositoryStats(repositories, { verifier });
  problems.push(...storageIssues(report.storage));
  // A repository that cannot be read is already a problem (above); one readable for the catalog but not for this is one too.
  for (const s of report.storage) {
    if (!s.reachable && !problems.some((p) => p.key === `repository.unreadable:${s.repository}`)) add(`repository.unmeasured:${s.repository}`, `repository ${s.repository} cannot be measured: ${s.error}`);
  }
  report.configuration = pitrPreconditionProblems(config);
  report.latestRetention = await latestRetention(repositories);
  const queue = report.walQueue && report.walQueue.error === undefined ? report.walQueue : undefined;
  const assessed = assessObjectives(
    {
      now,
      newestDumpAt: latest?.startedAt,
      pitr: Boolean(report.latestBaseBackup && report.walArchive),
      archiveQueueSeconds: queue ? (queue.oldestReadySeconds ?? 0) : undefined,
      shippingLagSeconds: (report.walArchive?.repositories ?? []).map((r) => ({ repository: r.name, seconds: r.error ? null : r.lagSeconds })),
      lastDrill: await latestDrillReport<DrillReport>(repositories, now).catch(() => undefined),
    },
    config.objectives,
  );
  report.objectives = assessed.status;
  problems.push(...assessed.problems);
  return report;
}
