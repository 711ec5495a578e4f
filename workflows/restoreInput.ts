// Input checks and names of the restore, verification and drill workflows (the checks every
// workflow shares are in inputChecks.ts). Deterministic: no I/O; time comes from the workflow clock.
import { invalidInput } from './inputChecks.js';

/** A backup id, `latest`, or (where files are allowed) an absolute path. */
export function checkBackupReference(value: unknown, allowFiles: boolean): void {
  const ok =
    typeof value === 'string' &&
    (value === 'latest' || (/^[A-Za-z0-9._-]{1,200}$/.test(value) && value !== '.' && value !== '..') || (allowFiles && /^\/[^\0]*[^/]$/.test(value)));
  if (!ok) {
    throw invalidInput('backup', value, allowFiles ? 'expected a backup id, "latest", or an absolute path to a .backup, .sql.gz or .sql file' : 'expected a backup id or "latest"');
  }
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

/**
 * A name of at most 63 bytes: the base made safe (lower case, every other character '_', so
 * each is one ASCII byte) and then shortened, the suffix kept whole. Lower-casing first matters:
 * it lengthens some letters ('İ' becomes two characters), and PostgreSQL truncates a name over
 * 63 bytes, after which a look-up by the full name misses.
 */
export function databaseName(base: string, suffix: string): string {
  const safe = base.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  return `${safe.slice(0, 63 - suffix.length)}${suffix.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
}
