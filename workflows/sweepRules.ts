// What the sweep does with each leftover, given what Temporal says of the run that made it.
// Pure and deterministic: the workflow decides, activities act (and check again as they act).
//
// The rules, most careful first:
// - A run still open, or one Temporal could not tell us about, is never touched.
// - A result is never taken for a leftover: a completed restore's database, a completed
//   recovery's cluster (the application may run on it) stay. Where the run's history is gone
//   and the result cannot be told from a leftover, it stays too, and the report says so.
// - A backup's objects go only where no manifest names them.
import type { Leftover, RunRef, RunStanding, SweepDecision } from '../common/sweepTypes.js';

export const DEFAULT_UPLOAD_AGE_HOURS = 24;

export function runKey(run: RunRef): string {
  return `${run.workflowId}\u0000${run.runId}`;
}

/** The runs whose standing decides a leftover's fate. */
export function runOf(leftover: Leftover): RunRef | undefined {
  return 'run' in leftover && leftover.run ? leftover.run : undefined;
}

export interface SweepRuleOptions {
  removeRecoveryFolders: boolean;
  uploadAgeHours: number;
}

function describeRun(run: RunRef, standing: RunStanding): string {
  const id = `run ${run.runId} of workflow ${run.workflowId}`;
  if (standing.state === 'closed') return `${id} (${standing.type}) closed ${standing.status}`;
  if (standing.state === 'gone') return `${id} is unknown to Temporal (closed, history gone)`;
  if (standing.state === 'open') return `${id} is still open`;
  return `${id}: Temporal could not say (${standing.why})`;
}

const keep = (why: string): SweepDecision => ({ act: 'keep', why });

/** Open and unknown runs keep what they made. */
function settled(run: RunRef, standing: RunStanding | undefined): SweepDecision | undefined {
  if (!standing) return keep(`run ${run.runId} of workflow ${run.workflowId} was not asked about`);
  if (standing.state === 'open') return keep(describeRun(run, standing));
  if (standing.state === 'unknown') return keep(`${describeRun(run, standing)}; nothing is touched until it can`);
  return undefined;
}

export function decide(leftover: Leftover, standing: RunStanding | undefined, options: SweepRuleOptions): SweepDecision {
  switch (leftover.kind) {
    case 'staging':
      return { act: 'remove', why: 'a temporary folder whose process is gone (what a worker removes when it starts)' };
    case 'upload': {
      const hours = options.uploadAgeHours;
      if (leftover.tempFile) {
        if (leftover.ageHours === null || leftover.ageHours < hours) return keep(`an unfinished write (temp file) written to less than ${hours} h ago may still be a live writer's`);
        return { act: 'abort', why: `an unfinished write (temp file) untouched for ${Math.floor(leftover.ageHours)} h: no live writer pauses that long` };
      }
      if (leftover.ageHours === null || leftover.ageHours < hours) return keep(`an unfinished upload younger than ${hours} h may still be a live writer's`);
      return { act: 'abort', why: `an unfinished upload ${Math.floor(leftover.ageHours)} h old: no transfer runs that long` };
    }
    case 'database': {
      const open = settled(leftover.run, standing);
      if (open) return open;
      const how = describeRun(leftover.run, standing!);
      if (leftover.state === 'restoring') return { act: 'drop', why: `never finished restoring; ${how}` };
      if (leftover.scratch) return { act: 'drop', why: `a scratch database; ${how}` };
      if (standing!.state === 'gone') {
        return keep(`a restored database whose run's history is gone: a completed restore's result cannot be told from a leftover (${how}); drop it yourself if nobody needs it`);
      }
      if (standing!.state === 'closed' && standing!.status === 'COMPLETED' && standing!.type === 'restoreDatabase') {
        return keep(`the result of a completed restore (${how})`);
      }
      return { act: 'drop', why: `restored, but its run did not deliver it; ${how}` };
    }
    case 'backup': {
      if (leftover.claim === 'damaged') return keep('its claim cannot be read: no proof which run owns the id');
      if (!leftover.run) return keep('no claim: no proof which run wrote these folders (a backup of an older version?)');
      const open = settled(leftover.run, standing);
      if (open) return open;
      const how = describeRun(leftover.run, standing!);
      if (leftover.manifest === 'damaged') return keep(`a manifest copy cannot be read, so what it names is unknown; ${how}`);
      if (leftover.manifest === 'published') return { act: 'remove', why: `attempt folders no manifest names, beside a complete backup; ${how}` };
      return { act: 'remove', why: `an unfinished backup (no manifest anywhere): its attempt folders, then its claim; ${how}` };
    }
    case 'recovery': {
      const open = settled(leftover.run, standing);
      if (open) return open;
      const how = describeRun(leftover.run, standing!);
      if (standing!.state === 'gone') {
        return keep(`its run's history is gone: a completed recovery (perhaps serving the application) cannot be told from a failed one (${how})`);
      }
      if (standing!.state === 'closed' && standing!.status === 'COMPLETED') return keep(`the result of a completed recovery (${how})`);
      if (standing!.state === 'closed' && standing!.cutoverAttempted) {
        return keep(`its run asked to switch the application over to it: it may be serving the application (${how})`);
      }
      const removeFolder = options.removeRecoveryFolders;
      if (leftover.running) return { act: 'stop', removeFolder, why: `its server still runs, and its run ended without stopping it; ${how}` };
      if (removeFolder) return { act: 'remove', removeFolder, why: `a stopped recovery's folder, removed as asked; ${how}` };
      return keep(`stopped; its data directory and server log stay for the operator to read (--remove-recovery-folders removes them); ${how}`);
    }
  }
}
