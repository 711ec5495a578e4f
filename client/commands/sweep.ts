// `backupctl sweep [--dry-run] [--host <name>]`: removes what runs that closed without cleaning
// up left on a host and in its repositories (workflow sweepLeftovers), and reports what it
// found, what it removed and what it kept, and why.
import type { Client } from '@temporalio/client';
import { sweepLeftovers } from '../../workflows/index.js';
import { validateSweepLeftoversInput } from '../../workflows/inputValidation.js';
import { hostTaskQueue } from '../../common/types.js';
import type { Leftover, SweepItem, SweepLeftoversInput, SweepReport } from '../../common/sweepTypes.js';
import type { Config } from '../../common/config.js';
import type { Printer } from '../output.js';
import { defaultWorkflowId, refuseInvalid, startAndReport } from '../workflowRun.js';

export interface SweepOptions {
  dryRun?: boolean;
  host?: string;
  removeRecoveryFolders?: boolean;
  workflowId?: string;
}

/**
 * Something was left that the sweep could not decide on (Temporal could not say whether a run
 * closed) or could not remove, or a place could not be looked at: the operator must look.
 */
export const EXIT_SWEEP_INCOMPLETE = 3;

/** The workflow's input, checked by the workflow's own check: throws InputRefused before anything starts. */
export function sweepInput(config: Config, options: SweepOptions): SweepLeftoversInput {
  return refuseInvalid(
    { hostTaskQueue: hostTaskQueue(options.host ?? config.host), dryRun: Boolean(options.dryRun), removeRecoveryFolders: Boolean(options.removeRecoveryFolders) },
    validateSweepLeftoversInput,
  );
}

export async function startSweep(client: Client, input: SweepLeftoversInput, options: SweepOptions, out: Printer): Promise<number> {
  let report: SweepReport | undefined;
  const tap: Printer = { json: out.json, result: (value, human) => ((report = value as SweepReport), out.result(value, human)) };
  const host = input.hostTaskQueue.replace(/^[^@]*@/, '');
  const code = await startAndReport(
    client,
    sweepLeftovers,
    // The report is the point: the sweep is always waited for.
    { workflowId: options.workflowId ?? defaultWorkflowId(`sweep-leftovers-${host}`), wait: true, args: [input] },
    tap,
    describeSweep,
  );
  return code || sweepExitCode(report);
}

export function sweepExitCode(report: SweepReport | undefined): number {
  if (!report) return 0;
  const undecided = report.items.some((i) => i.outcome === 'failed' || i.standing?.state === 'unknown');
  return undecided || report.notExamined.length ? EXIT_SWEEP_INCOMPLETE : 0;
}

export function describeLeftover(leftover: Leftover): string {
  switch (leftover.kind) {
    case 'database':
      return `database ${leftover.name} (${leftover.state}${leftover.scratch ? ', scratch' : ''})`;
    case 'backup':
      return `${leftover.component} backup ${leftover.backupId} (claim ${leftover.claim}, manifest ${leftover.manifest}${leftover.folders.length ? `, folders ${leftover.folders.join(' ')}` : ''})`;
    case 'upload':
      if (leftover.tempFile) return `unfinished write ${leftover.repository}:${leftover.key} (temp file ${leftover.uploadId}, last written ${leftover.initiated ?? 'unknown'})`;
      return `unfinished upload ${leftover.repository}:${leftover.key} (since ${leftover.initiated ?? 'unknown'})`;
    case 'recovery':
      return `recovery folder ${leftover.folder} (server ${leftover.running ? 'running' : 'stopped'})`;
    case 'staging':
      return `temporary folder ${leftover.folder}`;
  }
}

function describeItem(item: SweepItem): string {
  const verb = { done: item.decision.act === 'keep' ? 'kept' : item.decision.act, kept: 'kept', planned: `would ${item.decision.act}`, failed: `FAILED to ${item.decision.act}` }[item.outcome];
  return `  ${verb}: ${describeLeftover(item.leftover)}\n      ${item.detail ? `${item.detail}; ` : ''}${item.decision.why}`;
}

export function describeSweep(report: SweepReport): string {
  const c = report.counts;
  return [
    `${report.dryRun ? 'dry run: nothing was changed; ' : ''}${report.items.length} leftovers found on ${report.hostTaskQueue}: ${c.done} swept, ${c.planned} to sweep, ${c.kept} kept, ${c.failed} failed`,
    ...report.items.map(describeItem),
    ...report.notExamined.map((n) => `  NOT examined: ${n.what}: ${n.why}`),
  ].join('\n');
}
