// `backupctl backups list`: the catalog, read from the manifests in every repository and
// merged by backup id, so a backup missing from one repository shows it.
import { latestVerification, listManifests } from '../../activities/catalog.js';
import { redact } from '../../activities/redact.js';
import type { Repository } from '../../activities/storage/repository.js';
import type { BackupManifest } from '../../workflows/types.js';
import type { VerificationReport } from '../../workflows/restoreTypes.js';
import { formatBytes, type Printer } from '../output.js';

export interface CatalogEntry {
  backupId: string;
  component: string;
  startedAt: string;
  finishedAt: string;
  database: string;
  bytes: number;
  sha256: string;
  rowCounts: Record<string, number>;
  /** Repositories whose manifest lists this backup. */
  foundIn: string[];
  copies: BackupManifest['copies'];
  /** The newest verification report of this backup, from any repository. */
  lastVerification?: { reportId: string; ok: boolean; finishedAt: string; failure?: string };
}

export async function readCatalog(repositories: Repository[]): Promise<{ entries: CatalogEntry[]; errors: { repository: string; error: string }[] }> {
  const byId = new Map<string, CatalogEntry>();
  const errors: { repository: string; error: string }[] = [];
  for (const repository of repositories) {
    let manifests: BackupManifest[];
    try {
      manifests = await listManifests(repository, 'database');
    } catch (err) {
      errors.push({ repository: repository.name, error: redact((err as Error).message ?? String(err)) });
      continue;
    }
    for (const m of manifests) {
      const dump = m.objects.find((o) => o.role === 'dump');
      const entry = byId.get(m.backupId) ?? {
        backupId: m.backupId,
        component: m.component,
        startedAt: m.startedAt,
        finishedAt: m.finishedAt,
        database: m.source.database,
        bytes: dump?.bytes ?? 0,
        sha256: dump?.sha256 ?? '',
        rowCounts: m.rowCounts,
        foundIn: [],
        copies: m.copies,
      };
      entry.foundIn.push(repository.name);
      byId.set(m.backupId, entry);
    }
  }
  const entries = [...byId.values()].sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  for (const entry of entries) {
    const reports = await Promise.all(
      repositories.filter((r) => entry.foundIn.includes(r.name)).map((r) => latestVerification<VerificationReport>(r, entry.backupId).catch(() => undefined)),
    );
    const newest = reports.filter((r) => r !== undefined).sort((a, b) => a.reportId.localeCompare(b.reportId)).at(-1);
    if (newest) entry.lastVerification = { reportId: newest.reportId, ok: newest.ok, finishedAt: newest.finishedAt, failure: newest.failure };
  }
  return { entries, errors };
}

export async function runListBackups(repositories: Repository[], out: Printer): Promise<number> {
  const { entries, errors } = await readCatalog(repositories);
  out.result({ backups: entries, errors }, () => {
    const rows = entries.map(
      (e) =>
        `${e.finishedAt}  ${e.backupId}  ${e.database}  ${formatBytes(e.bytes)}  in: ${e.foundIn.join(',')}  verified: ${
          e.lastVerification ? `${e.lastVerification.ok ? 'ok' : 'FAILED'} ${e.lastVerification.finishedAt}` : 'never'
        }`,
    );
    return [...rows, ...(entries.length ? [] : [emptyCatalog(repositories.length, errors.length)]), ...errors.map((e) => `error reading ${e.repository}: ${e.error}`)].join('\n');
  });
  return errors.length ? 1 : 0;
}

/** An empty list says why: "no backups yet" only when every repository was read. */
function emptyCatalog(repositories: number, unreadable: number): string {
  if (!unreadable) return 'no backups yet';
  if (unreadable === repositories) return `no repository could be read (${unreadable} of ${repositories}): whether backups exist is unknown`;
  return `no backups in the ${repositories - unreadable} repositories that could be read; ${unreadable} could not be read`;
}
