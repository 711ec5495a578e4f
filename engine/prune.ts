// Retention's acts: the decision recorded as a report in the repositories, then carried out in
// one repository. The order makes a crash at any moment safe: every manifest that goes, goes
// first (so a backup is never listed as complete while half deleted), then each WAL file's
// entry (its "manifest"), then the objects. A retry carries out the same report again (a key
// already gone is no error); whatever a crash still leaves (objects without a manifest) is a
// leftover of a finished backup, which the next run removes. Each batch is fenced: an attempt
// that no longer stands (its workflow closed, a newer attempt runs) deletes nothing more.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { ErrorType } from '../common/types.js';
import type { RepositoryRetention } from '../common/retentionTypes.js';
import { assertAttemptStands } from './attemptStanding.js';
import { writeJson } from './catalog.js';
import { errorText, permanent } from './errors.js';
import { admitted, checkSignature, signManifest, type Signer, type Trust } from './manifestSignature.js';
import type { BackupDecision, RetentionDecision, WalDecision } from './retention.js';
import { eachLimited, RETENTION_FOLDERS, type CatalogReading } from './retentionCatalog.js';
import { assertSafeKey, removeObjects, type ObjectInfo, type Repository } from './storage/repository.js';

export const RETENTION_REPORT_PREFIX = 'retention/';
/** Keys deleted between two checks that this attempt still stands: four S3 requests in flight. */
const KEYS_PER_FENCE = 4000;
/** What a repository's summary (a workflow payload) quotes of the notes; the report holds them all. */
const NOTES_IN_SUMMARY = 20;
/** Pruned markers written at once (small PUTs). */
const MARKERS_AT_ONCE = 16;


/**
 * Where a repository says it let a backup go by retention: the copy audit then knows a copy
 * that is gone from here was pruned, not lost (the manifest in another repository still lists
 * this repository among its copies). Written after the manifest goes, before the objects.
 */
export function prunedMarkerKey(component: string, backupId: string): string {
  return `${RETENTION_REPORT_PREFIX}pruned/${component}/${backupId}.json`;
}

export interface PrunedMarker {
  component: string;
  backupId: string;
  repository: string;
  reportId: string;
  decidedAt: string;
  reasons: string[];
}

function signedIf(marker: PrunedMarker, signer: Signer | undefined): PrunedMarker {
  return signer ? signManifest(marker, signer) : marker;
}

/**
 * Whether `repository` records letting this backup go by retention, with a marker trusted as
 * a manifest is (signed by a trusted key; unsigned only where unsigned manifests are admitted),
 * of this backup and this repository. A marker planted, copied from elsewhere, damaged, or
 * unreadable is no proof: the copy is then taken for lost, not pruned (a false alarm rather
 * than a loss unseen).
 */
export async function prunedHere(repository: Repository, component: string, backupId: string, trust: Trust): Promise<boolean> {
  try {
    const parsed: unknown = JSON.parse(await text(await repository.get(prunedMarkerKey(component, backupId))));
    if (!parsed || typeof parsed !== 'object') return false;
    const marker = parsed as Partial<PrunedMarker>;
    if (marker.component !== component || marker.backupId !== backupId || marker.repository !== repository.name) return false;
    return admitted(checkSignature(parsed, trust.verifier), trust.allowUnsigned);
  } catch {
    return false;
  }
}

export function retentionReportKey(reportId: string): string {
  return `${RETENTION_REPORT_PREFIX}${reportId}.json`;
}

/** The decision as recorded: what goes, why, what stays, in every repository that could be read. */
export interface RetentionReportFile {
  formatVersion: 1;
  reportId: string;
  workflowId: string;
  runId: string;
  dryRun: boolean;
  decidedAt: string;
  timezone: string;
  scope: { components?: string[]; repositories?: string[] };
  unreachable: CatalogReading['unreachable'];
  forTheSweep: string[];
  notes: { repository: string; notes: string[] }[];
  /** Every backup's fate, with the bytes its folder holds. */
  backups: (BackupDecision & { bytes: number })[];
  /** Each repository's WAL decision, with how many WAL files it held and the bytes that go. */
  wal: (WalDecision & { held: number; bytesToFree: number })[];
}

