// The catalog is the manifests: one JSON file beside every backup, in every repository,
// written last. "The manifest exists" means "this backup is complete and verified", so the
// catalog can be rebuilt from any single repository. A manifest carries the backup host's
// signature (manifestSignature.ts); readers that trust a manifest check it.
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { z } from 'zod';
import { COMPRESSIONS, ErrorType, type BackupManifest, type Compression, type SignatureVerdict, type StoredObject } from '../common/types.js';
import type { BaseBackupManifest } from '../common/pitrTypes.js';
import type { SkippedCopy } from '../common/restoreTypes.js';
import { compressionSuffix } from './compression.js';
import { classifyFilesystemError, errorText, isEngineError, permanent } from './errors.js';
import { admitted, checkSignature, refusalOf, type Trust, type Verifier } from './manifestSignature.js';
import { LongerThanExpected, readBack, type Reader } from './readBack.js';
import type { ObjectInfo, PutOptions, Repository } from './storage/repository.js';

const MANIFEST_NAME = 'manifest.json';

/** What a backup is of: a logical dump of the database, or a physical base backup of its cluster. */
export type Component = 'database' | 'base';

/** The folder every backup of a component lives under. */
/** No manifest of ours comes near this: a larger one is planted or damaged, and is not read into memory. */
export const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;
/** A manifest read that moves no byte for this long fails as unreachable. */
const MANIFEST_IDLE_MS = 60_000;

export function componentPrefix(component: Component): string {
  return `${component}/`;
}

export function backupPrefix(component: Component, backupId: string): string {
  return `${componentPrefix(component)}${backupId}/`;
}

export function manifestKey(component: Component, backupId: string): string {
  return backupPrefix(component, backupId) + MANIFEST_NAME;
}

export const OBJECT_NAMES: Record<StoredObject['role'], string> = {
  dump: 'dump.pgcustom',
  globals: 'globals.sql',
  base: 'base.tar',
};

export function objectKey(component: Component, backupId: string, role: StoredObject['role'], compression: Compression): string {
  return `${backupPrefix(component, backupId)}${OBJECT_NAMES[role]}.${compressionSuffix(compression)}.gpg`;
}

/** A manifest as stored: the same bytes for the same manifest, so a rewrite can be compared. */
export function manifestBody(manifest: object): Buffer {
  return Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
}

export async function writeManifest(repository: Repository, manifest: { component: Component; backupId: string }): Promise<void> {
  const body = manifestBody(manifest);
  await repository.put(manifestKey(manifest.component, manifest.backupId), Readable.from([body]), { contentLength: body.length });
}

export interface ManifestOf {
  database: BackupManifest;
  base: BaseBackupManifest;
}

