// Point-in-time recovery into a NEW data directory, never over the live cluster. Started with
// or without a target: without one it waits for the operator's setTargetTime signal or
// setTarget update (which answers at once whether the target is inside the recoverable
// window). Then: restore the newest base backup that ends before the target, replay archived
// WAL to the target, wait for promotion, look inside, and report where the cluster runs.
// Switching the application over is a separate, approved step; nothing live changes here.
import { ApplicationFailure, CancellationScope, condition, log, setHandler, workflowInfo } from '@temporalio/workflow';
import { hostActivities, longRecovery, quickMetadata, serviceControl } from './activityOptions.js';
import { describeFailure, surfaceFailure } from './failures.js';
import { approveCutoverSignal, pitrStateQuery, setTargetTimeSignal, setTargetUpdate } from './messages.js';
import type { CutoverOutcome, PitrState, PointInTimeRecoveryInput, PointInTimeRecoveryResult, RecoveryCluster, RecoveryTarget } from '../common/pitrTypes.js';
import { checkTarget, type TargetVerdict } from './recoveryTargets.js';
import { checkAllowUnsigned, checkObject, checkTaskQueue, invalidInput } from './inputChecks.js';
import { ErrorType } from '../common/types.js';

/** While waiting for a target, the window is refreshed this often (new WAL arrives). */
const WINDOW_REFRESH = '1 minute';

