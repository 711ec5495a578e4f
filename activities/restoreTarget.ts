// The server a host restores into, and the databases a restore creates there. Every database
// we create carries a comment naming the workflow that made it; we drop only databases whose
// comment names the asking workflow, so no cleanup can ever reach a database we did not make.
import type pg from 'pg';
import { ErrorType } from '../workflows/types.js';
import type { Config } from '../workers/config.js';
import { classifyDatabaseError, permanent } from './errors.js';
import { connect, parseDatabaseUrl, type DatabaseTarget } from './postgres.js';

const MARKER = 'backupctl';

/** The restore server's admin connection settings: restore.serverUrl, else database.url's server. */
export function restoreServer(config: Config): DatabaseTarget {
  if (config.restore.serverUrl) return parseDatabaseUrl(config.restore.serverUrl, config.restore.passwordFile);
  const live = parseDatabaseUrl(config.database.url, config.database.passwordFile);
  return { ...live, database: 'postgres' };
}

export function inDatabase(server: DatabaseTarget, database: string): DatabaseTarget {
  return { ...server, database };
}

export function markerFor(workflowId: string, state: string): string {
  return `${MARKER} workflow=${workflowId} ${state}`;
}

function madeBy(comment: string | null, workflowId: string): boolean {
  return comment !== null && comment.startsWith(`${MARKER} workflow=${workflowId} `);
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

export async function withServer<T>(server: DatabaseTarget, body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(server);
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
 * Refuses a restore target name taken by a database this workflow did not make; returns
 * whether one of its own (from an earlier attempt) is there.
 */
export async function assertTargetIsOurs(client: pg.Client, name: string, workflowId: string): Promise<boolean> {
  const existing = await databaseComment(client, name);
  if (existing.exists && !madeBy(existing.comment, workflowId)) {
    throw permanent(ErrorType.TargetDatabaseExists, `database "${name}" already exists on the restore server and was not made by this restore; choose another name (--into) or drop it yourself`);
  }
  return existing.exists;
}

/**
 * Creates an empty database for a restore. One this workflow made on an earlier attempt (a
 * crash, a retry) is dropped and made again; any other database of that name is a
 * TargetDatabaseExists error, and left alone.
 */
export async function createRestoreDatabase(client: pg.Client, name: string, owner: string | undefined, workflowId: string): Promise<void> {
  if (await assertTargetIsOurs(client, name, workflowId)) await dropDatabase(client, name);
  const ownerClause = owner && (await roleExists(client, owner)) ? ` OWNER ${quoteIdent(owner)}` : '';
  await client.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0${ownerClause}`);
  await markDatabase(client, name, markerFor(workflowId, 'restoring'));
}

export async function markDatabase(client: pg.Client, name: string, comment: string): Promise<void> {
  await client.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${quoteLiteral(comment)}`);
}

/** Drops a database this workflow made; returns false when there was none, or it is another's. */
export async function dropRestoreDatabase(client: pg.Client, name: string, workflowId: string): Promise<boolean> {
  const existing = await databaseComment(client, name);
  if (!existing.exists) return false;
  // Not ours (the name was taken before this workflow ran): never touched.
  if (!madeBy(existing.comment, workflowId)) return false;
  await dropDatabase(client, name);
  return true;
}

async function dropDatabase(client: pg.Client, name: string): Promise<void> {
  // WITH (FORCE) ends sessions left by a dead pg_restore (PostgreSQL 13+).
  const version = Number((await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0].v);
  await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}${version >= 130000 ? ' WITH (FORCE)' : ''}`);
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
