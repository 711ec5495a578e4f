// What the audit of a backup's copies means for the verification's verdict, in words an
// operator reads: shared by the workflow (which stores it in the report) and the CLI.
import type { CopyAudit, VerificationReport, VerificationState } from './restoreTypes.js';

/** The restore's verdict stays the main one; a damaged or unchecked copy keeps it from reading healthy. */
export function verificationState(report: Pick<VerificationReport, 'ok' | 'copies'>): VerificationState {
  if (!report.ok) return 'failed';
  if (!report.copies) return 'copies-unchecked';
  return report.copies.damaged.length ? 'copies-damaged' : 'verified';
}

/** "2 of 3 copies damaged (local, nas)", or "all 3 copies whole". */
export function copySummary(audit: CopyAudit): string {
  const total = audit.repositories.length;
  if (!audit.damaged.length) return `all ${total} ${total === 1 ? 'copy' : 'copies'} whole`;
  return `${audit.damaged.length} of ${total} ${total === 1 ? 'copy' : 'copies'} damaged (${audit.damaged.join(', ')})`;
}

/** One line for people: "verified, all 3 copies whole", "restorable, 2 of 3 copies damaged (local, nas)". */
export function verificationVerdict(report: Pick<VerificationReport, 'ok' | 'copies'>): string {
  const copies = report.copies ? copySummary(report.copies) : 'copies not checked';
  const state = verificationState(report);
  if (state === 'failed') return report.copies?.damaged.length ? `FAILED, ${copies}` : 'FAILED';
  return `${state === 'verified' ? 'verified' : 'restorable'}, ${copies}`;
}

/** Every damaged part of every copy, one line each: "nas: database/b1/dump.pgcustom.zst.gpg missing". */
export function copyProblems(audit: CopyAudit | undefined): string[] {
  const words = (state: string) => state.replace(/-/g, ' ');
  return (audit?.repositories ?? []).flatMap((r) => [
    ...(r.manifest.state === 'ok' ? [] : [`${r.repository}: manifest ${words(r.manifest.state)}${because(r.manifest)}`]),
    ...r.objects.filter((o) => o.state !== 'ok').map((o) => `${r.repository}: ${o.key} ${words(o.state)}${because(o)}`),
  ]);
}

function because(check: { detail?: string; errorType?: string }): string {
  const parts = [check.errorType, check.detail].filter(Boolean);
  return parts.length ? ` (${parts.join(': ')})` : '';
}
