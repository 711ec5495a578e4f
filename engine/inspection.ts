// Looks into a restored database and says whether it holds what the backup recorded: the row
// counts of the key tables, the configured freshness queries, the operator's SQL checks and, for
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
  /** Queries that each return one timestamp (restore.freshness). */
  freshness?: { name: string; sql: string }[];
  /** Run pg_amcheck (it installs the amcheck extension: for scratch databases only). */
  amcheck?: { binDir: string | undefined; signal: AbortSignal };
}

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

  const freshness: Record<string, string | null> = {};
  const freshnessErrors: Record<string, string> = {};
  for (const query of options.freshness ?? []) {
    const answer = await readOnly(client, query.sql);
    if ('error' in answer) {
      freshness[query.name] = null;
      freshnessErrors[query.name] = answer.error;
      continue;
    }
    const first = answer.rows.length === 1 ? answer.rows[0][0] : undefined;
    if (first instanceof Date) freshness[query.name] = first.toISOString();
    else if (first === null || first === undefined) freshness[query.name] = null;
    else {
      freshness[query.name] = null;
      // The shape, never the value: reports hold no data.
      freshnessErrors[query.name] = `expected one row with a timestamp, got ${answer.rows.length === 1 ? `a ${typeof first}` : `${answer.rows.length} rows`}`;
    }
  }

  const checks: CheckResult[] = [];
  for (const check of options.checks) checks.push(await runCheck(client, check));

  const amcheck = options.amcheck ? await runAmcheck(target, options.amcheck.binDir, options.amcheck.signal) : undefined;
  const ok = countMismatches.length === 0 && checks.every((c) => c.ok) && (amcheck?.ok ?? true);
  return { database: target.database, rowCounts, countMismatches, freshness, ...(Object.keys(freshnessErrors).length ? { freshnessErrors } : {}), checks, amcheck, ok };
}

/** Runs a query in a read-only transaction (it cannot change the database it judges); rows as arrays. */
async function readOnly(client: pg.Client, sql: string): Promise<{ rows: unknown[][] } | { error: string }> {
  try {
    await client.query('BEGIN READ ONLY');
    const result = await client.query({ text: sql, rowMode: 'array' });
    return { rows: result.rows as unknown[][] };
  } catch (err) {
    return { error: errorText(err) };
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
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