export function buildReport(meta: Pick<RetentionReportFile, 'reportId' | 'workflowId' | 'runId' | 'dryRun' | 'timezone' | 'scope'>, reading: CatalogReading, decision: RetentionDecision): RetentionReportFile {
  const contents = new Map(reading.contents.map((c) => [c.repository, c]));
  const folderBytes = (d: BackupDecision) => (contents.get(d.repository)?.backupKeys[d.component as 'database' | 'base']?.get(d.backupId) ?? []).reduce((n, o) => n + o.bytes, 0);
  return {
    formatVersion: 1,
    ...meta,
    decidedAt: new Date(decision.now).toISOString(),
    unreachable: reading.unreachable,
    forTheSweep: reading.forTheSweep,
    notes: reading.contents.filter((c) => c.notes.length).map((c) => ({ repository: c.repository, notes: c.notes })),
    backups: decision.backups.map((d) => ({ ...d, bytes: folderBytes(d) })),
    wal: decision.wal.map((w) => {
      const keys = contents.get(w.repository)?.walKeys;
      return { ...w, held: keys?.size ?? 0, bytesToFree: w.delete.reduce((n, name) => n + (keys?.get(name) ?? []).reduce((m, o) => m + o.bytes, 0), 0) };
    }),
  };
}

/** Notes for a workflow's history: the first few, and how many more the report holds. */
function summarized(notes: string[]): string[] {
  return notes.length <= NOTES_IN_SUMMARY ? notes : [...notes.slice(0, NOTES_IN_SUMMARY), `... and ${notes.length - NOTES_IN_SUMMARY} more (the report lists them all)`];
}

/** What a report means for one repository, before anything is done (a dry run's answer). */
export function plannedFor(report: RetentionReportFile, repository: string): RepositoryRetention {
  const unreachable = report.unreachable.find((u) => u.repository === repository);
  const backups = report.backups.filter((b) => b.repository === repository);
  const doomed = backups.filter((b) => b.action === 'delete');
  const wal = report.wal.find((w) => w.repository === repository);
  return {
    repository,
    ...(unreachable ? { unreachable: unreachable.reason } : {}),
    backups: { kept: backups.length - doomed.length, deleted: doomed.length, failed: 0, bytesFreed: doomed.reduce((n, b) => n + b.bytes, 0) },
    wal: { kept: (wal?.held ?? 0) - (wal?.delete.length ?? 0), deleted: wal?.delete.length ?? 0, failed: 0, bytesFreed: wal?.bytesToFree ?? 0, ...(wal?.keepFrom ? { keepFrom: wal.keepFrom } : {}), unshipped: wal?.unshipped.length ?? 0 },
    notOurs: summarized(report.notes.find((n) => n.repository === repository)?.notes ?? []),
    failures: [],
  };
}

/** The report as it is stored: these bytes in every repository. */
function reportBody(report: RetentionReportFile): Buffer {
  return Buffer.from(JSON.stringify(report, null, 2) + '\n');
}

/**
 * Writes the report into each repository; returns those that hold it, why the others do not,
 * and its sha256. The workflow keeps the digest (in its history, out of any repository's
 * reach) and hands it to each prune: a report rewritten in one repository (by whoever can
 * write there, or a stale attempt of this decision waking late) is then refused, not carried out.
 */
export async function recordReport(repositories: Repository[], report: RetentionReportFile): Promise<{ recordedIn: string[]; failed: { repository: string; reason: string }[]; sha256: string }> {
  const recordedIn: string[] = [];
  const failed: { repository: string; reason: string }[] = [];
  const body = reportBody(report);
  for (const repository of repositories) {
    try {
      await repository.put(retentionReportKey(report.reportId), Readable.from([body]), { contentLength: body.length });
      recordedIn.push(repository.name);
    } catch (err) {
      failed.push({ repository: repository.name, reason: errorText(err) });
    }
  }
  return { recordedIn, failed, sha256: createHash('sha256').update(body).digest('hex') };
}

/**
 * A recorded report, checked to be the one asked for: its id, and, given the digest the
 * decision returned, byte for byte the report recorded (else ManifestDamaged, nothing deleted).
 */
