// `backupctl verify <id|latest>`: the weekly verification, on demand.
import type { Client } from '@temporalio/client';
import { verifyBackup } from '../../workflows/index.js';
import { hostTaskQueue } from '../../workflows/types.js';
import type { VerificationReport, VerifyBackupInput } from '../../workflows/restoreTypes.js';
import { validateVerifyBackupInput } from '../../workflows/inputValidation.js';
import { verificationHost, type Config } from '../../workers/config.js';
import type { Printer } from '../output.js';
import { defaultWorkflowId, refuseInvalid, startAndReport } from '../workflowRun.js';

/** The workflow's input, checked by the workflow's own check: throws InputRefused before anything starts. */
export function verifyBackupInput(config: Config, backup: string): VerifyBackupInput {
  return refuseInvalid({ hostTaskQueue: hostTaskQueue(verificationHost(config)), backup }, validateVerifyBackupInput);
}

export async function runVerify(client: Client, config: Config, backup: string, options: { wait?: boolean; workflowId?: string }, out: Printer): Promise<number> {
  return startVerify(client, verifyBackupInput(config, backup), options, out);
}

export async function startVerify(client: Client, input: VerifyBackupInput, options: { wait?: boolean; workflowId?: string }, out: Printer): Promise<number> {
  return startAndReport(
    client,
    verifyBackup,
    { workflowId: options.workflowId ?? defaultWorkflowId('verify-backup'), wait: options.wait, args: [input] },
    out,
    describeVerification,
  );
}

export function describeVerification(report: VerificationReport): string {
  const i = report.inspection;
  return [
    `backup ${report.backupId} ${report.ok ? 'verified' : 'FAILED verification'} (${report.startedAt} -> ${report.finishedAt})`,
    ...(i ? [`  rows: ${Object.entries(i.rowCounts).map(([t, n]) => `${t}=${n}`).join(', ')}`, `  newest search session: ${i.newestSearchSession ?? '-'}`] : []),
    ...(i?.checks ?? []).map((c) => `  check ${c.name}: ${c.ok ? 'ok' : `FAILED ${c.detail}`}`),
    ...(i?.amcheck ? [`  ${i.amcheck.name}: ${i.amcheck.detail}`] : []),
    `  scratch database ${report.scratchDropped ? 'dropped' : 'NOT dropped'}`,
  ].join('\n');
}
