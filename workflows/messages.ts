// Signals, queries and updates of the workflows, defined once for workflows and clients.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { BackupProgress } from '../common/types.js';
import type { RestoreProgress } from '../common/restoreTypes.js';
import type { SweepProgress } from '../common/sweepTypes.js';
import type { RetentionProgress } from '../common/retentionTypes.js';
import type { PitrState, RecoveryTarget, WalShippingState } from '../common/pitrTypes.js';
import type { MonitorState } from '../common/monitorTypes.js';

/**
 * Where a running workflow is; answered from workflow state, so it works on a finished run
 * too. Every workflow answers it, so `backupctl status` can ask any of them.
 */
export const progressQuery = defineQuery<BackupProgress | RestoreProgress | SweepProgress | RetentionProgress>('progress');

/** The WAL shipping workflow's view of each repository: newest segment, how far behind, last error. */
export const walShippingQuery = defineQuery<WalShippingState>('walShipping');

/** The operator's recovery target time (ISO 8601 with a zone), sent to a waiting recovery. */
export const setTargetTimeSignal = defineSignal<[string]>('setTargetTime');

/** Any recovery target, answered at once: accepted, or rejected with the recoverable window. */
export const setTargetUpdate = defineUpdate<PitrState, [RecoveryTarget]>('setTarget');

/** Phase, recoverable window, chosen base backup and rejected targets of a recovery. */
export const pitrStateQuery = defineQuery<PitrState>('pitrState');

/** The operator's approval to point the application at the recovered cluster. */
export const approveCutoverSignal = defineSignal<[{ approvedBy: string }]>('approveCutover');

/** The monitor's open problems, undelivered alerts, channels' last outcomes and last look. */
export const monitorQuery = defineQuery<MonitorState>('monitor');