// Only what the readers rely on is checked; fields added later pass through.
const storedObject = z.looseObject({
  role: z.enum(['dump', 'globals', 'base']),
  key: z.string(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
const common = {
  formatVersion: z.literal(1),
  backupId: z.string(),
  runId: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  compression: z.enum(COMPRESSIONS),
  encryption: z.looseObject({ recipientFingerprint: z.string() }),
  objects: z.array(storedObject).min(1),
};
const SHAPES: Record<Component, z.ZodType> = {
  database: z.looseObject({
    ...common,
    component: z.literal('database'),
    source: z.looseObject({ database: z.string(), snapshotTakenAt: z.string(), systemIdentifier: z.string().optional() }),
    rowCounts: z.record(z.string(), z.number()),
  }),
  base: z.looseObject({
    ...common,
    component: z.literal('base'),
    server: z.looseObject({ systemIdentifier: z.string(), versionNum: z.number() }),
    backup: z.looseObject({ timeline: z.number(), startLsn: z.string(), stopLsn: z.string(), stoppedAt: z.string() }),
  }),
};

/**
 * Why a manifest's bytes are not a manifest of this backup, or undefined when they are. A
 * manifest is evidence, not truth: it must parse, have the shape readers rely on, name the
 * backup and component of its key, and keep its objects inside its own folder. The reason
 * never quotes the file's content.
 */
function damage<C extends Component>(body: string, component: C, backupId: string): { reason: string } | { manifest: ManifestOf[C] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { reason: `is not valid JSON (${body.length} bytes; truncated or corrupt)` };
  }
  const shape = SHAPES[component].safeParse(parsed);
  if (!shape.success) {
    const fields = [...new Set(shape.error.issues.map((i) => i.path.join('.') || '(root)'))].slice(0, 5).join(', ');
    return { reason: `is not a whole ${component} manifest (bad or missing: ${fields})` };
  }
  const manifest = shape.data as ManifestOf[C];
  if (manifest.component !== component) return { reason: `is a ${String(manifest.component)} manifest, not a ${component} one` };
  if (manifest.backupId !== backupId) {
    const named = /^[A-Za-z0-9._-]{1,200}$/.test(manifest.backupId) ? manifest.backupId : 'an invalid id';
    return { reason: `names backup ${named}, not ${backupId} (a manifest copied from another backup)` };
  }
  const prefix = backupPrefix(component, backupId);
  // Directly in the folder (backups made before attempt folders), or in one attempt's folder.
  const outside = manifest.objects.find((o) => !o.key.startsWith(prefix) || !/^(r[0-9a-f]{12}-a[0-9]+\/)?[^/]+$/.test(o.key.slice(prefix.length)));
  if (outside) return { reason: `lists an object outside ${prefix}` };
  // The object as parsed, not the checker's copy: the very object whose signature is checked.
  return { manifest: parsed as ManifestOf[C] };
}

/** A manifest copy that is not used, reported like any skipped copy. */
export function damagedManifest(repository: string, key: string, reason: string, errorType: string = ErrorType.ManifestDamaged): SkippedCopy {
  return { repository, key, reason: `manifest ${key} in ${repository} ${reason}`, errorType };
}

/**
 * The manifest of a backup in one repository, or undefined when there is none. Throws a
 * permanent ManifestDamaged failure when the copy is damaged or names another backup.
 */
export async function readManifest<C extends Component>(repository: Repository, component: C, backupId: string): Promise<ManifestOf[C] | undefined> {
  const key = manifestKey(component, backupId);
  if (!(await repository.stat(key))) return undefined;
  const judged = damage(await text(await repository.get(key)), component, backupId);
  if ('reason' in judged) throw permanent(ErrorType.ManifestDamaged, damagedManifest(repository.name, key, judged.reason).reason);
  return judged.manifest;
}

export interface ManifestCopies<C extends Component> {
  /** The manifest used: the first whole, admitted copy in repository order (a signed one before an unsigned one). */
  manifest?: ManifestOf[C];
  /** What its signature proves. */
  signature?: SignatureVerdict;
  /** Repositories whose copy is whole and identical to it, in order. */
  holders: string[];
  /** Copies not used: damaged, another backup's, unsigned or wrongly signed, different content, or unreadable now. */
  skipped: SkippedCopy[];
}

/** One repository's whole copy of a manifest, and what its signature proves. */
export interface ManifestCopy<C extends Component> {
  repository: string;
  manifest: ManifestOf[C];
  signature: SignatureVerdict;
}

const RANK: Record<SignatureVerdict['state'], number> = { signed: 0, unsigned: 1, 'bad-signature': 2 };

/**
 * Which of one backup's whole manifest copies (in repository order) is used: the first
 * admitted one, a signed copy before an unsigned one before a wrongly signed one. A copy that
 * is not admitted, or is less proven than the one used (an unsigned copy beside a signed one),
 * or differs from it, is skipped and reported; the identical ones are its holders.
 */
export function chooseCopy<C extends Component>(copies: ManifestCopy<C>[], key: string, admit: (verdict: SignatureVerdict) => boolean): { chosen?: ManifestCopy<C>; holders: string[]; skipped: SkippedCopy[] } {
  const candidates = copies.filter((c) => admit(c.signature));
  const best = Math.min(...candidates.map((c) => RANK[c.signature.state]));
  const chosen = candidates.find((c) => RANK[c.signature.state] === best);
  const holders: string[] = [];
  const skipped: SkippedCopy[] = [];
  for (const copy of copies) {
    if (!admit(copy.signature) || (chosen && RANK[copy.signature.state] > best)) {
      const refusal = refusalOf(copy.signature);
      skipped.push(damagedManifest(copy.repository, key, refusal.reason, refusal.errorType));
    } else if (JSON.stringify(copy.manifest) !== JSON.stringify(chosen!.manifest)) {
      skipped.push(damagedManifest(copy.repository, key, `differs from the copy in ${chosen!.repository}; the copy in ${chosen!.repository} is used`));
    } else {
      holders.push(copy.repository);
    }
  }
  return { chosen, holders, skipped };
}

/**
 * One backup's manifest from every repository. The first whole copy whose signature verifies
 * wins (or, where unsigned backups are admitted and no copy is signed, the first unsigned
 * one); a damaged copy, an unsigned or wrongly signed one, one that differs from the copy
 * used, or a repository that cannot be read now is reported, never used.
 */
export async function readManifestCopies<C extends Component>(repositories: Repository[], component: C, backupId: string, trust: Trust): Promise<ManifestCopies<C>> {
  const key = manifestKey(component, backupId);
  const skipped: SkippedCopy[] = [];
  const whole: ManifestCopy<C>[] = [];
  for (const repository of repositories) {
    let body: string;
    try {
      if (!(await repository.stat(key))) continue;
      body = await text(await repository.get(key));
    } catch (err) {
      skipped.push(damagedManifest(repository.name, key, `cannot be read now: ${errorText(err)}`, ErrorType.StorageUnreachable));
      continue;
    }
    const judged = damage(body, component, backupId);
    if ('reason' in judged) skipped.push(damagedManifest(repository.name, key, judged.reason));
    else whole.push({ repository: repository.name, manifest: judged.manifest, signature: checkSignature(judged.manifest, trust.verifier) });
  }
  const choice = chooseCopy(whole, key, (verdict) => admitted(verdict, trust.allowUnsigned));
  return { manifest: choice.chosen?.manifest, signature: choice.chosen?.signature, holders: choice.holders, skipped: [...skipped, ...choice.skipped] };
}

/**
 * The repositories a manifest of the backup is in, by its presence alone (nothing is read or
 * verified); one that cannot be asked now is left out.
 */
export async function repositoriesHolding(repositories: Repository[], component: Component, backupId: string): Promise<Repository[]> {
  const holders: Repository[] = [];
  for (const repository of repositories) {
    if (await repository.stat(manifestKey(component, backupId)).catch(() => undefined)) holders.push(repository);
  }
  return holders;
}

/** The id a manifest key belongs to: `<component>/<id>/manifest.json`. */
function idOfKey(component: Component, key: string): string | undefined {
  const parts = key.split('/');
  return parts.length === 3 && parts[0] === component && parts[2] === MANIFEST_NAME ? parts[1] : undefined;
}

/** A whole manifest found by a scan, and what its signature proves. */
export interface Scanned<C extends Component> {
  manifest: ManifestOf[C];
  signature: SignatureVerdict;
}

/**
 * Every complete backup of a component in one repository, oldest first, each with its
 * signature's verdict under `verifier`, and the manifests that are damaged (reported, never
 * used). Whether an unsigned or wrongly signed one may be used is the caller's rule. Throws
 * when the repository cannot be listed, or a manifest in it cannot be read now.
 */
export async function scanManifests<C extends Component>(
  repository: Repository,
  component: C,
  verifier: Verifier,
  /** The component's listing, when the caller has already made it (repositoryStats.ts): not listed again. */
  listed?: ObjectInfo[],
  /** How long a read may move nothing (and its cancellation); a minute, uncancelled, when absent. */
  reader: Reader = { signal: new AbortController().signal, idleMs: MANIFEST_IDLE_MS, onBytes: () => undefined },
): Promise<{ manifests: Scanned<C>[]; damaged: SkippedCopy[] }> {
  const found = (listed ?? (await repository.list(componentPrefix(component)))).filter((o) => o.key.endsWith(`/${MANIFEST_NAME}`));
  const manifests: Scanned<C>[] = [];
  const damaged: SkippedCopy[] = [];
  for (const { key, bytes } of found) {
    const backupId = idOfKey(component, key);
    if (!backupId) continue; // a verification report's folder, or something that is not ours
    // Planted or grown, a file that large is no manifest of ours: not read into memory.
    if (bytes > MANIFEST_MAX_BYTES) {
      damaged.push(damagedManifest(repository.name, key, `is ${bytes} bytes; a manifest is at most ${MANIFEST_MAX_BYTES}`));
      continue;
    }
    let body: string;
    try {
      // A read that stalls (a store that answers and then sends nothing) fails as unreachable, never hangs the scan.
      body = (await readBack(repository, key, reader, true, undefined, MANIFEST_MAX_BYTES)).toString('utf8');
    } catch (err) {
      if (err instanceof LongerThanExpected) {
        damaged.push(damagedManifest(repository.name, key, `is more than ${MANIFEST_MAX_BYTES} bytes; no manifest is`));
        continue;
      }
      if (reader.signal.aborted) throw err;
      // Refused for good (access denied to this object): damaged, the rest still listed. For a
      // moment (or unknown): the repository cannot be listed now; passing over its newest
      // backup as damaged would make `latest` an older one.
      // A filesystem repository's read stream fails with raw Node errors: EACCES or EISDIR is
      // for good, as a permanent EngineError is; an unknown error counts as momentary.
      if ((isEngineError(err) ? err : classifyFilesystemError(err, `reading ${key} in repository ${repository.name}`)).retryable) throw err;
      damaged.push(damagedManifest(repository.name, key, `cannot be read: ${errorText(err)}`));
      continue;
    }
    const judged = damage(body, component, backupId);
    if ('reason' in judged) damaged.push(damagedManifest(repository.name, key, judged.reason));
    else manifests.push({ manifest: judged.manifest, signature: checkSignature(judged.manifest, verifier) });
  }
  return { manifests: manifests.sort((a, b) => a.manifest.startedAt.localeCompare(b.manifest.startedAt)), damaged };
}

/** Every backup of a component across repositories: its whole copies, in repository order. */
export interface CatalogScan<C extends Component> {
  /** Backup id -> its whole manifest copies, one per repository holding one, in repository order; ids in the order the repositories are met (each repository's oldest first), as the loops this replaced met them. */
  copiesById: Map<string, ManifestCopy<C>[]>;
  /** Damaged manifests (reported, never used). */
  damaged: SkippedCopy[];
  /** The repositories that could not be listed, and why. */
  unlisted: { repository: string; error: unknown }[];
}

/**
 * Every complete backup of a component in every repository, each copy with its signature's
 * verdict: what "the newest across repositories" is chosen from (chooseCopy picks each
 * backup's copy). A repository that cannot be listed is reported in `unlisted`, never fatal.
 */
export async function scanCatalog<C extends Component>(repositories: Repository[], component: C, verifier: Verifier): Promise<CatalogScan<C>> {
  const copiesById = new Map<string, ManifestCopy<C>[]>();
  const damaged: SkippedCopy[] = [];
  const unlisted: CatalogScan<C>['unlisted'] = [];
  for (const repository of repositories) {
    let scan: { manifests: Scanned<C>[]; damaged: SkippedCopy[] };
    try {
      scan = await scanManifests(repository, component, verifier);
    } catch (error) {
      unlisted.push({ repository: repository.name, error });
      continue;
    }
    damaged.push(...scan.damaged);
    for (const { manifest, signature } of scan.manifests) {
      const copies = copiesById.get(manifest.backupId) ?? [];
      copies.push({ repository: repository.name, manifest, signature });
      copiesById.set(manifest.backupId, copies);
    }
  }
  return { copiesById, damaged, unlisted };
}

/** Every whole manifest of a component in one repository, oldest first, signatures NOT checked: for tests and tools, never for a restore. */
export async function listManifests<C extends Component>(repository: Repository, component: C): Promise<ManifestOf[C][]> {
  return (await scanManifests(repository, component, { keys: [], host: 'unchecked' })).manifests.map((m) => m.manifest);
}

/** Verification reports live beside their backup; drill reports in their own folder. */
export function verificationKey(backupId: string, reportId: string): string {
  return `${backupPrefix('database', backupId)}verifications/${reportId}.json`;
}

export function drillKey(reportId: string): string {
  return `drills/${reportId}.json`;
}

export async function writeJson(repository: Repository, key: string, value: object, options: Pick<PutOptions, 'soleWriter'> = {}): Promise<void> {
  const body = Buffer.from(JSON.stringify(value, null, 2) + '\n');
  await repository.put(key, Readable.from([body]), { contentLength: body.length, ...options });
}

/** How far a report's date may lie ahead of this host's clock (another host's clock skew). */
const REPORT_CLOCK_SKEW_MS = 10 * 60 * 1000;

/**
 * The time a report id (`YYYYMMDD_HHMMSS-<hex>`, UTC) names, or NaN. A date that does not
 * exist (November 31st, hour 24) is NaN, not rolled over to another day: ids sort by their
 * text, and a rolled-over one would sort apart from the time it stands for.
 */
function reportIdTime(reportId: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})-[0-9a-f]{8}$/.exec(reportId);
  if (!m) return NaN;
  const time = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  return new Date(time).toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15) === `${m[1]}${m[2]}${m[3]}_${m[4]}${m[5]}${m[6]}` ? time : NaN;
}

