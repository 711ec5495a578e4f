// Signals, queries and updates of the workflows, defined once for workflows and clients.
import { defineQuery } from '@temporalio/workflow';
import type { BackupProgress } from './types.js';
import type { RestoreProgress } from './restoreTypes.js';

/**
 * Where a running workflow is; answered from workflow state, so it works on a finished run
 * too. Every workflow answers it, so `backupctl status` can ask any of them.
 */
export const progressQuery = defineQuery<BackupProgress | RestoreProgress>('progress');
