// What an operator asked to restore, resolved on the restoring host: a backup in the catalog
// (by id or `latest`), or a file the old scripts made. Read-only.
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { ErrorType, type BackupManifest } from '../workflows/types.js';
import type { CatalogSource, FileSource, SkippedCopy } from '../workflows/restoreTypes.js';
import { damagedManifest, manifestKey, readManifestCopies, scanManifests } from './catalog.js';
import { errorText, permanent, transient } from './errors.js';
import { explicitWarning, pickLatest, sourceVerdict, type ExpectedSource } from './sourceMatch.js';
import type { Repository } from './storage/repository.js';

export const BACKUP_ID = /^[A-Za-z0-9._-]{1,200}$/;

/**
 * Finds a backup in the repositories, in their order; `latest` is the newest complete one of
 * the configured source (database and cluster). A manifest is evidence, not truth: a copy that
 * is damaged, names another backup or differs from the first whole copy is skipped and
 * reported in the source's `skipped`; an explicit id of another database is refused.
 */
export async function resolveCatalogBackup(reference: string, repositories: Repository[], expected: ExpectedSource): Promise<CatalogSource> {
  const where = repositories.map((r) => r.name).join(', ');
  let chosen: { manifest: BackupManifest; holders: string[] } | undefined;
  const skipped: SkippedCopy[] = [];
  const warnings: string[] = [];
  if (reference === 'latest') {
    const byId = new Map<string, { manifest: BackupManifest; body: string; first: string; holders: string[] }>();
    let listed = 0;
    for (const repository of repositories) {
      let scan;
      try {
        scan = await scanManifests(repository, 'database');
        listed++;
      } catch (err) {
        skipped.push({ repository: repository.name, key: 'database/', reason: `repository ${repository.name} cannot be listed now: ${errorText(err)}`, errorType: ErrorType.StorageUnreachable });
        continue;
      }
      skipped.push(...scan.damaged);
      for (const manifest of scan.manifests) {
        const body = JSON.stringify(manifest);
        const seen = byId.get(manifest.backupId);
        if (!seen) byId.set(manifest.backupId, { manifest, body, first: repository.name, holders: [repository.name] });
        else if (seen.body === body) seen.holders.push(repository.name);
        else skipped.push(damagedManifest(repository.name, manifestKey('database', manifest.backupId), `differs from the copy in ${seen.first}; the copy in ${seen.first} is used`));
      }
    }
    if (!listed) throw transient(ErrorType.StorageUnreachable, `no repository can be listed now: ${skipped.map((s) => s.reason).join('; ')}`);
    const choice = pickLatest([...byId.values()], (c) => c.manifest.source, (c) => c.manifest.startedAt, expected);
    if (choice.refusal) throw permanent(ErrorType.BackupNotFound, `there is no complete database backup of the configured source in ${where}: ${choice.refusal}`);
    if (!choice.chosen) throw permanent(ErrorType.BackupNotFound, `there is no complete database backup in ${where}${damagedNote(skipped)}`);
    if (choice.warning) warnings.push(choice.warning);
    chosen = choice.chosen;
  } else {
    if (!BACKUP_ID.test(reference)) {
      throw permanent(ErrorType.InvalidInput, `"${reference}" is neither a backup id (letters, digits, . _ -), "latest", nor an absolute path to a .backup, .sql.gz or .sql file`);
    }
    const copies = await readManifestCopies(repositories, 'database', reference);
    skipped.push(...copies.skipped);
    if (!copies.manifest) {
      if (skipped.some((s) => s.errorType === ErrorType.StorageUnreachable)) {
        throw transient(ErrorType.StorageUnreachable, `backup ${reference}: no whole manifest was read, and some repositories cannot be read now: ${skipped.map((s) => s.reason).join('; ')}`);
      }
      if (skipped.length) throw permanent(ErrorType.ManifestDamaged, `backup ${reference}: every manifest copy is damaged: ${skipped.map((s) => s.reason).join('; ')}`, { skipped });
      throw permanent(ErrorType.BackupNotFound, `backup ${reference} is not in ${where} (backupctl backups list shows what is)`);
    }
    const verdict = sourceVerdict(copies.manifest.source, expected);
    if (verdict.kind === 'otherDatabase') throw permanent(ErrorType.SourceMismatch, `backup ${reference} ${verdict.reason}: restore it with a configuration whose database.url names that database`);
    const warning = explicitWarning(reference, verdict, expected);
    if (warning) warnings.push(warning);
    chosen = { manifest: copies.manifest, holders: copies.holders };
  }
  const { manifest, holders } = chosen;
  return {
    kind: 'backup',
    backupId: manifest.backupId,
    takenAt: manifest.source.snapshotTakenAt,
    database: manifest.source.database,
    owner: manifest.source.owner,
    compression: manifest.compression,
    recipientFingerprint: manifest.encryption.recipientFingerprint,
    objects: manifest.objects,
    rowCounts: manifest.rowCounts,
    repositories: holders,
    skipped,
    warnings,
  };
}

function damagedNote(skipped: SkippedCopy[]): string {
  const damaged = skipped.filter((s) => s.errorType === ErrorType.ManifestDamaged);
  return damaged.length ? `; damaged manifests: ${damaged.map((s) => s.reason).join('; ')}` : '';
}

const FORMATS: { suffix: string; format: FileSource['format']; magic?: Buffer }[] = [
  { suffix: '.sql.gz', format: 'sql.gz', magic: Buffer.from([0x1f, 0x8b]) },
  { suffix: '.backup', format: 'custom', magic: Buffer.from('PGDMP') },
  { suffix: '.dump', format: 'custom', magic: Buffer.from('PGDMP') },
  { suffix: '.sql', format: 'sql' },
];

/** A file made by the old scripts: its format from its name, confirmed by its first bytes. */
export async function resolveFile(filePath: string): Promise<FileSource> {
  const bad = (why: string) => permanent(ErrorType.InvalidInput, `restore source ${filePath}: ${why}`);
  if (!path.isAbsolute(filePath)) throw bad('must be an absolute path on the restoring host');
  const kind = FORMATS.find((f) => filePath.endsWith(f.suffix));
  if (!kind) throw bad('unknown format; expected a .backup or .dump (pg_dump custom format), .sql.gz or .sql file');
  const info = await stat(filePath).catch((err: NodeJS.ErrnoException) => {
    throw bad(err.code === 'ENOENT' ? 'no such file on the restoring host' : `cannot be read (${err.code})`);
  });
  if (!info.isFile()) throw bad('is not a regular file');
  if (info.size === 0) throw bad('is empty');
  if (kind.magic) {
    const head = Buffer.alloc(kind.magic.length);
    const handle = await open(filePath, 'r').catch((err: NodeJS.ErrnoException) => {
      throw bad(`cannot be read (${err.code})`);
    });
    try {
      await handle.read(head, 0, head.length, 0);
    } finally {
      await handle.close();
    }
    if (!head.equals(kind.magic)) throw bad(`does not start like a ${kind.format === 'custom' ? 'pg_dump custom-format archive' : 'gzip file'}`);
  }
  return { kind: 'file', path: filePath, format: kind.format, bytes: info.size };
}