/**
 * Why a stored report is not this backup's verification, or undefined when it may be. Reports
 * are not signed: anyone who can write to a repository can plant one, and the newest is shown.
 * So one dated in the future (it would stay the newest for ever, hiding every real
 * verification after it), or that names another backup or another id than its file's, is refused.
 */
export function reportRefusal(report: unknown, backupId: string, key: string, now: number): string | undefined {
  const r = report as { reportId?: unknown; backupId?: unknown; finishedAt?: unknown } | null;
  if (!r || typeof r.reportId !== 'string' || `${r.reportId}.json` !== key.slice(key.lastIndexOf('/') + 1)) return 'is not the report its file name says';
  if (r.backupId !== backupId) return 'is a report of another backup';
  const named = reportIdTime(r.reportId);
  const finished = typeof r.finishedAt === 'string' ? Date.parse(r.finishedAt) : NaN;
  if (Number.isNaN(named) || Number.isNaN(finished)) return 'has no valid date';
  if (Math.max(named, finished) > now + REPORT_CLOCK_SKEW_MS) return 'is dated in the future (planted?)';
  return undefined;
}

/**
 * The newest verification report of a backup in one repository (report ids sort by time) that
 * is not refused (reportRefusal); refused and unreadable ones are passed over.
 */
export async function latestVerification<T>(repository: Repository, backupId: string, now = Date.now()): Promise<T | undefined> {
  const keys = (await repository.list(`${backupPrefix('database', backupId)}verifications/`)).map((o) => o.key).filter((k) => k.endsWith('.json'));
  for (const key of keys.sort().reverse()) {
    let report: unknown;
    try {
      report = JSON.parse(await text(await repository.get(key)));
    } catch {
      continue;
    }
    if (!reportRefusal(report, backupId, key, now)) return report as T;
  }
  return undefined;
}

/**
 * The newest drill report (`drills/<reportId>.json`) in any of the repositories that is not
 * refused (reportRefusal: a planted one dated in the future, or not the report its name says);
 * unreadable repositories and reports are passed over.
 */
export async function latestDrillReport<T extends { reportId: string }>(repositories: Repository[], now = Date.now()): Promise<T | undefined> {
  let newest: T | undefined;
  for (const repository of repositories) {
    let keys: string[];
    try {
      keys = (await repository.list('drills/')).map((o) => o.key).filter((k) => /^drills\/[^/]+\.json$/.test(k));
    } catch {
      continue;
    }
    for (const key of keys.sort().reverse()) {
      if (newest && key.slice('drills/'.length, -'.json'.length) <= newest.reportId) break;
      let report: unknown;
      try {
        report = JSON.parse(await text(await repository.get(key)));
      } catch {
        continue;
      }
      const r = report as { kind?: unknown; backupId?: unknown } | null;
      if (r?.kind !== 'drill' || reportRefusal(report, r.backupId as string, key, now)) continue;
      newest = report as T;
      break;
    }
  }
  return newest;
}
