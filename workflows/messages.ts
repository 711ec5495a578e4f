// Signals, queries and updates of the workflows, defined once for workflows and clients.
import { defineQuery } from '@temporalio/workflow';
import type { BackupProgress } from './types.js';

/** Where a running backup is; answered from workflow state, so it works on a finished run too. */
export const progressQuery = defineQuery<BackupProgress>('progress');
