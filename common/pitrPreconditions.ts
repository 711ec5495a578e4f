// Point-in-time recovery needs two halves made on the database host: physical base backups
// (baseBackup.url) and the WAL archive since them (wal.spool, shipped to the other
// repositories). A configuration that asks for one half without the other recovers nothing
// between dumps, yet every part of it would run without complaint: `check` and `status` say so
// instead. Pure: it reads only the configuration.
import type { Config } from './config.js';

/**
 * Whether this configuration archives WAL, so its WAL shipping workflow should run. The spool
 * setting is the statement: wal-push falls back to the first filesystem repository only so that
 * archive_command works without one more setting, and almost every configuration has a
 * filesystem repository (for its dumps), so that fallback cannot mean "archiving is wanted".
 * A host that only restores names no spool (deploy/backupctl.example.yaml says so too).
 */
export function walArchivingWanted(config: Config): boolean {
  return config.wal.spool !== undefined;
}

/**
 * Whether base backups are made on schedule: only with a replication connection configured. (A
 * base backup started by hand falls back to database.url; nothing recurring relies on that.)
 */
export function baseBackupsWanted(config: Config): boolean {
  return config.baseBackup.url !== undefined;
}

/** What the configuration lacks for the point-in-time recovery it asks for; [] when nothing. */
export function pitrPreconditionProblems(config: Config): string[] {
  const problems: string[] = [];
  const archiving = walArchivingWanted(config);
  const bases = baseBackupsWanted(config);
  if (bases && !archiving) {
    problems.push(
      'baseBackup.url is set (weekly base backups for point-in-time recovery) but WAL is not archived: wal.spool is not set, so a recovery reaches no further than the end of a base backup; ' +
        'set wal.spool to the filesystem repository archive_command writes to',
    );
  }
  if (archiving && !bases) {
    problems.push(
      `wal.spool is set (WAL is archived into ${config.wal.spool}) but no base backup is scheduled: baseBackup.url is not set, and WAL replays only on top of a base backup; ` +
        'set baseBackup.url to a role with REPLICATION (the weekly base backup runs only with it)',
    );
  }
  if (archiving && Object.keys(config.repositories).every((name) => name === config.wal.spool)) {
    problems.push(`wal.spool ${config.wal.spool} is the only repository: WAL is shipped nowhere else, and is lost with this host; configure another repository`);
  }
  const recovers = [config.pitr.restoreCommand !== undefined && 'pitr.restoreCommand', config.pitr.cutoverCommand !== undefined && 'pitr.cutoverCommand'].filter(Boolean);
  if (recovers.length > 0 && !config.encryption.privateKeyHome) {
    problems.push(`${recovers.join(' and ')} ${recovers.length > 1 ? 'are' : 'is'} set (this host recovers to a point in time) but encryption.privateKeyHome is not: wal-fetch and the base backup's restore cannot decrypt`);
  }
  return problems;
}