export async function pointInTimeRecovery(input: PointInTimeRecoveryInput): Promise<PointInTimeRecoveryResult> {
  const { workflowId } = workflowInfo();
  const started = Date.now();
  validateInput(input);
  const quick = hostActivities(quickMetadata, input.hostTaskQueue);
  const long = hostActivities(longRecovery, input.hostTaskQueue);
  const services = hostActivities(serviceControl, input.hostTaskQueue);

  const state: PitrState = { phase: 'waiting-for-target', window: null, target: null, baseBackup: null, rejected: [] };
  setHandler(pitrStateQuery, () => state);
  let approval: { approvedBy: string } | undefined;
  setHandler(approveCutoverSignal, (given) => {
    approval ??= { approvedBy: typeof given?.approvedBy === 'string' ? given.approvedBy : 'unknown' };
  });
  // One verdict for the signal, the update's validator and its handler alike.
  const verdictOn = (target: RecoveryTarget): TargetVerdict => {
    if (state.target) return { ok: false, reason: `a target was already accepted (${state.target.kind} ${state.target.value})` };
    if (!state.window) return { ok: false, reason: 'the recoverable window is not known yet; send it again in a moment' };
    return checkTarget(target, state.window);
  };
  const offer = (target: RecoveryTarget): void => {
    const verdict = verdictOn(target);
    if (verdict.ok) {
      state.target = verdict.target;
      state.baseBackup = verdict.base;
    } else {
      state.rejected.push({ target, reason: verdict.reason, at: new Date().toISOString() });
      log.warn('recovery target rejected', { target, reason: verdict.reason });
    }
  };
  setHandler(setTargetTimeSignal, (time: string) => offer({ kind: 'time', value: time }));
  setHandler(
    setTargetUpdate,
    (target: RecoveryTarget) => {
      offer(target);
      return state;
    },
    {
      validator: (target: RecoveryTarget) => {
        const verdict = verdictOn(target);
        if (!verdict.ok) throw new Error(verdict.reason);
      },
    },
  );

  let cluster: RecoveryCluster | undefined;
  try {
    state.window = await quick.describeRecoverableWindow({ allowUnsigned: input.allowUnsigned });
    if (input.target) offer(input.target);
    while (!state.target) {
      if (!(await condition(() => state.target !== null, WINDOW_REFRESH))) state.window = await quick.describeRecoverableWindow({ allowUnsigned: input.allowUnsigned });
    }
    const waitedAt = Date.now();
    const target = state.target;
    const base = state.baseBackup!;
    log.info('recovering', { target, baseBackup: base.backupId });

    state.phase = 'restoring-base-backup';
    cluster = await long.prepareRecoveryCluster({ workflowId, baseBackupId: base.backupId, target, dataDir: input.dataDir, port: input.port, allowUnsigned: input.allowUnsigned });
    state.cluster = cluster;
    await quick.startRecoveryCluster(cluster);
    const restoredAt = Date.now();

    state.phase = 'replaying-wal';
    const promoted = await long.waitForPromotion(cluster);
    const promotedAt = Date.now();

    state.phase = 'verifying';
    const inspection = await quick.inspectRecoveredCluster({ port: cluster.port });
    const failed = inspection.checks.filter((c) => !c.ok);
    if (failed.length) {
      throw ApplicationFailure.nonRetryable(`the recovered cluster failed its checks: ${failed.map((c) => `${c.name}: ${c.detail}`).join('; ')}`, ErrorType.VerificationFailed);
    }
    const verifiedAt = Date.now();

    let cutover: CutoverOutcome = { requested: false, switched: false, detail: 'not requested: the recovered cluster runs beside the live one' };
    if (input.awaitCutoverApprovalHours) {
      state.phase = 'awaiting-cutover-approval';
      if (!(await condition(() => approval !== undefined, `${input.awaitCutoverApprovalHours} hours`))) {
        cutover = { requested: true, switched: false, detail: `no approval within ${input.awaitCutoverApprovalHours} hours; nothing live changed` };
      } else {
        state.phase = 'cutting-over';
        const recovered = cluster;
        // The services are started again on every path, the failed switch included.
        let restarted = false;
        try {
          await services.stopApplicationServices();
          await quick.switchToRecoveredCluster(recovered);
          await services.startApplicationServices();
          restarted = true;
        } finally {
          if (!restarted) await CancellationScope.nonCancellable(() => services.startApplicationServices());
        }
        cutover = { requested: true, approvedBy: approval!.approvedBy, switched: true, detail: `the application now uses 127.0.0.1:${recovered.port}` };
      }
    }
    state.phase = 'done';
    return {
      workflowId,
      target,
      baseBackup: base,
      cluster,
      recoveredTo: promoted.recoveredTo,
      timeline: promoted.timeline,
      rowCounts: inspection.rowCounts,
      checks: inspection.checks,
      cutover,
      timing: {
        waitedSeconds: (waitedAt - started) / 1000,
        restoreSeconds: (restoredAt - waitedAt) / 1000,
        replaySeconds: (promotedAt - restoredAt) / 1000,
        totalSeconds: (verifiedAt - started) / 1000,
      },
    };
  } catch (err) {
    state.phase = 'failed';
    state.failure = describeFailure(err);
    if (cluster) {
      const made = cluster;
      // Stopped, not deleted: its data directory and log are what the operator reads next.
      await CancellationScope.nonCancellable(() => quick.stopRecoveryCluster({ dataDir: made.dataDir })).catch((stopErr) =>
        log.error('recovered cluster not stopped', { error: describeFailure(stopErr) }),
      );
    }
    throw surfaceFailure(err);
  }
}

/** Also run by the CLI before it starts this workflow (inputValidation.ts). */
export function validateInput(input: PointInTimeRecoveryInput): void {
  checkObject(input);
  if (input.awaitCutoverApprovalHours !== undefined && (typeof input.awaitCutoverApprovalHours !== 'number' || input.awaitCutoverApprovalHours <= 0 || input.awaitCutoverApprovalHours > 720)) {
    throw invalidInput('awaitCutoverApprovalHours', input.awaitCutoverApprovalHours, 'expected hours from 0 to 720');
  }
  checkTaskQueue(input.hostTaskQueue);
  checkAllowUnsigned(input.allowUnsigned);
  if (input.dataDir !== undefined && (typeof input.dataDir !== 'string' || !input.dataDir.startsWith('/'))) {
    throw invalidInput('dataDir', input.dataDir, 'expected an absolute path to a new or empty folder');
  }
  if (input.port !== undefined && (!Number.isInteger(input.port) || input.port < 1024 || input.port > 65535)) {
    throw invalidInput('port', input.port, 'expected a port from 1024 to 65535');
  }
}
