// `backupctl prune [--dry-run] [--component C] [--repository R]`: runs retention (workflow
// applyRetention) on the database host and waits for it. The workflow records its decision in
// the repositories before it deletes anything; this command reads that report back and prints
// every decision with its reason: which rule keeps a backup, or why it goes, and where each
// repository's WAL is kept from.
import type { Client } from '@temporalio/client';
import { applyRetention } from '../../workflows/index.js';
import { validateApplyRetentionInput } from '../../workflows/inputValidation.js';
import { hostTaskQueue } from '../../common/types.js';
import { databaseHost, type Config } from '../../common/config.js';
import type { ApplyRetentionInput, ApplyRetentionReport, RepositoryRetention, RetentionComponent } from '../../common/retentionTypes.js';
import { readReport, type RetentionReportFile } from '../../engine/prune.js';
import type { Repository } from '../../engine/storage/repository.js';
import { errorText } from '../../engine/errors.js';
import { formatBytes, type Printer } from '../output.js';
import { defaultWorkflowId, refuseInvalid, repositoriesOption, startAndReport } from '../workflowRun.js';

export interface PruneOptions {
  dryRun?: boolean;
  component?: RetentionComponent[];
  repository?: string[];
  workflowId?: string;
}

/** Something could not be read or deleted: the operator must look (the rest was done). */
export const EXIT_PRUNE_INCOMPLETE = 3;

export function pruneInput(config: Config, options: PruneOptions): ApplyRetentionInput {
  return refuseInvalid(
    {
      hostTaskQueue: hostTaskQueue(databaseHost(config)),
      dryRun: Boolean(options.dryRun),
      ...(options.component?.length ? { components: options.component } : {}),
      ...(options.repository?.length ? { repositories: repositoriesOption(options.repository, Object.keys(config.repositories)) } : {}),
    },
    validateApplyRetentionInput,
  );
}

export async function startPrune(client: Client, repositories: Repository[], input: ApplyRetentionInput, options: PruneOptions, out: Printer): Promise<number> {
  let result: ApplyRetentionReport | undefined;
  let decisions: RetentionReportFile | undefined;
  let unread: string | undefined;
  const tap: Printer = {
    json: out.json,
    result: (value) => {
      result = value as ApplyRetentionReport;
    },
  };
  const code = await startAndReport(client, applyRetention, { workflowId: options.workflowId ?? defaultWorkflowId('apply-retention'), wait: true, args: [input] }, tap, () => '');
  if (result) {
    // The decision in full, from the first repository that holds the report.
    for (const name of result.recordedIn) {
      const repository = repositories.find((r) => r.name === name);
      if (!repository) continue;
      try {
        decisions = await readReport(repository, result.reportId, result.reportSha256);
        break;
      } catch (err) {
        unread = `${name}: ${errorText(err)}`;
      }
    }
    const run = result;
    out.result({ ...run, decisions }, () => describePrune(run, decisions, unread));
  }
  return code || pruneExitCode(result);
}

export function pruneExitCode(report: ApplyRetentionReport | undefined): number {
  if (!report) return 0;
  return report.repositories.some((r) => r.unreachable || r.failures.length || r.backups.failed || r.wal.failed) ? EXIT_PRUNE_INCOMPLETE : 0;
}

function describeRepository(r: RepositoryRetention, dryRun: boolean): string {
  if (r.unreachable) return `${r.repository}: NOT pruned, it could not be read: ${r.unreachable}`;
  const verb = dryRun ? 'would delete' : 'deleted';
  const lines = [
    `${r.repository}: backups ${verb} ${r.backups.deleted}, kept ${r.backups.kept}${r.backups.failed ? `, FAILED ${r.backups.failed}` : ''}; WAL files ${verb} ${r.wal.deleted}, kept ${r.wal.kept}${r.wal.failed ? `, FAILED ${r.wal.failed}` : ''}; ${formatBytes(r.backups.bytesFreed + r.wal.bytesFreed)} ${dryRun ? 'to free' : 'freed'}`,
  ];
  if (r.wal.keepFrom) lines.push(`  WAL kept from ${r.wal.keepFrom}${r.wal.unshipped ? ` (and ${r.wal.unshipped} older segments not yet held by every other repository)` : ''}`);
  for (const f of r.failures) lines.push(`  FAILED: ${f}`);
  for (const n of r.notOurs) lines.push(`  left alone: ${n}`);
  return lines.join('\n');
}

export function describePrune(report: ApplyRetentionReport, decisions: RetentionReportFile | undefined, unread?: string): string {
  const lines = [`${report.dryRun ? 'dry run: nothing was deleted; ' : ''}retention decided at ${report.decidedAt} (report ${report.reportId}, recorded in ${report.recordedIn.join(', ') || 'no repository'})`];
  if (decisions) {
    for (const b of decisions.backups) lines.push(`  ${b.action === 'keep' ? 'keep  ' : report.dryRun ? 'DELETE' : 'DELETED'} ${b.repository} ${b.component} ${b.backupId}: ${b.reasons.join('; ')}`);
    for (const w of decisions.wal) lines.push(`  WAL ${w.repository}: ${w.why}${w.delete.length ? `; ${report.dryRun ? 'would delete' : 'deleted'} ${w.delete.length} (${w.delete[0]} .. ${w.delete.at(-1)})` : ''}`);
    for (const s of decisions.forTheSweep) lines.push(`  left to backupctl sweep: ${s}`);
  } else {
    lines.push(`  (the decisions could not be read back${unread ? `: ${unread}` : ''}; the counts below are the workflow's)`);
  }
  lines.push(...report.repositories.map((r) => describeRepository(r, report.dryRun)));
  return lines.join('\n');
}
