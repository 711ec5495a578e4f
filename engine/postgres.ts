// The application database: connections, facts, row counts in a snapshot, and the dump tools.
// Passwords reach child processes only through PGPASSWORD in their environment.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { ErrorType } from '../common/types.js';
import { classifyDatabaseError, permanent } from './errors.js';
import { spawnStreaming, type StreamingProcess } from './exec.js';
import { assertSecretFileMode } from './secretFiles.js';

export interface DatabaseTarget {
  host: string;
  port: number;
  user?: string;
  database: string;
  password?: string;
  sslmode?: string;
  /**
   * The sessions' application_name (PGAPPNAME for the tools): a tag of the activity attempt
   * that opens them, so a probe can tell its own sessions from a stranger's. Default backupctl.
   */
  applicationName?: string;
}

/** Splits a postgres:// URL (plus an optional password file) into libpq settings. */
export function parseDatabaseUrl(url: string, passwordFile?: string): DatabaseTarget {
  const parsed = new URL(url);
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (!database) throw permanent(ErrorType.InvalidConfig, 'database.url names no database (postgres://user@host:port/DBNAME)');
  let password = parsed.password ? decodeURIComponent(parsed.password) : undefined;
  if (passwordFile) {
    assertSecretFileMode('the password file', passwordFile);
    try {
      password = readFileSync(passwordFile, 'utf8').trim();
    } catch (err) {
      throw permanent(ErrorType.InvalidConfig, `database.passwordFile ${passwordFile} cannot be read (${(err as NodeJS.ErrnoException).code})`);
    }
  }
  return {
    host: decodeURIComponent(parsed.hostname) || 'localhost',
    port: parsed.port ? Number(parsed.port) : 5432,
    user: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    database,
    password,
    sslmode: parsed.searchParams.get('sslmode') ?? undefined,
  };
}

/** Environment for libpq tools; the password travels here, never in argv. */
export function libpqEnv(target: DatabaseTarget): Record<string, string | undefined> {
  return {
    PGHOST: target.host,
    PGPORT: String(target.port),
    PGUSER: target.user,
    PGDATABASE: target.database,
    ...(target.password !== undefined ? { PGPASSWORD: target.password } : {}),
    ...(target.sslmode ? { PGSSLMODE: target.sslmode } : {}),
    PGAPPNAME: target.applicationName ?? 'backupctl',
    // A prompt would hang a scheduled run forever (the seed's pg_dump -W).
    PGCONNECT_TIMEOUT: '10',
  };
}

export async function connect(target: DatabaseTarget): Promise<pg.Client> {
  const client = new pg.Client({
    host: target.host,
    port: target.port,
    user: target.user,
    database: target.database,
    password: target.password,
    ssl: target.sslmode && target.sslmode !== 'disable' ? { rejectUnauthorized: target.sslmode === 'verify-full' } : undefined,
    connectionTimeoutMillis: 10_000,
    application_name: target.applicationName ?? 'backupctl',
  });
  // A connection the server drops (restart, terminate) must fail the query in flight, not the
  // whole worker process through an unhandled 'error' event.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw classifyDatabaseError(err, `connecting to database ${target.database} on ${target.host}:${target.port}`);
  }
  return client;
}

