// `backupctl pitr start | target | status`: point-in-time recovery. `start` runs the workflow
// on the database host's queue; without a target it waits, and `target` sends one as the
// setTargetTime signal (or, with --check, as the setTarget update, which answers at once).
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { pointInTimeRecovery } from '../../workflows/index.js';
import { approveCutoverSignal, pitrStateQuery, setTargetTimeSignal, setTargetUpdate } from '../../workflows/messages.js';
import type { PitrState, PointInTimeRecoveryInput, PointInTimeRecoveryResult, RecoveryTarget } from '../../common/pitrTypes.js';
import { targetFormProblem, validatePointInTimeRecoveryInput } from '../../workflows/inputValidation.js';
import { hostTaskQueue } from '../../common/types.js';
import { databaseHost, type Config } from '../../common/config.js';
import type { Printer } from '../output.js';
import { defaultWorkflowId, InputRefused, numberOption, refuseInvalid, startAndReport } from '../workflowRun.js';

export interface PitrStartOptions {
  targetTime?: string;
  targetLsn?: string;
  targetXid?: string;
  targetName?: string;
  dataDir?: string;
  port?: string;
  awaitCutoverApproval?: string;
  wait?: boolean;
  workflowId?: string;
  allowUnsigned?: boolean;
}

export function targetOf(options: PitrStartOptions): RecoveryTarget | undefined {
  const given = [
    options.targetTime !== undefined && ({ kind: 'time', value: options.targetTime } as const),
    options.targetLsn !== undefined && ({ kind: 'lsn', value: options.targetLsn } as const),
    options.targetXid !== undefined && ({ kind: 'xid', value: options.targetXid } as const),
    options.targetName !== undefined && ({ kind: 'name', value: options.targetName } as const),
  ].filter((t): t is RecoveryTarget => Boolean(t));
  if (given.length > 1) throw new InputRefused('give at most one of --target-time, --target-lsn, --target-xid, --target-name');
  const problem = given[0] && targetFormProblem(given[0]);
  if (problem) throw new InputRefused(`--target-${given[0].kind} ${problem}`);
  return given[0];
}

/** The workflow's input, checked by the workflow's own checks: throws InputRefused before anything starts. */
export function pitrStartInput(config: Config, options: PitrStartOptions): PointInTimeRecoveryInput {
  return refuseInvalid(
    {
      hostTaskQueue: hostTaskQueue(databaseHost(config)),
      target: targetOf(options),
      dataDir: options.dataDir,
      port: numberOption(options.port) as number | undefined,
      awaitCutoverApprovalHours: numberOption(options.awaitCutoverApproval) as number | undefined,
      ...(options.allowUnsigned ? { allowUnsigned: true } : {}),
    },
    validatePointInTimeRecoveryInput,
  );
}

export async function runPitrStart(client: Client, config: Config, options: PitrStartOptions, out: Printer): Promise<number> {
  return startPitr(client, pitrStartInput(config, options), options, out);
}

export async function startPitr(client: Client, input: PointInTimeRecoveryInput, options: PitrStartOptions, out: Printer): Promise<number> {
  return startAndReport(
    client,
    pointInTimeRecovery,
    { workflowId: options.workflowId ?? defaultWorkflowId('pitr'), wait: options.wait, args: [input] },
    out,
    describeRecovery,
  );
}

/** Sends the target; reports whether the workflow took it (the state says, or the update answers). */
export async function runPitrTarget(client: Client, workflowId: string, time: string, options: { check?: boolean }, out: Printer): Promise<number> {
  // The workflow would reject it too, but a malformed time needs no round trip to say so.
  const problem = targetFormProblem({ kind: 'time', value: time });
  if (problem) throw new InputRefused(`<time> ${problem}`);
  const handle = client.workflow.getHandle(workflowId);
  if (options.check) {
    try {
      const state = await handle.executeUpdate(setTargetUpdate, { args: [{ kind: 'time', value: time }] });
      out.result({ accepted: true, state }, () => `target accepted: ${state.target?.value}; base backup ${state.baseBackup?.backupId}`);
      return 0;
    } catch (err) {
      const reason = err instanceof WorkflowUpdateFailedError ? (err.cause?.message ?? err.message) : (err as Error).message;
      out.result({ accepted: false, reason }, () => `target rejected: ${reason}`);
      return 1;
    }
  }
  const before = (await handle.query(pitrStateQuery)).rejected.length;
  await handle.signal(setTargetTimeSignal, time);
  // The signal has no answer; the state shows within moments whether it was taken.
  for (let i = 0; i < 50; i++) {
    const state = await handle.query(pitrStateQuery);
    if (state.target) {
      out.result({ accepted: true, state }, () => `target accepted: ${state.target!.value}; base backup ${state.baseBackup?.backupId}`);
      return 0;
    }
    if (state.rejected.length > before) {
      const reason = state.rejected.at(-1)!.reason;
      out.result({ accepted: false, reason, state }, () => `target rejected: ${reason}`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  out.result({ accepted: null, reason: 'no answer yet; see backupctl pitr status' }, () => 'signal sent; no answer yet (backupctl pitr status)');
  return 1;
}

export async function runPitrApprove(client: Client, workflowId: string, approvedBy: string, out: Printer): Promise<number> {
  const handle = client.workflow.getHandle(workflowId);
  const state = await handle.query(pitrStateQuery);
  if (state.phase !== 'awaiting-cutover-approval') {
    out.result({ approved: false, reason: `the recovery is ${state.phase}, not awaiting cutover approval` }, () => `not sent: the recovery is ${state.phase}`);
    return 1;
  }
  await handle.signal(approveCutoverSignal, { approvedBy });
  out.result({ approved: true, workflowId }, () => `cutover approved; follow it with: backupctl pitr status ${workflowId}`);
  return 0;
}

export async function runPitrStatus(client: Client, workflowId: string, out: Printer): Promise<number> {
  const state = await client.workflow.getHandle(workflowId).query(pitrStateQuery);
  out.result(state, () => describeState(state));
  return 0;
}

function describeState(state: PitrState): string {
  return [
    `phase: ${state.phase}`,
    `recoverable window: ${state.window?.earliest ?? '-'} .. ${state.window?.latest ?? '-'} (base backups: ${state.window?.baseBackups.length ?? 0})`,
    `target: ${state.target ? `${state.target.kind} ${state.target.value}` : '(waiting)'}; base backup: ${state.baseBackup?.backupId ?? '-'}`,
    ...state.rejected.map((r) => `rejected ${r.target.kind} ${r.target.value}: ${r.reason}`),
    ...(state.failure ? [`failure: ${state.failure}`] : []),
  ].join('\n');
}

export function describeRecovery(result: PointInTimeRecoveryResult): string {
  return [
    `recovered to ${result.target.kind} ${result.target.value} (last transaction replayed ${result.recoveredTo ?? '-'}), timeline ${result.timeline}`,
    `  from base backup ${result.baseBackup.backupId}; running at 127.0.0.1:${result.cluster.port}, data directory ${result.cluster.dataDir}`,
    `  rows: ${Object.entries(result.rowCounts).map(([t, n]) => `${t}=${n}`).join(', ')}`,
    `  restore ${result.timing.restoreSeconds.toFixed(1)} s, replay ${result.timing.replaySeconds.toFixed(1)} s`,
    `  cutover: ${result.cutover.detail}`,
  ].join('\n');
}
