// What verification and the drill both do: resolve a catalog backup, restore it into a scratch
// database named from the workflow id, and inspect it; and at the end, on every path, drop the
// scratch database and then record the report.
import { ApplicationFailure } from '@temporalio/workflow';
import { hostActivities, longRestore, quickMetadata } from './activityOptions.js';
import { dropScratchThenReport } from './saga.js';
import type { CatalogSource, DatabaseInspection, RestoredDatabase, RestoreProgress } from '../common/restoreTypes.js';
import { ErrorType } from '../common/types.js';

export type ScratchActivities = { quick: ReturnType<typeof hostActivities>; long: ReturnType<typeof hostActivities> };

/** The two activity stubs of a run on a host's queue. */
export function scratchActivities(hostTaskQueue: string): ScratchActivities {
  return { quick: hostActivities(quickMetadata, hostTaskQueue), long: hostActivities(longRestore, hostTaskQueue) };
}

export interface ScratchRestoreInput {
  workflowId: string;
  /** The scratch database. */
  database: string;
  backup: string;
  /** Only these repositories (the drill's offsite one); default all. */
  repositories?: string[];
  allowUnsigned?: boolean;
  jobs?: number;
  amcheck: boolean;
  /** What takes a catalog backup, for the refusal of a file ("verification", "the drill"). */
  what: string;
}

/**
 * Resolves the backup, restores it into the scratch database and inspects it. `onSource` hears
 * of the backup as soon as it is resolved (a report names it even when the restore fails);
 * `onRestored` of the restore before the inspection starts.
 */
export async function restoreIntoScratch(
  activities: ScratchActivities,
  progress: RestoreProgress,
  input: ScratchRestoreInput,
  on: { source(source: CatalogSource): void; restored(restored: RestoredDatabase): void },
): Promise<{ source: CatalogSource; inspection: DatabaseInspection }> {
  const { quick, long } = activities;
  const { source } = await quick.resolveRestoreSource({ backup: input.backup, ...(input.repositories && { repositories: input.repositories }), allowUnsigned: input.allowUnsigned });
  if (source.kind !== 'backup') throw ApplicationFailure.nonRetryable(`${input.what} takes a catalog backup`, ErrorType.InvalidInput);
  on.source(source);
  progress.phase = 'restoring';
  on.restored(await long.restoreIntoNewDatabase({ workflowId: input.workflowId, source, database: input.database, jobs: input.jobs }));
  progress.phase = 'verifying';
  const inspection = await long.inspectRestoredDatabase({ database: input.database, expectedRowCounts: source.rowCounts, amcheck: input.amcheck });
  return { source, inspection };
}

/** The end of a scratch run, on every path: the scratch database dropped, then the report written. */
export async function endScratchRun(
  activities: ScratchActivities,
  progress: RestoreProgress,
  input: { workflowId: string; database: string; context: Record<string, unknown> },
  report: { onDropped(): void; stamp(): void; write(): Promise<unknown> },
): Promise<void> {
  progress.phase = 'cleaning-up';
  await dropScratchThenReport(
    {
      drop: () => activities.quick.dropRestoredDatabase({ database: input.database, workflowId: input.workflowId }),
      onDropped: report.onDropped,
      stamp: report.stamp,
      report: report.write,
    },
    input.context,
  );
}