export async function readReport(repository: Repository, reportId: string, expectedSha256?: string): Promise<RetentionReportFile> {
  const key = retentionReportKey(reportId);
  let report: RetentionReportFile;
  try {
    const stored = await text(await repository.get(key));
    if (expectedSha256 !== undefined) {
      const sha256 = createHash('sha256').update(stored).digest('hex');
      if (sha256 !== expectedSha256) {
        throw permanent(ErrorType.ManifestDamaged, `${repository.name}: the retention report ${key} is not the one recorded (sha256 ${sha256}, the decision recorded ${expectedSha256}): rewritten since; nothing deleted`);
      }
    }
    report = JSON.parse(stored) as RetentionReportFile;
  } catch (err) {
    if (err instanceof SyntaxError) throw permanent(ErrorType.ManifestDamaged, `${repository.name}: the retention report ${key} is not whole JSON; nothing deleted`);
    throw err;
  }
  if (report?.formatVersion !== 1 || report.reportId !== reportId || !Array.isArray(report.backups) || !Array.isArray(report.wal)) {
    throw permanent(ErrorType.ManifestDamaged, `${repository.name}: the retention report ${key} is not report ${reportId}; nothing deleted`);
  }
  return report;
}

export interface ApplyOptions {
  signal?: AbortSignal;
  /** Signs the pruned markers (the copy audit admits them as it admits manifests). */
  signer?: Signer;
  /** Keys removed so far, for heartbeats. */
  onProgress?: (removed: number) => void;
}

/**
 * Carries out a report's deletions in one repository: manifests, then WAL entries, then the
 * rest; never a dry run's report (permanent InvalidInput). Idempotent. Deletions that fail are returned (the next run tries again); a repository
 * that cannot be listed or refuses a whole batch throws, classified.
 */
