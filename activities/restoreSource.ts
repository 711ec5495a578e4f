// What an operator asked to restore, resolved on the restoring host: a backup in the catalog
// (by id or `latest`), or a file the old scripts made. Read-only.
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { ErrorType, type BackupManifest } from '../workflows/types.js';
import type { CatalogSource, FileSource } from '../workflows/restoreTypes.js';
import { listManifests, readManifest } from './catalog.js';
import { permanent } from './errors.js';
import type { Repository } from './storage/repository.js';

export const BACKUP_ID = /^[A-Za-z0-9._-]{1,200}$/;

/** Finds a backup in the repositories, in their order; `latest` is the newest complete one. */
export async function resolveCatalogBackup(reference: string, repositories: Repository[]): Promise<CatalogSource> {
  const where = repositories.map((r) => r.name).join(', ');
  let manifest: BackupManifest | undefined;
  const holders: string[] = [];
  if (reference === 'latest') {
    const newest = new Map<string, BackupManifest>();
    for (const repository of repositories) {
      for (const m of await listManifests(repository, 'database')) newest.set(m.backupId, m);
    }
    manifest = [...newest.values()].sort((a, b) => a.startedAt.localeCompare(b.startedAt)).at(-1);
    if (!manifest) throw permanent(ErrorType.BackupNotFound, `there is no complete database backup in ${where}`);
  } else {
    if (!BACKUP_ID.test(reference)) {
      throw permanent(ErrorType.InvalidInput, `"${reference}" is neither a backup id (letters, digits, . _ -), "latest", nor an absolute path to a .backup, .sql.gz or .sql file`);
    }
    for (const repository of repositories) {
      manifest ??= await readManifest(repository, 'database', reference);
    }
    if (!manifest) throw permanent(ErrorType.BackupNotFound, `backup ${reference} is not in ${where} (backupctl backups list shows what is)`);
  }
  for (const repository of repositories) {
    if (await repository.stat(`database/${manifest.backupId}/manifest.json`)) holders.push(repository.name);
  }
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
  };
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
