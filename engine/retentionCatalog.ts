// What retention judges, read from the repositories: one listing of each component's folder
// and of the WAL folder per repository, and the manifests. A backup counts as complete in a
// repository when its manifest there is whole, its signature admitted (signed by a trusted
// key; unsigned only where signing.required is false), every object it names is listed there
// at its size, and it did not finish after the decision's clock: a planted, copied or damaged
// manifest never fills a bucket, and the folder under it is kept and reported. A folder without a manifest
// whose backup has one in another repository is a leftover of a finished backup (a copy that
// failed, or a prune cut short); one with no manifest anywhere is the sweep's (it asks
// Temporal whether its run has closed). Nothing here writes.
import { text } from 'node:stream/consumers';
import { z } from 'zod';
import type { ManifestCache } from './manifestCache.js';
import { admitted, checkSignature, type Verifier } from './manifestSignature.js';
import { errorText } from './errors.js';
import { segmentOf } from './walHeader.js';
import type { CatalogBackup, CatalogWal, RetentionCatalog } from './retention.js';
import type { ObjectInfo, Repository } from './storage/repository.js';

export const RETENTION_FOLDERS = ['database', 'base'] as const;
export type BackupFolder = (typeof RETENTION_FOLDERS)[number];
const MANIFEST = 'manifest.json';
const WAL_PREFIX = 'wal/';
/** A WAL file's entry, or its object (`.zst.gpg`, `.gz.gpg`, ...). */
const WAL_KEY = /^([0-9A-F]{8}(?:\.history|[0-9A-F]{16}(?:\.partial|\.[0-9A-F]{8}\.backup)?))(\.json|\.[a-z0-9]+\.gpg)$/;
const ID = /^[A-Za-z0-9._-]{1,200}$/;
const READ_CONCURRENCY = 16;
/** How far a manifest's finishedAt may lie ahead of the decision's clock (another host's clock skew). */
const MANIFEST_CLOCK_SKEW_MS = 10 * 60 * 1000;

/** One repository's listing, as retention uses it. */
export interface RepositoryContents {
  repository: string;
  /** Every key under each backup's folder, by component and id. */
  backupKeys: Record<BackupFolder, Map<string, ObjectInfo[]>>;
  /** WAL file name -> its entry and object keys. */
  walKeys: Map<string, ObjectInfo[]>;
  /** What is in our folders and not ours (left alone), and manifests not used (kept). */
  notes: string[];
}

export interface CatalogReading {
  catalog: RetentionCatalog;
  contents: RepositoryContents[];
  unreachable: { repository: string; reason: string }[];
  /** Backup folders with no manifest in any repository: left to the sweep. */
  forTheSweep: string[];
}

const manifestShape = z.looseObject({
  backupId: z.string(),
  component: z.enum(RETENTION_FOLDERS),
  finishedAt: z.string().refine((s) => !Number.isNaN(Date.parse(s))),
  objects: z.array(z.looseObject({ key: z.string(), bytes: z.number().int().nonnegative() })).min(1),
  server: z.looseObject({ walSegmentBytes: z.number().int().optional() }).optional(),
  backup: z.looseObject({ timeline: z.number().int(), startLsn: z.string() }).optional(),
});

/** Runs `work` over `items`, at most `limit` at once (the catalog's reads, the pruned markers). */
export async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  }));
}

async function listRepository(repository: Repository, notes: string[]): Promise<Pick<RepositoryContents, 'backupKeys' | 'walKeys'>> {
  // The folders listed at once (each listing is a sequence of pages), read in order after.
  const [walListing, ...folderListings] = await Promise.all([
    repository.list(WAL_PREFIX),
    ...RETENTION_FOLDERS.map((component) => repository.list(`${component}/`, { versions: true })),
  ]);
  const backupKeys = { database: new Map<string, ObjectInfo[]>(), base: new Map<string, ObjectInfo[]>() };
  for (const [i, component] of RETENTION_FOLDERS.entries()) {
    for (const object of folderListings[i]) {
      const [, id, ...rest] = object.key.split('/');
      if (!ID.test(id ?? '') || id === '.' || id === '..' || rest.length === 0) {
        notes.push(`${object.key}: not under a backup's folder; left alone`);
        continue;
      }
      const keys = backupKeys[component].get(id) ?? [];
      keys.push(object);
      backupKeys[component].set(id, keys);
    }
  }
  const walKeys = new Map<string, ObjectInfo[]>();
  for (const object of walListing) {
    const match = WAL_KEY.exec(object.key.slice(WAL_PREFIX.length));
    if (!match) {
      notes.push(`${object.key}: not a WAL file's entry or object; left alone`);
      continue;
    }
    const keys = walKeys.get(match[1]) ?? [];
    keys.push(object);
    walKeys.set(match[1], keys);
  }
  return { backupKeys, walKeys };
}

interface ReadManifest {
  at: number;
  walStart?: string;
}

