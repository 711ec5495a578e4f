// The server a host restores into, and the databases a restore creates there. Every database
// we create carries a comment naming the RUN that made it (the workflow run id, unique for
// ever, where a workflow id is reused) and the attempt of the activity that made it. Cleanup
// drops only databases of the asking run; an attempt touches only what it made itself, so a
// stale attempt that wakes up never harms a newer one. The configured live database is never
// created over, dropped or renamed here: only the swap (restore.ts) renames it.
import pg from 'pg';
import { ErrorType } from '../common/types.js';
import type { Config } from '../common/config.js';
import { attemptSessionTag, currentAttempt, isStaleAttemptOfThisRun, parseSessionTag, runDigest } from './attemptStanding.js';
import { classifyDatabaseError, permanent, transient } from './errors.js';
import { connect, parseDatabaseUrl, type DatabaseTarget } from './postgres.js';

const MARKER = 'backupctl';

/** Who made a database: the run (unique for ever) and the activity attempt within it. */
export interface Maker {
  workflowId: string;
  runId: string;
  attempt: number;
}

/** The restore server's admin connection settings: restore.serverUrl, else database.url's server. */
export function restoreServer(config: Config): DatabaseTarget {
  if (config.restore.serverUrl) return parseDatabaseUrl(config.restore.serverUrl, config.restore.passwordFile);
  const live = parseDatabaseUrl(config.database.url, config.database.passwordFile);
  return { ...live, database: 'postgres' };
}

export function inDatabase(server: DatabaseTarget, database: string): DatabaseTarget {
  return { ...server, database };
}

/** The comment that marks a database as made by `maker`; the run comes first, so no workflow id can forge it. */
export function markerFor(maker: Maker, state: string): string {
  return `${MARKER} run=${maker.runId} attempt=${maker.attempt} workflow=${maker.workflowId} ${state}`;
}

const MARKER_PATTERN = new RegExp(`^${MARKER} run=([0-9A-Za-z-]+) attempt=(\\d+) `);

/** The run and attempt a marker names, or nothing for any other comment (older markers included). */
export function madeBy(comment: string | null): { runId: string; attempt: number } | undefined {
  const match = comment === null ? null : MARKER_PATTERN.exec(comment);
  return match ? { runId: match[1], attempt: Number(match[2]) } : undefined;
}

/** The states markerFor is given: a restore in progress, or its result. */
const MARKER_DETAILS = new RegExp(`^${MARKER} run=([0-9A-Za-z-]+) attempt=(\\d+) workflow=(.+?) (restoring|restored from .*)$`, 's');

/**
 * Everything a marker names: the run (and its workflow, to ask Temporal about it), the
 * attempt, and whether the restore finished. Nothing for any other comment, or a state this
 * version does not know.
 */
export function markerDetails(comment: string | null): (Maker & { state: 'restoring' | 'restored' }) | undefined {
  const match = comment === null ? null : MARKER_DETAILS.exec(comment);
  if (!match) return undefined;
  return { runId: match[1], attempt: Number(match[2]), workflowId: match[3], state: match[4] === 'restoring' ? 'restoring' : 'restored' };
}

function ofRun(comment: string | null, maker: Maker): boolean {
  return madeBy(comment)?.runId === maker.runId;
}

/** The configured live database's name (database.url): protected everywhere but in the swap. */
export function liveDatabaseName(config: Config): string {
  return parseDatabaseUrl(config.database.url, config.database.passwordFile).database;
}

function refuseLive(name: string, live: string, doing: string): void {
  if (name === live) {
    throw permanent(
      ErrorType.LiveDatabaseProtected,
      `database "${name}" is the live database (database.url); a restore never ${doing} it: only the swap of restore --replace renames it`,
    );
  }
}

/**
 * Runs `body` holding a session advisory lock on the database name, so that checking a
 * database's marker and acting on it (drop, create, mark) is one step for every worker.
 */
export async function withNameLock<T>(client: pg.Client, name: string, body: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  await acquireNameLock(client, name, options);
  try {
    return await body();
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', [`${MARKER}-database:${name}`]).catch(() => undefined);
  }
}

export interface LockOptions {
  /**
   * The cleanup of a cancelled attempt: the lock is waited for (up to the same bound) although
   * the activity is cancelled, since what it made must still go.
   */
  evenIfCancelled?: boolean;
  /**
   * A run known to have closed (the sweep's): a session of any of its attempts that holds the
   * lock is a stale attempt's, frozen or lost, and is ended.
   */
  closedRunId?: string;
}

