// `backupctl verify <id|latest>`: the weekly verification, on demand.
import type { Client } from '@temporalio/client';
import { copyProblems, verificationVerdict } from '../../common/copyVerdict.js';
import { verifyBackup } from '../../workflows/index.js';
import { hostTaskQueue } from '../../common/types.js';
import type { VerificationReport, VerifyBackupInput } from '../../common/restoreTypes.js';
import { validateVerifyBackupInput } from '../../workflows/inputValidation.js';
import { verificationHost, type Config } from '../../common/config.js';
import type { Printer } from '../output.js';
import { defaultWorkflowId, refuseInvalid, startAndReport } from '../workflowRun.js';

/** The workflow's input, checked by the workflow's own check: throws InputRefused before anything starts. */
export function verifyBackupInput(config: Config, backup: string, options: { allowUnsigned?: boolean } = {}): VerifyBackupInput {
  return refuseInvalid({ hostTaskQueue: hostTaskQueue(verificationHost(config)), backup, ...(options.allowUnsigned ? { allowUnsigned: true } : {}) }, validateVerifyBackupInput);
}

/**
 * The backup restored and passed its checks, but a copy is damaged (or could not be checked):
 * not a failed verification (exit 1), but not healthy either, so scripts and monitoring can
 * tell "replace a copy soon" from "we cannot restore".
 */
export const EXIT_COPIES_DAMAGED = 3;

export async function runVerify(client: Client, config: Config, backup: string, options: { wait?: boolean; workflowId?: string }, out: Printer): Promise<number> {
  return startVerify(client, verifyBackupInput(config, backup), options, out);
}

export async function startVerify(client: Client, input: VerifyBackupInput, options: { wait?: boolean; workflowId?: string }, out: Printer): Promise<number> {
  let printed: object | undefined;
  const tap: Printer = { json: out.json, result: (value, human) => ((printed = value), out.result(value, human)) };
  const code = await startAndReport(
    client,
    verifyBackup,
    { workflowId: options.workflowId ?? defaultWorkflowId('verify-backup'), wait: options.wait, args: [input] },
    tap,
    describeVerification,
  );
  return code || verificationExitCode(printed as Partial<VerificationReport> | undefined);
}

/** 0 for a verified backup with every copy whole; EXIT_COPIES_DAMAGED for a restorable one that is not. */
export function verificationExitCode(report: Partial<VerificationReport> | undefined): number {
  if (report?.kind !== 'verification') return 0;
  if (!report.ok) return 1;
  return report.state === 'copies-damaged' || report.state === 'copies-unchecked' ? EXIT_COPIES_DAMAGED : 0;
}

export function describeVerification(report: VerificationReport): string {
  const i = report.inspection;
  const problems = copyProblems(report.copies);
  return [
    `backup ${report.backupId} ${report.state ? verificationVerdict(report) : report.ok ? 'verified' : 'FAILED verification'} (${report.startedAt} -> ${report.finishedAt})`,
    ...(report.restored?.warnings ?? []).map((w) => `  WARNING: ${w}`),
    ...(i ? [`  rows: ${Object.entries(i.rowCounts).map(([t, n]) => `${t}=${n}`).join(', ')}`, ...Object.entries(i.freshness ?? {}).map(([name, when]) => `  ${name}: ${when ?? (i.freshnessErrors?.[name] ? `FAILED ${i.freshnessErrors[name]}` : '-')}`)] : []),
    ...(i?.checks ?? []).map((c) => `  check ${c.name}: ${c.ok ? 'ok' : `FAILED ${c.detail}`}`),
    ...(i?.amcheck ? [`  ${i.amcheck.name}: ${i.amcheck.detail}`] : []),
    ...(report.restored && 'repository' in report.restored.copy ? [`  restored from ${report.restored.copy.repository}`] : []),
    ...(report.copies ? report.copies.repositories.map((r) => `  copy in ${r.repository}: ${r.ok ? 'whole' : 'DAMAGED'}`) : []),
    ...problems.map((p) => `  damaged copy ${p}`),
    ...(report.copyAuditFailure ? [`  copies NOT checked: ${report.copyAuditFailure}`] : []),
    `  scratch database ${report.scratchDropped ? 'dropped' : 'NOT dropped'}`,
  ].join('\n');
}
