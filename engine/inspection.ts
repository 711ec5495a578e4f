// Looks into a restored database and says whether it holds what the backup recorded: the row
// counts of the key tables, the seed's freshness check, the operator's SQL checks and, for
// scratch databases, pg_amcheck. Never throws for a finding: the verdict is `ok`, so a failed
// verification still produces a full report.
import { existsSync } from 'node:fs';
import type pg from 'pg';
import type { CheckResult, DatabaseInspection } from '../common/restoreTypes.js';
import { errorText } from './errors.js';
import { countRows, spawnAmcheck, toolPath, type DatabaseTarget } from './postgres.js';

export interface InspectOptions {
  expectedRowCounts: Record<string, number>;
  checks: { name: string; sql: string }[];
  /** Run pg_amcheck (it installs the amcheck extension: for scratch databases only). */
  amcheck?: { binDir: string | undefined; signal: AbortSignal };
}

const SEARCH_SESSIONS = 'review_manager_searchsession';

export async function inspectDatabase(client: pg.Client, target: DatabaseTarget, options: InspectOptions): Promise<DatabaseInspection> {
  const rowCounts: Record<string, number> = {};
  const countMismatches: string[] = [];
  for (const [table, expected] of Object.entries(options.expectedRowCounts)) {
    const found = await countRows(client, table);
    if (found === undefined) {
      countMismatches.push(`${table}: expected ${expected} rows, the table is missing`);
      continue;
    }
    rowCounts[table] = found;
    if (found !== expected) countMismatches.push(`${table}: expected ${expected} rows, found ${found}`);
  }

  let newestSearchSession: string | null = null;
  if ((await client.query<{ oid: string | null }>('SELECT to_regclass($1)::text AS oid', [SEARCH_SESSIONS])).rows[0].oid) {
    const { rows } = await client.query<{ newest: Date | null }>(`SELECT max(created_at) AS newest FROM ${SEARCH_SESSIONS}`);
    newestSearchSession = rows[0].newest ? rows[0].newest.toISOString() : null;
  }

  const checks: CheckResult[] = [];
  for (const check of options.checks) checks.push(await runCheck(client, check));

  const amcheck = options.amcheck ? await runAmcheck(target, options.amcheck.binDir, options.amcheck.signal) : undefined;
  const ok = countMismatches.length === 0 && checks.every((c) => c.ok) && (amcheck?.ok ?? true);
  return { database: target.database, rowCounts, countMismatches, newestSearchSession, checks, amcheck, ok };
}

/** A check passes when its query returns one row whose first column is true. */
async function runCheck(client: pg.Client, check: { name: string; sql: string }): Promise<CheckResult> {
  try {
    // Read-only, so a check cannot change the database it judges.
    await client.query('BEGIN READ ONLY');
    const result = await client.query({ text: check.sql, rowMode: 'array' });
    const first = (result.rows as unknown[][])[0]?.[0];
    const ok = result.rows.length === 1 && first === true;
    // The shape of the answer, never its values: reports and workflow histories hold no data.
    const got = result.rows.length === 1 ? `a first column of ${first === null ? 'null' : typeof first === 'boolean' ? String(first) : typeof first}` : `${result.rows.length} rows`;
    return { name: check.name, ok, detail: ok ? 'true' : `expected one row with true, got ${got}` };
  } catch (err) {
    return { name: check.name, ok: false, detail: errorText(err) };
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}

async function runAmcheck(target: DatabaseTarget, binDir: string | undefined, signal: AbortSignal): Promise<CheckResult> {
  if (binDir && !existsSync(toolPath(binDir, 'pg_amcheck'))) {
    return { name: 'pg_amcheck', ok: true, detail: `not run: ${binDir} has no pg_amcheck (PostgreSQL 14 or later)` };
  }
  try {
    await spawnAmcheck(target, binDir, signal);
    return { name: 'pg_amcheck', ok: true, detail: 'every table and B-tree index checked, no corruption found' };
  } catch (err) {
    return { name: 'pg_amcheck', ok: false, detail: errorText(err) };
  }
}