/** The rows of a table (`name` or `schema.name`), or undefined when there is no such table. */
export async function countRows(client: pg.Client, table: string): Promise<number | undefined> {
  // regclass's own text is the table's name quoted as it must be (and qualified when off the
  // search path): safe to put in the query.
  const { rows } = await client.query<{ name: string | null }>('SELECT to_regclass($1)::text AS name', [table]);
  if (!rows[0].name) return undefined;
  return Number((await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${rows[0].name}`)).rows[0].n);
}

/**
 * Every table of the database (plain and partitioned; a partition is counted in its parent),
 * outside the system schemas, named as regclass writes it ('auth_user', 'audit."Log"').
 */
export async function listTables(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(`
    SELECT c.oid::regclass::text AS name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
`);
  return rows.map((r) => r.name).sort();
}

/** The tables a configuration names: `all` is every table now (listTables). */
export async function tablesToCount(client: pg.Client, keyTables: 'all' | string[]): Promise<string[]> {
  return keyTables === 'all' ? listTables(client) : keyTables;
}

/** The directory of the newest installed PostgreSQL client tools, unless configured. */
export function resolveBinDir(configured?: string): string | undefined {
  if (configured) return configured;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(path.join(root, v, 'bin', 'pg_dump')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? path.join(root, versions[0], 'bin') : undefined;
}

export function toolPath(binDir: string | undefined, tool: string): string {
  return binDir ? path.join(binDir, tool) : tool;
}

export interface SnapshotSession {
  snapshotId: string;
  rowCounts: Record<string, number>;
  missingTables: string[];
  lsn: string | null;
  serverVersion: string;
  databaseBytes: number;
  owner: string;
  /** The cluster's system identifier: which cluster this database lives in. */
  systemIdentifier: string;
  takenAt: string;
  /** Ends the exporting transaction; call once pg_dump has finished. */
  close(): Promise<void>;
}

/**
 * Opens a repeatable-read transaction, exports its snapshot for pg_dump --snapshot, and
 * counts the key tables (every table, with `all`) in that same snapshot, so the counts
 * describe exactly what was dumped.
 */
export async function openSnapshot(target: DatabaseTarget, keyTables: 'all' | string[]): Promise<SnapshotSession> {
  const client = await connect(target);
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { rows } = await client.query<{ snapshot: string; lsn: string | null; version: string; bytes: string; owner: string; sysid: string; now: Date }>(`
      SELECT pg_export_snapshot() AS snapshot,
             (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn,
             current_setting('server_version') AS version,
             pg_database_size(current_database())::text AS bytes,
             (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()) AS owner,
             (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
             clock_timestamp() AS now`);
    const rowCounts: Record<string, number> = {};
    const missingTables: string[] = [];
    for (const table of await tablesToCount(client, keyTables)) {
      const counted = await countRows(client, table);
      if (counted === undefined) missingTables.push(table);
      else rowCounts[table] = counted;
    }
    return {
      snapshotId: rows[0].snapshot,
      rowCounts,
      missingTables,
      lsn: rows[0].lsn,
      serverVersion: rows[0].version,
      databaseBytes: Number(rows[0].bytes),
      owner: rows[0].owner,
      systemIdentifier: rows[0].sysid,
      takenAt: rows[0].now.toISOString(),
      close: async () => {
        await client.query('COMMIT').catch(() => undefined);
        await client.end().catch(() => undefined);
      },
    };
  } catch (err) {
    await client.end().catch(() => undefined);
    throw classifyDatabaseError(err, `opening a snapshot of ${target.database}`);
  }
}

/** pg_dump in custom format to stdout, uncompressed: the pipeline compresses better and faster. */
export function spawnDump(target: DatabaseTarget, binDir: string | undefined, snapshotId: string, signal: AbortSignal): StreamingProcess {
  return spawnStreaming(
    toolPath(binDir, 'pg_dump'),
    ['--format=custom', '--compress=0', `--snapshot=${snapshotId}`, '--no-password'],
    { env: libpqEnv(target), signal },
  );
}

/** Roles and tablespaces, which a restore onto a fresh server needs before the dump. */
export function spawnGlobalsDump(
  target: DatabaseTarget,
  binDir: string | undefined,
  includeRolePasswords: boolean,
  signal: AbortSignal,
): StreamingProcess {
  const args = ['--globals-only', '--no-password', `--database=${target.database}`];
  if (!includeRolePasswords) args.push('--no-role-passwords');
  return spawnStreaming(toolPath(binDir, 'pg_dumpall'), args, { env: libpqEnv(target), signal });
}

/** Reads a whole custom-format archive from stdin: proves every block of the dump decodes. */
export function spawnArchiveReader(binDir: string | undefined, signal: AbortSignal): StreamingProcess {
  return spawnStreaming(toolPath(binDir, 'pg_restore'), ['--file=/dev/null'], { stdin: 'pipe', signal });
}

/** pg_restore of a custom-format archive file into an existing, empty database; stops at the first error. */
export function spawnRestore(target: DatabaseTarget, binDir: string | undefined, file: string, jobs: number, signal: AbortSignal, sections: string[] = []): StreamingProcess {
  return spawnStreaming(
    toolPath(binDir, 'pg_restore'),
    [`--dbname=${target.database}`, `--jobs=${jobs}`, '--exit-on-error', '--no-password', ...sections.map((s) => `--section=${s}`), file],
    { env: libpqEnv(target), signal },
  );
}

/**
 * psql applying a plain SQL script (from a file, or from stdin when none is given) in one
 * transaction, stopping at the first failed statement: unlike the seed's bare `psql`, which
 * exits 0 after errors.
 */
export function spawnSqlScript(target: DatabaseTarget, binDir: string | undefined, file: string | undefined, signal: AbortSignal): StreamingProcess {
  const args = ['--no-psqlrc', '--quiet', '--set=ON_ERROR_STOP=1', '--single-transaction', '--no-password', `--dbname=${target.database}`];
  // `--file=-` for stdin: psql then prefixes errors with the line number.
  args.push(`--file=${file ?? '-'}`);
  return spawnStreaming(toolPath(binDir, 'psql'), args, { env: libpqEnv(target), signal, stdin: file ? 'ignore' : 'pipe' });
}

/** pg_amcheck over every table and B-tree index of a database (installs amcheck there). */
export function spawnAmcheck(target: DatabaseTarget, binDir: string | undefined, signal: AbortSignal): StreamingProcess {
  return spawnStreaming(
    toolPath(binDir, 'pg_amcheck'),
    ['--install-missing', '--heapallindexed', '--no-password', target.database],
    { env: libpqEnv(target), signal },
  );
}

/**
 * pg_basebackup as one tar on stdout: the WAL the backup needs is fetched into it (-X fetch:
 * streaming WAL cannot go to stdout), and PostgreSQL's backup_manifest is appended to it.
 * -v makes it print the start and end WAL positions, which the manifest records.
 */
export function spawnBaseBackup(target: DatabaseTarget, binDir: string | undefined, label: string, checkpoint: 'fast' | 'spread', signal: AbortSignal): StreamingProcess {
  return spawnStreaming(
    toolPath(binDir, 'pg_basebackup'),
    ['--pgdata=-', '--format=tar', '--wal-method=fetch', `--checkpoint=${checkpoint}`, `--label=${label}`, '--verbose', '--no-password'],
    { env: libpqEnv(target), signal },
  );
}

/** The WAL range in pg_basebackup --verbose output. */
export function parseBaseBackupLog(stderr: string): { timeline: number; startLsn: string; stopLsn: string } | undefined {
  const start = /write-ahead log start point: ([0-9A-F]+\/[0-9A-F]+) on timeline (\d+)/.exec(stderr);
  const stop = /write-ahead log end point: ([0-9A-F]+\/[0-9A-F]+)/.exec(stderr);
  if (!start || !stop) return undefined;
  return { startLsn: start[1], timeline: Number(start[2]), stopLsn: stop[1] };
}
