// Input checks and names shared by the restore, verification and drill workflows.
// Deterministic: no I/O; time comes from the workflow clock.
import { ApplicationFailure } from '@temporalio/workflow';
import { ErrorType } from '../common/types.js';

export function invalidInput(field: string, value: unknown, allowed: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`input.${field} is ${JSON.stringify(value)}; ${allowed}`, ErrorType.InvalidInput);
}

export function checkObject(input: unknown): void {
  if (!input || typeof input !== 'object') throw invalidInput('', input, 'expected an object');
}

export function checkTaskQueue(value: unknown): void {
  if (typeof value !== 'string' || !/^[A-Za-z0-9@._-]+$/.test(value)) {
    throw invalidInput('hostTaskQueue', value, 'expected a task queue name such as "backup@db-1"');
  }
}

/** A backup id, `latest`, or (where files are allowed) an absolute path. */
export function checkBackupReference(value: unknown, allowFiles: boolean): void {
  const ok =
    typeof value === 'string' &&
    (value === 'latest' || (/^[A-Za-z0-9._-]{1,200}$/.test(value) && value !== '.' && value !== '..') || (allowFiles && /^\/[^\0]*[^/]$/.test(value)));
  if (!ok) {
    throw invalidInput('backup', value, allowFiles ? 'expected a backup id, "latest", or an absolute path to a .backup, .sql.gz or .sql file' : 'expected a backup id or "latest"');
  }
}

/** Only passed on to the activities that read manifests: no command depends on it. */
export function checkAllowUnsigned(value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') throw invalidInput('allowUnsigned', value, 'expected true or false');
}

export function checkJobs(value: unknown): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 64)) {
    throw invalidInput('jobs', value, 'expected a whole number from 1 to 64');
  }
}

/** PostgreSQL identifiers we create: lower case, so nobody has to quote them. */
export const DATABASE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The workflow clock as 20261126_031500, for names of databases. */
export function stamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15);
}

/** A name of at most 63 bytes: the base shortened, the suffix kept whole. */
export function databaseName(base: string, suffix: string): string {
  return `${base.slice(0, 63 - suffix.length)}${suffix}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}
