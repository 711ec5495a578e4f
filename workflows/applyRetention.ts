// Retention: decide what the policy keeps (a pure function of the catalog, the policy and this
// workflow's clock), record the decision as a report in every repository that can be read,
// then prune one repository at a time, the WAL spool first. With dryRun only the report is
// written. A repository that cannot be read or pruned is reported and skipped; the others
// proceed. The report id comes from the workflow's clock and run id, so every activity of
// the run (and every retry) works on the same recorded decision.
import { isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import { hostActivities, retentionStep } from './activityOptions.js';
import { describeFailure, surfaceFailure } from './failures.js';
import { progressQuery } from './messages.js';
import { checkObject, checkTaskQueue, invalidInput } from './inputChecks.js';
import { validateWith } from './saga.js';
import { RETENTION_COMPONENTS, type ApplyRetentionInput, type ApplyRetentionReport, type RepositoryRetention, type RetentionProgress } from '../common/retentionTypes.js';

/** `YYYYMMDD_HHMMSS-<8 hex of the run id>`, as other report ids: sorts by time. */
function reportIdOf(now: number, runId: string): string {
  const stamp = new Date(now).toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15);
  return `${stamp}-${runId.replace(/-/g, '').slice(0, 8).toLowerCase()}`;
}

export async function applyRetention(input: ApplyRetentionInput): Promise<ApplyRetentionReport> {
  const { workflowId, runId } = workflowInfo();
  const progress: RetentionProgress = { phase: 'deciding' };
  setHandler(progressQuery, () => progress);
  validateWith(progress, () => validateInput(input));
  const host = hostActivities(retentionStep, input.hostTaskQueue);
  const now = Date.now();
  const reportId = reportIdOf(now, runId);
  const dryRun = Boolean(input.dryRun);
  try {
    const plan = await host.planRetention({ reportId, workflowId, runId, now, dryRun, components: input.components, repositories: input.repositories });
    const results = new Map(plan.planned.map((p) => [p.repository, p]));
    if (!dryRun) {
      progress.phase = 'pruning';
      progress.done = 0;
      const toPrune = plan.order.filter((name) => plan.recordedIn.includes(name) && hasDeletions(results.get(name)!));
      progress.of = toPrune.length;
      for (const repository of toPrune) {
        progress.repository = repository;
        try {
          results.set(repository, await host.pruneRepository({ reportId, repository, ...(plan.reportSha256 ? { reportSha256: plan.reportSha256 } : {}) }));
        } catch (err) {
          if (isCancellation(err)) throw err;
          // One repository that cannot be pruned now (down, refusing) must not keep the others.
          const planned = results.get(repository)!;
          results.set(repository, { ...planned, backups: { ...planned.backups, deleted: 0, kept: planned.backups.kept + planned.backups.deleted, bytesFreed: 0 }, wal: { ...planned.wal, deleted: 0, kept: planned.wal.kept + planned.wal.deleted, bytesFreed: 0 }, failures: [...planned.failures, `not pruned: ${describeFailure(err)}`] });
        }
        progress.done++;
      }
      progress.repository = undefined;
    }
    progress.phase = 'done';
    return {
      workflowId,
      reportId,
      dryRun,
      decidedAt: new Date(now).toISOString(),
      finishedAt: new Date().toISOString(),
      recordedIn: plan.recordedIn,
      ...(plan.reportSha256 ? { reportSha256: plan.reportSha256 } : {}),
      repositories: plan.order.map((name) => results.get(name)!),
    };
  } catch (err) {
    progress.phase = 'failed';
    progress.failure = describeFailure(err);
    throw surfaceFailure(err);
  }
}

function hasDeletions(r: RepositoryRetention): boolean {
  return !r.unreachable && (r.backups.deleted > 0 || r.wal.deleted > 0);
}

/** Also run by the CLI before it starts this workflow. */
export function validateInput(input: ApplyRetentionInput): void {
  checkObject(input);
  checkTaskQueue(input.hostTaskQueue);
  if (input.dryRun !== undefined && typeof input.dryRun !== 'boolean') throw invalidInput('dryRun', input.dryRun, 'expected true or false');
  if (input.components !== undefined) {
    if (!Array.isArray(input.components) || input.components.length === 0 || input.components.some((c) => !RETENTION_COMPONENTS.includes(c))) {
      throw invalidInput('components', input.components, `expected a non-empty list of ${RETENTION_COMPONENTS.join(', ')}`);
    }
  }
  if (input.repositories !== undefined) {
    if (!Array.isArray(input.repositories) || input.repositories.length === 0 || input.repositories.some((r) => typeof r !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(r))) {
      throw invalidInput('repositories', input.repositories, 'expected a non-empty list of repository names');
    }
  }
}
