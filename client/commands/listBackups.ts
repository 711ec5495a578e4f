// `backupctl backups list`: the catalog, read from the manifests in every repository and
// merged by backup id, so a backup missing from one repository shows it.
import { latestVerification, listManifests } from '../../activities/catalog.js';
import type { Repository } from '../../activities/storage/repository.js';
import type { BackupManifest } from '../../workflows/types.js';
import { copyProblems, copySummary } from '../../workflows/copyVerdict.js';
import type { VerificationReport, VerificationState } from '../../workflows/restoreTypes.js';
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
  lastVerification?: LastVerification;
}

export interface LastVerification {
  reportId: string;
  /** The backup restored and passed its checks. */
  ok: boolean;
  finishedAt: string;
  failure?: string;
  /** Absent for reports made before copies were audited. */
  state?: VerificationState;
  /** What the read-back of every copy found: "2 of 3 copies damaged (local, nas)", each damaged part, or why it could not run. */
  copies?: { summary: string; damaged: string[]; problems: string[]; notChecked?: string };
}

export async function readCatalog(repositories: Repository[]): Promise<{ entries: CatalogEntry[]; errors: { repository: string; error: string }[] }> {
  const byId = new Map<string, CatalogEntry>();
  const errors: { repository: string; error: string }[] = [];
  for (const repository of repositories) {
    let manifests: BackupManifest[];
    try {
      manifests = await listManifests(repository, 'database');
    } catch (err) {
      errors.push({ repository: repository.name, error: (err as Error).message });
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
    if (newest) entry.lastVerification = lastVerificationOf(newest);
  }
  return { entries, errors };
}

function lastVerificationOf(report: VerificationReport): LastVerification {
  const last: LastVerification = { reportId: report.reportId, ok: report.ok, finishedAt: report.finishedAt, failure: report.failure, state: report.state };
  // A report is read from storage: one that does not have the audit's shape has no audit.
  if (Array.isArray(report.copies?.repositories) && Array.isArray(report.copies.damaged)) last.copies = { summary: copySummary(report.copies), damaged: report.copies.damaged, problems: copyProblems(report.copies) };
  else if (report.state) last.copies = { summary: 'copies NOT checked', damaged: [], problems: [], notChecked: report.copyAuditFailure ?? 'not audited' };
  return last;
}

/** "ok 2026-11-29T03:12:00Z, 2 of 3 copies damaged (local, nas)". */
export function describeLastVerification(v: LastVerification | undefined): string {
  if (!v) return 'never';
  return `${v.ok ? 'ok' : 'FAILED'} ${v.finishedAt}${v.copies ? `, ${v.copies.summary}` : ''}`;
}

export async function runListBackups(repositories: Repository[], out: Printer): Promise<number> {
  const { entries, errors } = await readCatalog(repositories);
  out.result({ backups: entries, errors }, () => {
    if (!entries.length) return 'no backups yet';
    const rows = entries.flatMap((e) => [
      `${e.finishedAt}  ${e.backupId}  ${e.database}  ${formatBytes(e.bytes)}  in: ${e.foundIn.join(',')}  verified: ${describeLastVerification(e.lastVerification)}`,
      ...(e.lastVerification?.copies?.problems ?? []).map((p) => `    damaged copy ${p}`),
    ]);
    return [...rows, ...errors.map((e) => `error reading ${e.repository}: ${e.error}`)].join('\n');
  });
  return errors.length ? 1 : 0;
}