export async function applyReport(repository: Repository, report: RetentionReportFile, options: ApplyOptions = {}): Promise<RepositoryRetention> {
  // A dry run decides and records, and deletes nothing, whoever asks.
  if (report.dryRun !== false) throw permanent(ErrorType.InvalidInput, `${repository.name}: the retention report ${report.reportId} is a dry run's (dryRun ${JSON.stringify(report.dryRun)}); nothing deleted`);
  const summary = plannedFor(report, repository.name);
  const doomed = report.backups.filter((b) => b.repository === repository.name && b.action === 'delete');
  const wal = report.wal.find((w) => w.repository === repository.name);
  const doomedWal = new Set(wal?.delete ?? []);
  let removed = 0;
  const progress = (n: number) => options.onProgress?.(removed + n);

  // One listing per folder that has something to go, all at once: keys under the doomed
  // backups' folders; WAL only up to the last segment that goes (what goes lies below what
  // stays; a segment's entry, object, .partial and .backup files all start with its 24
  // characters, and every character of our keys sorts before DEL).
  const idsOf = (component: string) => new Set(doomed.filter((b) => b.component === component).map((b) => b.backupId));
  const last = doomedWal.size ? [...doomedWal].map((name) => name.slice(0, 24)).reduce((a, b) => (a > b ? a : b)) : undefined;
  const [walListing, ...folderListings] = await Promise.all([
    last === undefined ? [] : repository.list('wal/', { before: `wal/${last}\u007f` }),
    ...RETENTION_FOLDERS.map((component) => (idsOf(component).size ? repository.list(`${component}/`) : [])),
  ]);
  const folders = new Map<string, ObjectInfo[]>();
  for (const [i, component] of RETENTION_FOLDERS.entries()) {
    const ids = idsOf(component);
    for (const object of folderListings[i]) {
      const id = object.key.split('/')[1];
      if (!ids.has(id)) continue;
      const key = `${component}/${id}`;
      const held = folders.get(key);
      if (held) held.push(object);
      else folders.set(key, [object]);
    }
  }
  const walNameOf = (o: ObjectInfo) => o.key.slice(4).replace(/(\.json|\.[a-z0-9]+\.gpg)$/, '');
  const walObjects = walListing.filter((object) => doomedWal.has(walNameOf(object)));
  const inFolders = [...folders.values()].flat();
  const isManifest = (o: ObjectInfo) => o.key.split('/').length === 3 && o.key.endsWith('/manifest.json');
  const manifests = inFolders.filter(isManifest);
  const entries = walObjects.filter((o) => o.key.endsWith('.json'));

  const failures = new Map<string, string>();
  // A key none of our repositories writes (a space, a "..": planted where S3 takes any key) is
  // left alone and reported; it must not fail the removal of the rest.
  const ours = (o: ObjectInfo) => {
    try {
      assertSafeKey(o.key);
      return true;
    } catch {
      failures.set(o.key, 'not a key of ours (unsafe characters); left alone');
      return false;
    }
  };
  const phase = async (what: string, all: ObjectInfo[]) => {
    const objects = all.filter(ours);
    if (!objects.length) return;
    // Fenced before every few requests, not once a phase: a stale attempt (its workflow
    // closed, or a newer attempt took over; a frozen worker resumed mid-phase) deletes at most
    // the chunk it had begun.
    for (let i = 0; i < objects.length; i += KEYS_PER_FENCE) {
      const chunk = objects.slice(i, i + KEYS_PER_FENCE);
      await assertAttemptStands(`pruning ${repository.name} (${what})`);
      const result = await removeObjects(repository, chunk.map((o) => o.key), { signal: options.signal, onProgress: progress });
      for (const f of result.failed) failures.set(f.key, f.reason);
      removed += chunk.length;
      options.onProgress?.(removed);
    }
  };
  // Manifests and WAL entries together (what says a backup or a segment is whole goes first,
  // in one phase: at most one partial batch between the phases).
  await phase('manifests and WAL entries', [...manifests, ...entries]);
  // A manifest or WAL entry that stays (its deletion refused) still names its objects: they
  // stay too, and the next run tries again (else a copy would look whole and not restore).
  const standing = new Set([...manifests.filter((o) => failures.has(o.key)).map((o) => o.key.split('/').slice(0, 2).join('/')), ...entries.filter((o) => failures.has(o.key)).map((o) => `wal/${walNameOf(o)}`)]);
  const ownerOf = (o: ObjectInfo) => (o.key.startsWith('wal/') ? `wal/${walNameOf(o)}` : o.key.split('/').slice(0, 2).join('/'));
  const rest: ObjectInfo[] = [];
  for (const o of [...inFolders.filter((o) => !isManifest(o)), ...walObjects.filter((o) => !o.key.endsWith('.json'))]) {
    if (!standing.has(ownerOf(o))) rest.push(o);
    else failures.set(o.key, 'kept: the manifest or WAL entry naming it could not be deleted');
  }
  // A marker only where a copy stays in another repository (the copy audit reads it there);
  // a backup gone from every repository is never audited again. Several written at once.
  // Never for a leftover (no manifest here when decided): that copy was lost or never whole,
  // not let go by the policy, and the audit must go on saying so.
  const keptElsewhere = new Set(report.backups.filter((b) => b.repository !== repository.name && b.action === 'keep').map((b) => `${b.component}/${b.backupId}`));
  const marked = doomed.filter((b) => !b.leftover && folders.has(`${b.component}/${b.backupId}`) && !standing.has(`${b.component}/${b.backupId}`) && keptElsewhere.has(`${b.component}/${b.backupId}`));
  await eachLimited(marked, MARKERS_AT_ONCE, (b) =>
    writeJson(repository, prunedMarkerKey(b.component, b.backupId), signedIf({ component: b.component, backupId: b.backupId, repository: repository.name, reportId: report.reportId, decidedAt: report.decidedAt, reasons: b.reasons }, options.signer)),
  );
  await phase('objects', rest);

  const failedIn = (objects: ObjectInfo[]) => objects.filter((o) => failures.has(o.key));
  const backupFailed = doomed.filter((b) => failedIn(folders.get(`${b.component}/${b.backupId}`) ?? []).length > 0);
  const walFailed = new Set(failedIn(walObjects).map(walNameOf));
  const freed = (objects: ObjectInfo[]) => objects.filter((o) => !failures.has(o.key)).reduce((n, o) => n + o.bytes, 0);
  return {
    ...summary,
    backups: { ...summary.backups, kept: summary.backups.kept + backupFailed.length, deleted: doomed.length - backupFailed.length, failed: backupFailed.length, bytesFreed: freed([...folders.values()].flat()) },
    wal: { ...summary.wal, kept: summary.wal.kept + walFailed.size, deleted: doomedWal.size - walFailed.size, failed: walFailed.size, bytesFreed: freed(walObjects) },
    failures: [...failures].slice(0, 50).map(([key, reason]) => `${key}: ${reason}`),
  };
}