/** A manifest's time and WAL start, or why it is not used. */
async function readOne(repository: Repository, component: BackupFolder, id: string, held: ObjectInfo[], verifier: Verifier, allowUnsigned: boolean, now: number | undefined, cache: ManifestCache | undefined): Promise<ReadManifest | { refused: string }> {
  const key = `${component}/${id}/${MANIFEST}`;
  const version = held.find((o) => o.key === key)?.version;
  let parsed: unknown;
  try {
    let body = cache?.get(repository.location, key, version);
    if (body === undefined) {
      body = await text(await repository.get(key));
      cache?.set(repository.location, key, version, body);
    }
    parsed = JSON.parse(body);
  } catch (err) {
    if (err instanceof SyntaxError) return { refused: 'is not whole JSON' };
    throw err;
  }
  const shape = manifestShape.safeParse(parsed);
  if (!shape.success || shape.data.component !== component || shape.data.backupId !== id) return { refused: `is not a whole ${component} manifest of ${id}` };
  const verdict = checkSignature(parsed as object, verifier);
  if (!admitted(verdict, allowUnsigned)) return { refused: verdict.state === 'bad-signature' ? verdict.reason : 'is not signed' };
  const m = shape.data;
  // Complete here only if this repository holds every object it names, at its size: a manifest
  // alone (planted, or copied from another repository) would otherwise fill a bucket, or be the
  // newest, and push the real backups out.
  const sizes = new Map(held.map((o) => [o.key, o.bytes]));
  const missing = m.objects.find((o) => sizes.get(o.key) !== o.bytes);
  if (missing) return { refused: `names ${missing.key} (${missing.bytes} bytes), which is not held here (absent, or another size)` };
  // A backup "finished" later than now would be the newest and fill the newest buckets, pushing
  // every real backup out (one planted where unsigned manifests are admitted, or a host's clock far ahead).
  if (now !== undefined && Date.parse(m.finishedAt) > now + MANIFEST_CLOCK_SKEW_MS) return { refused: `says it finished at ${m.finishedAt}, in the future of this decision (${new Date(now).toISOString()})` };
  let walStart: string | undefined;
  if (component === 'base' && m.backup && m.server?.walSegmentBytes) {
    try {
      walStart = segmentOf(m.backup.timeline, m.backup.startLsn, m.server.walSegmentBytes);
    } catch {
      walStart = undefined;
    }
  }
  return { at: Date.parse(m.finishedAt), walStart };
}

/**
 * The catalog of every repository that can be listed now; one that cannot is reported and
 * left out (nothing of it judged, so nothing of it deleted). `allowUnsigned`: whether unsigned
 * manifests count (signing.required false). `now`: the decision's clock; a manifest that says it
 * finished after it (beyond clock skew) is not used (the backup is kept, and counts for no rule).
 */
export async function readRetentionCatalog(
  repositories: Repository[],
  options: { verifier: Verifier; allowUnsigned: boolean; spool?: string; beat?: () => void; now?: number; lockDays?: Record<string, number>; manifestCache?: ManifestCache },
): Promise<CatalogReading> {
  const { verifier, allowUnsigned, beat = () => undefined, now } = options;
  const contents: RepositoryContents[] = [];
  const unreachable: CatalogReading['unreachable'] = [];
  const manifests = new Map<RepositoryContents, Map<string, ReadManifest | { refused: string }>>();
  for (const repository of repositories) {
    const notes: string[] = [];
    try {
      const listing = await listRepository(repository, notes);
      beat();
      const read = new Map<string, ReadManifest | { refused: string }>();
      const wanted: [BackupFolder, string][] = [];
      for (const component of RETENTION_FOLDERS) {
        for (const [id, keys] of listing.backupKeys[component]) if (keys.some((k) => k.key === `${component}/${id}/${MANIFEST}`)) wanted.push([component, id]);
      }
      await eachLimited(wanted, READ_CONCURRENCY, async ([component, id]) => {
        read.set(`${component}/${id}`, await readOne(repository, component, id, listing.backupKeys[component].get(id) ?? [], verifier, allowUnsigned, now, options.manifestCache));
        beat();
      });
      const entry: RepositoryContents = { repository: repository.name, ...listing, notes };
      contents.push(entry);
      manifests.set(entry, read);
    } catch (err) {
      unreachable.push({ repository: repository.name, reason: errorText(err) });
    }
  }

  // When each backup finished, from any repository's admitted manifest: a folder without one
  // here is a leftover of that finished backup.
  const finished = new Map<string, number>();
  for (const read of manifests.values()) for (const [id, m] of read) if ('at' in m) finished.set(id, Math.max(finished.get(id) ?? 0, m.at));
  // A repository that could not be listed may hold the manifest a folder lacks: the sweep's rule too.
  const backups: CatalogBackup[] = [];
  const forTheSweep: string[] = [];
  for (const entry of contents) {
    const read = manifests.get(entry)!;
    for (const component of RETENTION_FOLDERS) {
      for (const id of entry.backupKeys[component].keys()) {
        const m = read.get(`${component}/${id}`);
        const base = { repository: entry.repository, component, backupId: id };
        // Object Lock: every object was put before its manifest, and the manifest at about its
        // finish; an hour's margin covers the manifest's upload and clocks apart.
        const lock = options.lockDays?.[entry.repository];
        if (m && 'at' in m) backups.push({ ...base, complete: true, at: m.at, ...(m.walStart ? { walStart: m.walStart } : {}), ...(lock ? { lockedUntil: m.at + lock * 86_400_000 + 3_600_000 } : {}) });
        else if (m) entry.notes.push(`${component}/${id}/${MANIFEST} ${m.refused}: the backup is kept, and counts for no rule`);
        else if (finished.has(`${component}/${id}`)) backups.push({ ...base, complete: false, runClosed: true, at: finished.get(`${component}/${id}`)! });
        else forTheSweep.push(`${entry.repository}: ${component}/${id}/ (no manifest in any repository)`);
      }
    }
  }
  const wal: CatalogWal[] = [];
  for (const entry of contents) {
    for (const [name, keys] of entry.walKeys) {
      const hasEntry = keys.some((k) => k.key === `${WAL_PREFIX}${name}.json`);
      const hasObject = keys.some((k) => k.key.endsWith('.gpg'));
      // The entry is written only after its object was stored and read back whole.
      wal.push({ repository: entry.repository, name, verified: hasEntry && hasObject });
    }
  }
  return { catalog: { backups, wal, ...(options.spool ? { spool: options.spool } : {}) }, contents, unreachable, forTheSweep };
}
