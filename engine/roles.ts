// Roles from a backup's globals (pg_dumpall --globals-only), created on a server that lacks
// them: a fresh drill host has never seen the application's roles, and pg_restore cannot give
// a table to an owner that does not exist. Roles the server already has are left as they are.
import { text } from 'node:stream/consumers';
import type pg from 'pg';
import type { CatalogSource, SkippedCopy } from '../common/restoreTypes.js';
import { readFirstGoodCopy } from './copySelection.js';
import { classifyFilesystemError } from './errors.js';
import type { DatabaseTarget } from './postgres.js';
import { withServer } from './restoreTarget.js';
import type { DecryptKeys } from './staging.js';
import type { Repository } from './storage/repository.js';

export interface RoleStatements {
  role: string;
  /** CREATE ROLE and ALTER ROLE statements, as pg_dumpall wrote them. */
  statements: string[];
}

export interface GlobalsPlan {
  roles: RoleStatements[];
  /** GRANT role TO role statements, applied when their member is a role we created. */
  memberships: { role: string; member: string; statement: string }[];
}

const IDENT = String.raw`("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`;
const CREATE_ROLE = new RegExp(String.raw`^CREATE ROLE ${IDENT};$`);
// Its attributes (WITH ...) and its own settings (SET ..., pg_dumpall's "User Config").
const ALTER_ROLE = new RegExp(String.raw`^ALTER ROLE ${IDENT} (?:WITH|SET) .*;$`);
// PostgreSQL 16 adds WITH INHERIT / SET options; anything after the member is kept.
const GRANT_ROLE = new RegExp(String.raw`^GRANT ${IDENT} TO ${IDENT}(?: .*)?;$`);

function unquote(identifier: string): string {
  return identifier.startsWith('"') ? identifier.slice(1, -1).replace(/""/g, '"') : identifier.toLowerCase();
}

/**
 * The statements of a SQL script, each ending at a semicolon that is outside quotes and
 * comments, with comments left out and surrounding white space trimmed. A quoted value or name
 * may hold a newline (pg_dumpall writes it as it is): what follows it on the next line is part
 * of the value, never a statement of its own. Quotes: 'standard' ('' doubles a quote), E'escape'
 * (a backslash escapes the next character), "identifier" ("" doubles), $tag$dollar$tag$.
 */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  let i = 0;
  const take = (end: number) => {
    current += sql.slice(i, end);
    i = end;
  };
  while (i < sql.length) {
    const c = sql[i];
    if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
      continue;
    }
    if (c === "'") {
      const escapes = /[eE]$/.test(current) && !/[A-Za-z0-9_$]$/.test(current.slice(0, -1));
      let j = i + 1;
      while (j < sql.length) {
        if (escapes && sql[j] === '\\') j += 2;
        else if (sql[j] === "'" && sql[j + 1] === "'") j += 2;
        else if (sql[j] === "'") break;
        else j++;
      }
      take(Math.min(j + 1, sql.length));
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < sql.length && !(sql[j] === '"' && sql[j + 1] !== '"')) j += sql[j] === '"' ? 2 : 1;
      take(Math.min(j + 1, sql.length));
      continue;
    }
    if (c === '$') {
      const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (tag && !/[A-Za-z0-9_$]$/.test(current)) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        take(end < 0 ? sql.length : end + tag[0].length);
        continue;
      }
    }
    if (c === ';') {
      take(i + 1);
      if (current.trim()) statements.push(current.trim());
      current = '';
      continue;
    }
    take(i + 1);
  }
  if (current.trim()) statements.push(current.trim());
  return statements;
}

/**
 * Reads the role statements out of pg_dumpall -g output, statement by statement (never line
 * by line: a line may continue a quoted value, and a role may put anything in its own settings).
 */
export function parseGlobals(sql: string): GlobalsPlan {
  const roles = new Map<string, RoleStatements>();
  const memberships: GlobalsPlan['memberships'] = [];
  for (const line of splitStatements(sql)) {
    let match = CREATE_ROLE.exec(line);
    if (match) {
      const role = unquote(match[1]);
      roles.set(role, { role, statements: [line] });
      continue;
    }
    match = ALTER_ROLE.exec(line);
    if (match) {
      roles.get(unquote(match[1]))?.statements.push(line);
      continue;
    }
    match = GRANT_ROLE.exec(line);
    if (match) {
      // GRANTED BY names a grantor that may not exist here; the membership is what matters.
      const statement = line.replace(/ GRANTED BY .*;$/, ';');
      memberships.push({ role: unquote(match[1]), member: unquote(match[2]), statement });
    }
  }
  return { roles: [...roles.values()], memberships };
}

/**
 * Creates the roles the server lacks, with their attributes, and their memberships, in one
 * transaction. Returns the names created.
 */
export async function createMissingRoles(client: pg.Client, plan: GlobalsPlan): Promise<string[]> {
  const names = plan.roles.map((r) => r.role);
  const { rows } = await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [names]);
  const present = new Set(rows.map((r) => r.rolname));
  const missing = plan.roles.filter((r) => !present.has(r.role));
  if (!missing.length) return [];
  const created = new Set(missing.map((r) => r.role));
  await client.query('BEGIN');
  try {
    for (const role of missing) for (const statement of role.statements) await client.query(statement);
    for (const m of plan.memberships) if (created.has(m.member) || created.has(m.role)) await client.query(m.statement);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  return [...created];
}

/** A backup's roles (its globals object, the first whole copy) created on `server` where missing. */
export async function ensureRolesOf(server: DatabaseTarget, source: CatalogSource, repositories: Repository[], keys: DecryptKeys, signal: AbortSignal): Promise<{ created: string[]; skipped: SkippedCopy[] }> {
  const globals = source.objects.find((o) => o.role === 'globals');
  if (!globals) return { created: [], skipped: [] };
  const read = await readFirstGoodCopy({
    object: globals,
    repositories,
    compression: source.compression,
    privateKeyHome: keys.privateKeyHome,
    passphraseFile: keys.passphraseFile,
    signal,
    consume: (plain) => text(plain),
    consumerFailure: (err) => classifyFilesystemError(err, 'reading the globals'),
  });
  const created = await withServer(server, (client) => createMissingRoles(client, parseGlobals(read.value)));
  return { created, skipped: read.skipped };
}
