// After a run under a fault that left a repository unwritable (a revoked S3 key, a full or
// read-only NAS), once the fault has healed: what the run could not remove there while it
// refused (an unfinished backup's objects, an open multipart upload) is, by design, the
// leftover sweep's. The harness runs `backupctl sweep` (its workflow, with the
// input the command builds) taking every open upload as abandoned (no run is under way now;
// the command's default waits 24 h), and then nothing of the run may be left.
import { describeLeftover, sweepInput } from '../client/commands/sweep.js';
import { backupIdOf } from '../workflows/backupId.js';
import type { SweepReport } from '../common/sweepTypes.js';
import { SHARED_TASK_QUEUE } from '../common/types.js';
import { failedBackupProblems, openUploadProblems, unfinishedWriteProblems } from './invariants.js';
import { settle, within, type Outcome } from './scenario.js';
import type { ChaosStack } from './stack.js';

const COMPONENT_OF: Record<string, 'database' | 'base'> = { 'database backup': 'database', 'base backup': 'base' };

export async function sweptAfterFault(stack: ChaosStack, scenario: string, outcome: Outcome, workflowId: string): Promise<{ problems: string[]; summary: string }> {
  const input = { ...sweepInput(stack.config, {}), uploadAgeHours: 0 };
  const handle = await stack.client.workflow.start('sweepLeftovers', { taskQueue: SHARED_TASK_QUEUE, workflowId: `${workflowId}-sweep`, args: [input] });
  const swept = await within(settle(handle), 180_000, { status: 'hung' } as Outcome);
  if (swept.status !== 'completed') {
    if (swept.status === 'hung') await handle.terminate('chaos: the sweep did not close').catch(() => undefined);
    return { problems: [`backupctl sweep, after the fault healed, ended ${swept.status}${swept.errorType ? ` ${swept.errorType}` : ''}: ${swept.message?.slice(0, 200) ?? ''}`], summary: '' };
  }
  const report = swept.result as SweepReport;
  const problems: string[] = [];
  for (const item of report.items) {
    if (item.outcome === 'failed') problems.push(`the sweep failed to ${item.decision.act} ${describeLeftover(item.leftover)}: ${item.detail ?? ''}`);
    // What a closed run left in the repositories must go; a kept one is still there.
    else if (item.outcome === 'kept' && (item.leftover.kind === 'backup' || item.leftover.kind === 'upload')) problems.push(`the sweep kept ${describeLeftover(item.leftover)}: ${item.decision.why}`);
  }
  for (const n of report.notExamined) problems.push(`the sweep could not examine ${n.what}: ${n.why}`);
  const component = COMPONENT_OF[scenario];
  if (component && outcome.status !== 'completed') problems.push(...(await failedBackupProblems(stack, component, backupIdOf(workflowId))).map((p) => `after the sweep: ${p}`));
  problems.push(...(await openUploadProblems(stack)).map((p) => `after the sweep: ${p}`));
  // The temp files of every repository, the unwritable one's included (not checked before the sweep).
  problems.push(...unfinishedWriteProblems(stack).map((p) => `after the sweep: ${p}`));
  const summary = report.items.length ? `backupctl sweep: ${report.items.filter((i) => i.outcome === 'done').map((i) => describeLeftover(i.leftover)).join('; ') || 'nothing removed'}` : 'backupctl sweep: nothing to remove';
  return { problems, summary };
}
