// The catalog of database backups as people and checks see it: every backup of ours with the
// repositories that hold a whole copy, its signature, its source, and its newest verification;
// damaged manifests, unreadable repositories, and backups of other databases, apart.
import { chooseCopy, latestVerification, manifestKey, scanCatalog } from './catalog.js';
import type { Verifier } from './manifestSignature.js';
import { sourceVerdict, type ExpectedSource, type SourceVerdict } from './sourceMatch.js';
import { redact } from '../common/redact.js';
import type { Repository } from './storage/repository.js';
import type { BackupManifest, SignatureVerdict } from '../common/types.js';
import { copyProblems, copySummary } from '../common/copyVerdict.js';
import type { SkippedCopy, VerificationReport, VerificationState } from '../common/restoreTypes.js';

export interface CatalogEntry {
  backupId: string;
  component: string;
  startedAt: string;
  finishedAt: string;
  database: string;
  /** The cluster it was dumped from; null in manifests that predate it. */
  systemIdentifier: string | null;
  /**
   * How its source compares with the configuration: match; unchecked (the configured
   * cluster is unknown now); unrecorded (no cluster in the manifest: restorable by id only).
   */
  sourceMatch: 'match' | 'unchecked' | 'unrecorded';
  bytes: number;
  sha256: string;
  rowCounts: Record<string, number>;
  /**
   * What the manifest's signature proves: signed by a trusted key (signedBy); unsigned (never
   * `latest`, restored only with --allow-unsigned); bad-signature (never used: signatureProblem says why).
   */
  signature: SignatureVerdict['state'];
  signedBy?: string;
  signatureProblem?: string;
  /** Repositories whose manifest lists this backup (whole, and identical to the one shown). */
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

/** A backup of another database or cluster found in the repositories: never `latest` here. */
export interface OtherSourceEntry {
  backupId: string;
  database: string;
  systemIdentifier: string | null;
  foundIn: string[];
  reason: string;
}

export interface Catalog {
  entries: CatalogEntry[];
  otherSources: OtherSourceEntry[];
  /** Manifests that are damaged, name another backup, or differ from another repository's copy. */
  damaged: SkippedCopy[];
  errors: { repository: string; error: string }[];
}

/**
 * The catalog; without `expected`, every backup counts as ours (source unchecked). Each backup
 * says what its manifest's signature proves under `verifier`: the copy shown is the first
 * signed one, else the first unsigned, else the first wrongly signed; the other copies that
 * are less proven or differ are listed as damaged.
 */
export async function readCatalog(repositories: Repository[], verifier: Verifier, expected?: ExpectedSource): Promise<Catalog> {
  const { copiesById, damaged, unlisted } = await scanCatalog(repositories, 'database', verifier);
  const errors: Catalog['errors'] = unlisted.map((u) => ({ repository: u.repository, error: redact((u.error as Error)?.message ?? String(u.error)) }));
  const listed: { entry: CatalogEntry; verdict: SourceVerdict }[] = [];
  for (const [backupId, copies] of copiesById) {
    // Every copy is shown for what it is; the best proven one stands for the backup.
    const choice = chooseCopy(copies, manifestKey('database', backupId), () => true);
    damaged.push(...choice.skipped);
    const m = choice.chosen!.manifest;
    const signature = choice.chosen!.signature;
    const dump = m.objects.find((o) => o.role === 'dump');
    const verdict: SourceVerdict = expected ? sourceVerdict(m.source, expected) : m.source.systemIdentifier ? { kind: 'unchecked', systemIdentifier: m.source.systemIdentifier } : { kind: 'unrecorded' };
    listed.push({
      verdict,
      entry: {
        backupId: m.backupId,
        component: m.component,
        startedAt: m.startedAt,
        finishedAt: m.finishedAt,
        database: m.source.database,
        systemIdentifier: m.source.systemIdentifier ?? null,
        sourceMatch: verdict.kind === 'match' || verdict.kind === 'unchecked' || verdict.kind === 'unrecorded' ? verdict.kind : 'unchecked',
        signature: signature.state,
        ...(signature.state === 'signed' ? { signedBy: signature.keyId } : {}),
        ...(signature.state === 'bad-signature' ? { signatureProblem: signature.reason } : {}),
        bytes: dump?.bytes ?? 0,
        sha256: dump?.sha256 ?? '',
        rowCounts: m.rowCounts,
        foundIn: choice.holders,
        copies: m.copies,
      },
    });
  }
  const ours = listed.filter((v) => v.verdict.kind !== 'otherDatabase' && v.verdict.kind !== 'otherCluster');
  const otherSources = listed
    .filter((v) => v.verdict.kind === 'otherDatabase' || v.verdict.kind === 'otherCluster')
    .map(({ entry, verdict }) => ({
      backupId: entry.backupId,
      database: entry.database,
      systemIdentifier: entry.systemIdentifier,
      foundIn: entry.foundIn,
      reason: (verdict as { reason: string }).reason,
    }));
  const entries = ours.map((v) => v.entry).sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  for (const entry of entries) {
    const reports = await Promise.all(
      repositories.filter((r) => entry.foundIn.includes(r.name)).map((r) => latestVerification<VerificationReport>(r, entry.backupId).catch(() => undefined)),
    );
    const newest = reports.filter((r) => r !== undefined).sort((a, b) => a.reportId.localeCompare(b.reportId)).at(-1);
    if (newest) entry.lastVerification = lastVerificationOf(newest);
  }
  return { entries, otherSources, damaged, errors };
}

function lastVerificationOf(report: VerificationReport): LastVerification {
  const last: LastVerification = { reportId: report.reportId, ok: report.ok, finishedAt: report.finishedAt, failure: report.failure, state: report.state };
  // A report is read from storage: one that does not have the audit's shape has no audit.
  if (Array.isArray(report.copies?.repositories) && Array.isArray(report.copies.damaged)) last.copies = { summary: copySummary(report.copies), damaged: report.copies.damaged, problems: copyProblems(report.copies) };
  else if (report.state) last.copies = { summary: 'copies NOT checked', damaged: [], problems: [], notChecked: report.copyAuditFailure ?? 'not audited' };
  return last;
}

/** "ok 2026-11-29T03:12:00Z, 2 of 3 copies damaged (local, nas)". */
