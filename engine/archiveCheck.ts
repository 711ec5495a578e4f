// `backupctl check`, after pgBackRest's: is PostgreSQL set up to archive WAL through us, is
// its archiver failing, and does a segment switched now actually arrive in the spool?
import type pg from 'pg';
import type { Config } from '../common/config.js';
import { errorText } from './errors.js';
import { connect, parseDatabaseUrl, type DatabaseTarget } from './postgres.js';
import type { Repository } from './storage/repository.js';
import { readWalEntry, spoolRepository } from './walArchive.js';

export interface ArchiveCheck {
  ok: boolean;
  problems: string[];
  settings: Record<string, string>;
  archiver: {
    archivedCount: number;
    lastArchivedWal: string | null;
    lastArchivedTime: string | null;
    failedCount: number;
    lastFailedWal: string | null;
    lastFailedTime: string | null;
  };
  /** The segment closed by pg_switch_wal(), and whether it reached the spool in time. */
  switched?: { segment: string; arrived: boolean; seconds: number };
}

/** Ours: the asynchronous wrapper, or the synchronous wal-push. */
const ARCHIVE_COMMAND = /(backupctl\S*\s+(.*\s)?wal-push|wal-push-async\s+\S+\s+\S+)\s+.*%p/;

type Archiver = ArchiveCheck['archiver'];

async function archiverStats(client: pg.Client): Promise<Archiver> {
  const stats = (
    await client.query(`SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time FROM pg_stat_archiver`)
  ).rows[0];
  return {
    archivedCount: Number(stats.archived_count),
    lastArchivedWal: stats.last_archived_wal,
    lastArchivedTime: stats.last_archived_time?.toISOString() ?? null,
    failedCount: Number(stats.failed_count),
    lastFailedWal: stats.last_failed_wal,
    lastFailedTime: stats.last_failed_time?.toISOString() ?? null,
  };
}

/** The last call failed: no success since the last failure. */
function isFailing(a: Archiver): boolean {
  return Boolean(a.lastFailedTime && (!a.lastArchivedTime || a.lastFailedTime > a.lastArchivedTime));
}

/** PostgreSQL's archive queue: WAL files ready (finished) but not archived yet, and the archiver's account. */
export interface ArchiveQueue {
  /** Files in pg_wal/archive_status marked .ready: archive_command has not succeeded for them. */
  ready: number;
  /** When the oldest of them was marked ready, and how long ago. */
  oldestReadyAt: string | null;
  oldestReadySeconds: number | null;
  archiver: Archiver;
  /** The last archive_command failed and none has succeeded since. */
  failing: boolean;
}

/**
 * The queue, from the server itself (pg_ls_archive_statusdir: a superuser or pg_monitor member).
 * Null when the server does not archive (archive_mode off).
 */
export async function archiveQueue(config: Config): Promise<ArchiveQueue | null> {
  const client = await connect(replicationTarget(config));
  try {
    const mode = (await client.query<{ setting: string }>("SELECT setting FROM pg_settings WHERE name = 'archive_mode'")).rows[0]?.setting;
    if (mode === 'off') return null;
    const { rows } = await client.query<{ ready: string; oldest: Date | null; now: Date }>(
      "SELECT count(*) AS ready, min(modification) AS oldest, now() AS now FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
    );
    const oldest = rows[0].oldest;
    const archiver = await archiverStats(client);
    return {
      ready: Number(rows[0].ready),
      oldestReadyAt: oldest?.toISOString() ?? null,
      oldestReadySeconds: oldest ? Math.max(0, Math.round((rows[0].now.getTime() - oldest.getTime()) / 1000)) : null,
      archiver,
      failing: isFailing(archiver),
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

const SETTINGS = ['wal_level', 'archive_mode', 'archive_command', 'archive_timeout', 'server_version_num'];

export async function checkArchiving(config: Config, repositories: Repository[], waitSeconds = 60): Promise<ArchiveCheck> {
  const problems: string[] = [];
  const client = await connect(replicationTarget(config));
  try {
    const settings: Record<string, string> = {};
    const { rows } = await client.query<{ name: string; setting: string }>('SELECT name, setting FROM pg_settings WHERE name = ANY($1)', [SETTINGS]);
    rows.forEach((r) => (settings[r.name] = r.setting));
    if (settings.wal_level === 'minimal') problems.push('wal_level = minimal: set wal_level = replica and restart');
    if (settings.archive_mode === 'off') problems.push('archive_mode = off: set archive_mode = on and restart');
    if (!ARCHIVE_COMMAND.test(settings.archive_command ?? '')) {
      problems.push(
        `archive_command is ${JSON.stringify(settings.archive_command ?? '')}; expected '<backupctl>/bin/wal-push-async <status folder> <config file> %p' (or, synchronous, 'backupctl --config <file> wal-push %p')`,
      );
    }
    if (Number(settings.archive_timeout ?? 0) === 0 || Number(settings.archive_timeout) > 300) {
      problems.push(`archive_timeout is ${settings.archive_timeout ?? 0} s: set 60 (at most 300) so a quiet database still archives every few minutes`);
    }
    const archiver = await archiverStats(client);
    if (isFailing(archiver)) {
      problems.push(`the archiver is failing: ${archiver.lastFailedWal} failed at ${archiver.lastFailedTime} (see the PostgreSQL log for wal-push's message)`);
    }
    const report: ArchiveCheck = { ok: false, problems, settings, archiver };
    if (settings.archive_mode !== 'off') {
      try {
        const segment = (await client.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name')).rows[0].name;
        const spool = spoolRepository(config, repositories);
        const started = Date.now();
        let arrived = false;
        while (!arrived && Date.now() - started < waitSeconds * 1000) {
          arrived = Boolean(await readWalEntry(spool, segment));
          if (!arrived) await new Promise((r) => setTimeout(r, 250));
        }
        report.switched = { segment, arrived, seconds: (Date.now() - started) / 1000 };
        if (!arrived) problems.push(`segment ${segment}, switched just now, did not reach repository ${spool.name} within ${waitSeconds} s`);
      } catch (err) {
        problems.push(`cannot switch WAL to test the archive: ${errorText(err)}`);
      }
    }
    report.ok = problems.length === 0;
    return report;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The replication connection: baseBackup.url, else the database URL. */
export function replicationTarget(config: Config): DatabaseTarget {
  return config.baseBackup.url
    ? parseDatabaseUrl(config.baseBackup.url, config.baseBackup.passwordFile)
    : parseDatabaseUrl(config.database.url, config.database.passwordFile);
}
