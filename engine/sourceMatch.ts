// Which backups are of what this configuration protects: the database named by database.url,
// dumped from the cluster whose system identifier is the live one's (or the configured
// restore.sourceSystemIdentifier, for a new host whose original cluster is gone). A shared
// repository holds other databases' and other hosts' backups too; `latest`, the listing and
// status must never take one of those.
import type { Config } from '../common/config.js';
import { errorText } from './errors.js';
import { connect, parseDatabaseUrl } from './postgres.js';

export interface ExpectedSource {
  database: string;
  /** Decimal system identifier; undefined when neither configured nor readable now. */
  systemIdentifier?: string;
  /** Where the identifier came from, for messages. */
  from: 'restore.sourceSystemIdentifier' | 'the live cluster' | 'unknown';
  /** Why the live cluster's identifier could not be read. */
  unreadable?: string;
}

/** The configured source: restore.sourceSystemIdentifier when set, else the live cluster's identifier when it answers. */
export async function expectedSource(config: Config): Promise<ExpectedSource> {
  const database = new URL(config.database.url).pathname.replace(/^\//, '');
  const expected: ExpectedSource = { database: decodeURIComponent(database), from: 'unknown' };
  if (config.restore.sourceSystemIdentifier) return { ...expected, systemIdentifier: config.restore.sourceSystemIdentifier, from: 'restore.sourceSystemIdentifier' };
  try {
    const client = await connect(parseDatabaseUrl(config.database.url, config.database.passwordFile));
    try {
      const { rows } = await client.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
      return { ...expected, systemIdentifier: rows[0].id, from: 'the live cluster' };
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (err) {
    return { ...expected, unreadable: errorText(err) };
  }
}

/** How a backup's recorded source compares with the configured one. */
export type SourceVerdict =
  /** Database and cluster are the configured ones. */
  | { kind: 'match' }
  /** The database is the configured one; the configured cluster is not known now. */
  | { kind: 'unchecked'; systemIdentifier: string }
  /** The database is the configured one; the manifest predates recorded cluster identifiers. */
  | { kind: 'unrecorded' }
  | { kind: 'otherDatabase'; reason: string }
  | { kind: 'otherCluster'; reason: string };

export interface RecordedSource {
  /** Absent for base backups: they are of the whole cluster. */
  database?: string;
  systemIdentifier?: string;
}

export function sourceVerdict(recorded: RecordedSource, expected: ExpectedSource): SourceVerdict {
  if (recorded.database !== undefined && recorded.database !== expected.database) {
    return { kind: 'otherDatabase', reason: `is a backup of database "${recorded.database}", not of the configured "${expected.database}" (database.url)` };
  }
  if (!recorded.systemIdentifier) return { kind: 'unrecorded' };
  if (!expected.systemIdentifier) return { kind: 'unchecked', systemIdentifier: recorded.systemIdentifier };
  if (recorded.systemIdentifier !== expected.systemIdentifier) {
    return {
      kind: 'otherCluster',
      reason: `was made on the cluster with system identifier ${recorded.systemIdentifier}, not ${expected.systemIdentifier} (${expected.from})`,
    };
  }
  return { kind: 'match' };
}

export interface LatestChoice<T> {
  chosen?: T;
  /** Set when the choice could not check the cluster. */
  warning?: string;
  /** Why nothing was chosen although backups exist. */
  refusal?: string;
}

/**
 * The newest backup of the configured source. Only backups whose database and cluster match
 * count; when the configured cluster is unknown now, backups of the configured database count
 * only if they all come from one cluster. Backups without a recorded cluster never count:
 * they are usable by explicit id only.
 */
export function pickLatest<T>(items: T[], recordedOf: (item: T) => RecordedSource, startedAtOf: (item: T) => string, expected: ExpectedSource): LatestChoice<T> {
  const judged = items.map((item) => ({ item, verdict: sourceVerdict(recordedOf(item), expected) }));
  const newest = (list: typeof judged) => list.sort((a, b) => startedAtOf(a.item).localeCompare(startedAtOf(b.item))).at(-1)?.item;
  const matching = judged.filter((j) => j.verdict.kind === 'match');
  if (matching.length) return { chosen: newest(matching) };
  const unchecked = judged.filter((j) => j.verdict.kind === 'unchecked');
  const clusters = [...new Set(unchecked.map((j) => (j.verdict as { systemIdentifier: string }).systemIdentifier))];
  if (clusters.length === 1) {
    return {
      chosen: newest(unchecked),
      warning: `the configured cluster's system identifier is unknown (${expected.unreadable ?? 'not configured'}); every backup of database "${expected.database}" comes from cluster ${clusters[0]}, so the newest of those was taken`,
    };
  }
  if (clusters.length > 1) {
    return {
      refusal: `backups of database "${expected.database}" come from ${clusters.length} clusters (system identifiers ${clusters.join(', ')}) and the configured cluster's identifier is unknown (${expected.unreadable ?? 'not configured'}): set restore.sourceSystemIdentifier or name a backup id`,
    };
  }
  const count = (kind: SourceVerdict['kind']) => judged.filter((j) => j.verdict.kind === kind).length;
  const ignored = [
    count('otherDatabase') && `${count('otherDatabase')} of other databases`,
    count('otherCluster') && `${count('otherCluster')} of database "${expected.database}" from other clusters (not ${expected.systemIdentifier}, ${expected.from}; set restore.sourceSystemIdentifier when restoring onto a new cluster)`,
    count('unrecorded') && `${count('unrecorded')} that record no cluster (usable by explicit id only)`,
  ].filter(Boolean);
  return ignored.length ? { refusal: `no backup matches the configured source; ignored: ${ignored.join('; ')}` } : {};
}

/** What an operator must hear when an explicit id is used although its cluster could not be matched. */
export function explicitWarning(backupId: string, verdict: SourceVerdict, expected: ExpectedSource): string | undefined {
  if (verdict.kind === 'unrecorded') return `backup ${backupId} records no cluster system identifier (made before backupctl recorded it): its source could not be checked`;
  if (verdict.kind === 'unchecked') {
    return `backup ${backupId} was made on cluster ${verdict.systemIdentifier}; the configured cluster's identifier is unknown (${expected.unreadable ?? 'not configured'}), so this was not checked`;
  }
  if (verdict.kind === 'otherCluster') return `backup ${backupId} ${verdict.reason}; used because it was named explicitly`;
  return undefined;
}