/** How long a name's lock is waited for: any role that may connect can take it, so never for ever. */
const NAME_LOCK_WAIT_MS = 15_000;
/** How often a wait for a name's lock says the attempt lives. */
const LOCK_WAIT_BEAT_MS = 2_000;

/**
 * Takes the name's advisory lock without blocking: tried every 250 ms, given up after
 * NAME_LOCK_WAIT_MS (TargetDatabaseBusy, retryable, naming the session that holds it), and at
 * once when the activity is cancelled. A blocking pg_advisory_lock would wait for ever on a
 * lock a stranger holds, deaf to cancellation.
 */
async function acquireNameLock(client: pg.Client, name: string, options: LockOptions): Promise<void> {
  const key = `${MARKER}-database:${name}`;
  const deadline = Date.now() + NAME_LOCK_WAIT_MS;
  // Outside an attempt (a script or a test) the deadline alone bounds the wait.
  const attempt = currentAttempt();
  const signal = options.evenIfCancelled ? undefined : attempt?.signal;
  let nextHolderCheck = 0;
  let nextBeat = Date.now() + LOCK_WAIT_BEAT_MS;
  for (;;) {
    const { rows } = await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS got', [key]);
    if (rows[0].got) return;
    if (signal?.aborted) throw signal.reason ?? new Error('cancelled');
    // The wait (up to NAME_LOCK_WAIT_MS) is as long as a long activity's heartbeat timeout, and
    // may come before its progress beats start: without a beat, the attempt would time out
    // just as it was about to say clearly who holds the lock.
    if (Date.now() >= nextBeat) {
      nextBeat = Date.now() + LOCK_WAIT_BEAT_MS;
      attempt?.waiting?.({ phase: 'waiting-for-name-lock', database: name });
    }
    if (Date.now() >= nextHolderCheck) {
      nextHolderCheck = Date.now() + 2000;
      if (await endStaleHolders(client, name, key, options)) continue;
    }
    if (Date.now() >= deadline) {
      const holder = await client
        .query<{ pid: number; usename: string | null }>(
          `SELECT l.pid, a.usename FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'advisory' AND l.granted AND l.objid = (hashtext($1)::bigint & 4294967295)::oid LIMIT 1`,
          [key],
        )
        .then((r) => r.rows[0])
        .catch(() => undefined);
      throw transient(
        ErrorType.TargetDatabaseBusy,
        `database "${name}": another session holds backupctl's lock on that name${holder ? ` (pid ${holder.pid}, role ${holder.usename ?? 'unknown'})` : ''} for over ${NAME_LOCK_WAIT_MS / 1000} s; end that session`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Ends the sessions holding the name's lock that belong to a stale attempt of this run (a
 * worker frozen or cut off while it held the lock: Temporal gave its activity to a newer
 * attempt, or the run closed), or to the closed run the caller names. Only sessions of the
 * same role (a stranger cannot forge one without logging in as it) and tagged by an attempt
 * (attemptSessionTag). Returns whether one was ended. A stale attempt's session would
 * otherwise keep the lock until its worker woke or died: the newer attempt would fail with
 * TargetDatabaseBusy and what the run made would stay.
 */
async function endStaleHolders(client: pg.Client, name: string, key: string, options: LockOptions): Promise<boolean> {
  const { rows } = await client
    .query<{ pid: number; application_name: string | null }>(
      `SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE l.locktype = 'advisory' AND l.granted AND l.objid = (hashtext($1)::bigint & 4294967295)::oid
         AND a.usename = current_user AND l.pid <> pg_backend_pid()`,
      [key],
    )
    .catch(() => ({ rows: [] as Array<{ pid: number; application_name: string | null }> }));
  let ended = false;
  for (const holder of rows) {
    const tag = parseSessionTag(holder.application_name);
    if (!tag) continue;
    const stale = (options.closedRunId !== undefined && tag.runDigest === runDigest(options.closedRunId)) || (await isStaleAttemptOfThisRun(tag));
    if (!stale) continue;
    const { rows: done } = await client.query<{ ended: boolean }>('SELECT pg_terminate_backend($1, 5000) AS ended', [holder.pid]);
    logWarn("ended a stale attempt's session that held a database name's lock", { database: name, pid: holder.pid, activityId: tag.activityId, attempt: tag.attempt, ended: done[0]?.ended });
    ended ||= done[0]?.ended === true;
  }
  return ended;
}

function logWarn(message: string, details: Record<string, unknown>): void {
  currentAttempt()?.warn(message, details);
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * Runs `body` on an admin connection to the restore server. Inside an activity the session is
 * tagged with the attempt (attemptSessionTag), so a newer attempt can end it should this one
 * be frozen holding a name's lock.
 */
export async function withServer<T>(server: DatabaseTarget, body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(server.applicationName ? server : { ...server, applicationName: attemptSessionTag() });
  try {
    return await body(client);
  } catch (err) {
    throw classifyDatabaseError(err, `on the restore server ${server.host}:${server.port}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function databaseComment(client: pg.Client, name: string): Promise<{ exists: boolean; comment: string | null; owner: string | null }> {
  const { rows } = await client.query<{ comment: string | null; owner: string }>(
    `SELECT shobj_description(oid, 'pg_database') AS comment, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1`,
    [name],
  );
  return rows.length ? { exists: true, comment: rows[0].comment, owner: rows[0].owner } : { exists: false, comment: null, owner: null };
}

export async function roleExists(client: pg.Client, role: string): Promise<boolean> {
  return (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount === 1;
}

/**
 * Refuses a restore target name that is the live database, or is taken by a database this run
 * did not make; returns whether one of this run's own (from an earlier attempt) is there, or
 * one a crash left half made (halfMade).
 */
export async function assertTargetIsOurs(client: pg.Client, name: string, maker: Maker, live: string): Promise<boolean> {
  if (name === live) {
    throw permanent(
      ErrorType.TargetDatabaseExists,
      `database "${name}" is the live database (database.url); a restore never creates over it; choose another name (--into), or --replace to swap a verified copy in`,
    );
  }
  const existing = await databaseComment(client, name);
  if (existing.exists && !ofRun(existing.comment, maker) && !(await halfMade(client, name, existing.comment))) {
    throw permanent(ErrorType.TargetDatabaseExists, `database "${name}" already exists on the restore server and was not made by this restore; choose another name (--into) or drop it yourself`);
  }
  return existing.exists;
}

/**
 * A database that carries no comment at all and holds nothing (no object of its own, no large
 * object): what a crash of the server between a restore's CREATE DATABASE and its marking
 * COMMENT leaves (CREATE DATABASE cannot share a transaction). Dropping it loses nothing; it is
 * made again under this run's mark. One that holds anything, or that cannot be looked into,
 * is not.
 */
async function halfMade(client: pg.Client, name: string, comment: string | null): Promise<boolean> {
  if (comment !== null) return false;
  const { host, port, user, password } = (client as unknown as { connectionParameters: { host: string; port: number; user: string; password?: string } }).connectionParameters;
  const inside = new pg.Client({ host, port, user, password, database: name, connectionTimeoutMillis: 10_000, application_name: 'backupctl' });
  inside.on('error', () => undefined);
  try {
    await inside.connect();
    // Objects of its own have OIDs from FirstNormalObjectId (16384) on; template0's are below.
    const { rows } = await inside.query<{ n: number }>(
      `SELECT ((SELECT count(*) FROM pg_class WHERE oid >= 16384) + (SELECT count(*) FROM pg_namespace WHERE oid >= 16384)
             + (SELECT count(*) FROM pg_proc WHERE oid >= 16384) + (SELECT count(*) FROM pg_type WHERE oid >= 16384)
             + (SELECT count(*) FROM pg_extension WHERE oid >= 16384) + (SELECT count(*) FROM pg_largeobject_metadata))::int AS n`,
    );
    return rows[0].n === 0;
  } catch {
    return false;
  } finally {
    await inside.end().catch(() => undefined);
  }
}

function superseded(name: string, maker: Maker, by: number): never {
  throw permanent(ErrorType.AttemptSuperseded, `attempt ${maker.attempt} of this restore was superseded by attempt ${by}, which owns database "${name}"; this attempt stopped without touching it`);
}

/**
 * Creates an empty database for a restore. One this run made on an earlier attempt (a crash, a
 * retry) or this attempt made for an earlier copy is dropped and made again; one a NEWER
 * attempt made means this attempt is stale (AttemptSuperseded), and it is left alone; any
 * other database of that name is TargetDatabaseExists, and left alone.
 */
export async function createRestoreDatabase(client: pg.Client, name: string, owner: string | undefined, maker: Maker, live: string): Promise<void> {
  await withNameLock(client, name, async () => {
    if (await assertTargetIsOurs(client, name, maker, live)) {
      const made = madeBy((await databaseComment(client, name)).comment);
      if (made && made.attempt > maker.attempt) superseded(name, maker, made.attempt);
      if (!made) logWarn('dropping an empty, unmarked database a crash left half made', { database: name });
      await dropDatabase(client, name);
    }
    const ownerClause = owner && (await roleExists(client, owner)) ? ` OWNER ${quoteIdent(owner)}` : '';
    await client.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0${ownerClause}`);
    await markDatabase(client, name, markerFor(maker, 'restoring'));
  });
}

/** Fails with AttemptSuperseded unless the database is still this very attempt's. */
export async function assertStillOwned(client: pg.Client, name: string, maker: Maker): Promise<void> {
  const made = madeBy((await databaseComment(client, name)).comment);
  if (made?.runId !== maker.runId || made.attempt !== maker.attempt) {
    throw permanent(ErrorType.AttemptSuperseded, `database "${name}" is no longer this attempt's (attempt ${maker.attempt}); this attempt stopped without touching it`);
  }
}

/** Marks the database with a new state, if it is still this attempt's (else AttemptSuperseded). */
export async function markOwnedDatabase(client: pg.Client, name: string, maker: Maker, state: string): Promise<void> {
  await withNameLock(client, name, async () => {
    await assertStillOwned(client, name, maker);
    await markDatabase(client, name, markerFor(maker, state));
  });
}

export async function markDatabase(client: pg.Client, name: string, comment: string): Promise<void> {
  await client.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${quoteLiteral(comment)}`);
}

/**
 * Drops a database this run made (any attempt: the workflow's compensation and teardown), or,
 * with `onlyAttempt`, only one this very attempt made (an attempt cleaning up after itself).
 * Returns false when there was none, or it is another's. The live database: LiveDatabaseProtected.
 */
export async function dropRestoreDatabase(client: pg.Client, name: string, maker: Maker, live: string, options: LockOptions & { onlyAttempt?: boolean } = {}): Promise<boolean> {
  refuseLive(name, live, 'drops');
  return withNameLock(
    client,
    name,
    async () => {
      const existing = await databaseComment(client, name);
      if (!existing.exists) return false;
      const made = madeBy(existing.comment);
      // Not ours (the name was taken before this run, or by another run): never touched.
      if (made?.runId !== maker.runId) return false;
      if (options.onlyAttempt && made.attempt !== maker.attempt) return false;
      await dropDatabase(client, name);
      return true;
    },
    options,
  );
}

async function dropDatabase(client: pg.Client, name: string): Promise<void> {
  // WITH (FORCE) ends sessions left by a dead pg_restore (PostgreSQL 13+).
  const version = Number((await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0].v);
  await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}${version >= 130000 ? ' WITH (FORCE)' : ''}`);
}

/** How long connections are given back to databases while the server restarts under us. */
const REOPEN_WINDOW_MS = 60_000;

/**
 * Lets the named databases (those that exist) accept connections again, where they refuse
 * them; returns the names it changed. First on `client`; when that connection is dead (the
 * server restarted, the session was terminated), on fresh connections, every second for up to
 * REOPEN_WINDOW_MS while the server comes back. ALLOW_CONNECTIONS false is committed at once
 * and outlives the session that set it, so the one who set it must undo it on whatever
 * connection still works. A failure that is no lost connection (permission denied) is thrown
 * at once; a server still away at the deadline: DatabaseUnreachable.
 */
export async function allowConnectionsAgain(client: pg.Client | undefined, server: DatabaseTarget, names: string[]): Promise<string[]> {
  if (client) {
    try {
      return await reopenDatabases(client, names);
    } catch {
      // This connection is gone: a fresh one below.
    }
  }
  const deadline = Date.now() + REOPEN_WINDOW_MS;
  for (;;) {
    try {
      return await withServer(server, (fresh) => reopenDatabases(fresh, names));
    } catch (err) {
      const failure = classifyDatabaseError(err, `letting ${names.map((n) => `"${n}"`).join(' and ')} accept connections again`);
      if (failure.type !== ErrorType.DatabaseUnreachable || Date.now() >= deadline) throw failure;
      currentAttempt()?.waiting?.({ phase: 'waiting-for-server', databases: names });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

async function reopenDatabases(client: pg.Client, names: string[]): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>('SELECT datname AS name FROM pg_database WHERE datname = ANY($1::text[]) AND NOT datallowconn', [names]);
  for (const { name } of rows) await client.query(`ALTER DATABASE ${quoteIdent(name)} WITH ALLOW_CONNECTIONS true`);
  return rows.map((r) => r.name);
}

/** Ends every other session on a database, until none is left (a client may reconnect once). */
export async function terminateSessions(client: pg.Client, name: string): Promise<number> {
  let ended = 0;
  for (let round = 0; round < 20; round++) {
    const { rows } = await client.query<{ ended: boolean }>(
      'SELECT pg_terminate_backend(pid, 5000) AS ended FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [name],
    );
    if (!rows.length) return ended;
    ended += rows.length;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw permanent(ErrorType.SwapFailed, `sessions on database "${name}" keep coming back; stop the clients that open them`);
}
