// Backup ids from workflow ids: one id per workflow id, by construction. Ids name folders and
// object keys, so they keep only A-Z a-z 0-9 . - as they are and write every other byte as
// `_` and two hex digits (`_` itself too). The encoding can be read back, so two workflow ids
// never share a backup id ("dup x" and "dup/x" were both "dup-x" before). Pure, so the
// workflow and the CLI compute the same id.
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../common/types.js';

/** Longest backup id: keys stay well under every store's limit (S3: 1024 bytes). */
export const MAX_BACKUP_ID_LENGTH = 200;

export function backupIdOf(workflowId: string): string {
  if (typeof workflowId !== 'string' || workflowId.length === 0) {
    throw ApplicationFailure.nonRetryable('the workflow id is empty; a backup id is made from it', ErrorType.InvalidInput);
  }
  let id = '';
  for (const byte of new TextEncoder().encode(workflowId)) {
    const c = String.fromCharCode(byte);
    id += /[A-Za-z0-9.-]/.test(c) ? c : `_${byte.toString(16).padStart(2, '0')}`;
  }
  // "." and ".." would name the folder itself or its parent.
  if (id === '.' || id === '..') id = id.replace(/\./g, '_2e');
  if (id.length > MAX_BACKUP_ID_LENGTH) {
    throw ApplicationFailure.nonRetryable(
      `the workflow id ${JSON.stringify(workflowId.slice(0, 60))}${workflowId.length > 60 ? '...' : ''} makes a backup id of ${id.length} characters; at most ${MAX_BACKUP_ID_LENGTH} are allowed (use a shorter workflow id, plain letters, digits, . and -)`,
      ErrorType.InvalidInput,
    );
  }
  return id;
}

/** The id of runs started before ids were made one to one; kept for their replay only. */
export function legacyBackupIdOf(workflowId: string): string {
  return workflowId.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 200);
}
