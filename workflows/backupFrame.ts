// What both backups (the logical dump, the physical base backup) do around their own steps:
// the backup id from the workflow id, the progress query, the input checks, the host's
// activities, and on failure the compensations, newest first, then the failure surfaced; after
// the manifest, the sweep of other attempts' leftovers. Each backup's own steps run inside.
import { log, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { hostActivities, longTransfer, quickMetadata } from './activityOptions.js';
import { backupIdOf, legacyBackupIdOf } from './backupId.js';
import { describeFailure } from './failures.js';
import { invalidInput } from './inputChecks.js';
import { progressQuery } from './messages.js';
import { validateWith, withCompensation, type Compensation } from './saga.js';
import { COMPRESSIONS, type BackupProgress, type Compression } from '../common/types.js';

export interface BackupFrame {
  workflowId: string;
  runId: string;
  backupId: string;
  startedAt: string;
  progress: BackupProgress;
  quick: ReturnType<typeof hostActivities>;
  long: ReturnType<typeof hostActivities>;
  /** Undo steps, pushed with unshift: run newest first if the backup fails. */
  compensations: Compensation[];
}

/** Runs `steps` inside the frame every backup shares. */
export async function backupFrame<R>(input: { hostTaskQueue: string }, validate: () => void, steps: (frame: BackupFrame) => Promise<R>): Promise<R> {
  const { workflowId, runId } = workflowInfo();
  const startedAt = new Date().toISOString();
  const progress: BackupProgress = { phase: 'planning', backupId: '' };
  setHandler(progressQuery, () => progress);
  const backupId = backupIdFor(workflowId, progress);
  validateWith(progress, validate);
  const quick = hostActivities(quickMetadata, input.hostTaskQueue);
  const long = hostActivities(longTransfer, input.hostTaskQueue);
  const compensations: Compensation[] = [];
  return withCompensation(progress, compensations, { backupId }, () => steps({ workflowId, runId, backupId, startedAt, progress, quick, long, compensations }));
}

/** The checks of what both backups' inputs may choose: the compression, the repositories. */
export function checkBackupOptions(input: { compression?: unknown; repositories?: unknown }): void {
  if (input.compression !== undefined && !COMPRESSIONS.includes(input.compression as Compression)) {
    throw invalidInput('compression', input.compression, `allowed: ${COMPRESSIONS.join(', ')}`);
  }
  if (input.repositories !== undefined && (!Array.isArray(input.repositories) || input.repositories.length === 0 || input.repositories.some((r) => typeof r !== 'string'))) {
    throw invalidInput('repositories', input.repositories, 'expected a non-empty list of repository names');
  }
}

/**
 * The backup id: the workflow id, one to one (backupId.ts); runs started before that keep
 * the old, lossy id on replay.
 */
export function backupIdFor(workflowId: string, progress: BackupProgress): string {
  const id = patched('one-to-one-backup-id') ? undefined : legacyBackupIdOf(workflowId);
  if (id !== undefined) return (progress.backupId = id);
  validateWith(progress, () => (progress.backupId = backupIdOf(workflowId)));
  return progress.backupId;
}

/**
 * After the manifest, the other attempts' leftovers go (a crashed attempt's partial dump, a
 * superseded one's whole copy). The backup is complete whatever happens here, so a failure
 * is a warning, not a failed backup. Runs from before attempt folders have nothing to sweep.
 */
export async function sweepAttempts(
  quick: Pick<Activities, 'sweepBackupAttempts'>,
  input: Parameters<Activities['sweepBackupAttempts']>[0],
): Promise<string[]> {
  if (!patched('sweep-attempt-folders')) return [];
  try {
    await quick.sweepBackupAttempts(input);
    return [];
  } catch (err) {
    const warning = `the objects of superseded attempts were not all removed: ${describeFailure(err)}`;
    log.warn(warning, { backupId: input.backupId });
    return [warning];
  }
}
