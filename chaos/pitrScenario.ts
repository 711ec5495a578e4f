// "point-in-time recovery": before the run, a row committed in the WAL database, the target
// time read from PostgreSQL's clock, a second row committed after it, and the segment holding
// both archived; then pointInTimeRecovery to that time (no cutover: nothing live may change).
// A completed recovery must hold exactly the rows committed before the target (the first row,
// not the second) and the application's database as it was; its server is then stopped and its
// folder removed, the operator's part when nobody switches over to it. A recovery that did not
// complete must have stopped its server (its folder stays for the operator to read; the harness
// removes it after the check).
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { PointInTimeRecoveryResult } from '../common/pitrTypes.js';
import { tableChecksums, type PgCluster } from '../test/fixtures/postgres.js';
import { differsFromSource } from './invariants.js';
import { discardRecovery, recoveryFolders } from './recoveries.js';
import { sleep, startWorkflow, until, workflowRun, type Scenario } from './scenario.js';
import { LIVE_DB, WAL_DB, type ChaosStack } from './stack.js';
import { archived, closeSegment } from './walScenario.js';

interface Prepared {
  /** The target time, ISO 8601 in UTC. */
  target: string;
  after: string;
}

const prepared = new Map<string, Prepared>();

/** A completed base backup in the spool (made here, without faults, when none is). */
async function ensureBaseBackup(stack: ChaosStack): Promise<void> {
  const base = path.join(stack.repositories.local, 'base');
  if (existsSync(base) && readdirSync(base).some((id) => existsSync(path.join(base, id, 'manifest.json')))) return;
  await (await startWorkflow(stack.client, 'backupBase', `chaos-pitr-base-${Date.now()}`, {})).result();
}

async function markIds(port: number, host: string, sql: string, params: unknown[] = []): Promise<number[]> {
  const client = new pg.Client({ host, port, user: 'postgres', database: WAL_DB });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<{ id: string }>(sql, params)).rows.map((r) => Number(r.id));
  } finally {
    await client.end();
  }
}

async function recoveredProblems(stack: ChaosStack, result: PointInTimeRecoveryResult, prep: Prepared): Promise<string[]> {
  const problems: string[] = [];
  if (result.target?.kind !== 'time' || Date.parse(result.target.value.replace(' ', 'T').replace(/\+00$/, 'Z')) !== Date.parse(prep.target)) problems.push(`recovered to ${JSON.stringify(result.target)}, asked ${prep.target}`);
  const { port, host } = result.cluster;
  try {
    const recovered = await markIds(port, host, 'SELECT id FROM marks ORDER BY id');
    const wanted = await markIds(stack.cluster.port, stack.cluster.host, 'SELECT id FROM marks WHERE at <= $1::timestamptz ORDER BY id', [prep.target]);
    const missing = wanted.filter((id) => !recovered.includes(id));
    const extra = recovered.filter((id) => !wanted.includes(id));
    if (missing.length) problems.push(`the recovered cluster lacks ${missing.length} row(s) committed before the target ${prep.target} (ids ${missing.slice(0, 5).join(', ')})`);
    if (extra.length) problems.push(`the recovered cluster holds ${extra.length} row(s) committed after the target ${prep.target} (ids ${extra.slice(0, 5).join(', ')})`);
    const differ = differsFromSource(stack, await tableChecksums({ host, port } as PgCluster, LIVE_DB));
    if (differ.length) problems.push(`the recovered ${LIVE_DB} differs from the source in ${differ.join(', ')}`);
  } catch (err) {
    problems.push(`the recovered cluster at ${host}:${port} cannot be read: ${(err as Error).message.slice(0, 160)}`);
  }
  // Nothing live changed: the row after the target is still in the live database.
  const live = await markIds(stack.cluster.port, stack.cluster.host, 'SELECT id FROM marks WHERE label = $1', [prep.after]);
  if (live.length !== 1) problems.push(`the live ${WAL_DB} holds ${live.length} copies of the row committed after the target`);
  return problems;
}

export const pointInTimeRecoveryScenario: Scenario = {
  name: 'point-in-time recovery',
  typicalMs: 10_000,
  async start(stack, workflowId) {
    await ensureBaseBackup(stack);
    await stack.cluster.query(WAL_DB, 'INSERT INTO marks (label) VALUES ($1)', [`${workflowId}:before`]);
    // Milliseconds apart on either side: the target is exact at PostgreSQL's microseconds.
    await sleep(10);
    const target = (await stack.cluster.query<{ now: Date }>('postgres', 'SELECT clock_timestamp() AS now')).rows[0].now.toISOString();
    await sleep(10);
    const after = `${workflowId}:after`;
    const segment = await closeSegment(stack, after);
    if (!(await until(async () => archived(stack, segment), 60_000, 100))) throw new Error(`PostgreSQL did not archive ${segment} within 60 s`);
    prepared.set(workflowId, { target, after });
    return workflowRun(await startWorkflow(stack.client, 'pointInTimeRecovery', workflowId, { target: { kind: 'time', value: target } }));
  },
  async check(stack, outcome, run) {
    const prep = prepared.get(run.workflowId)!;
    prepared.delete(run.workflowId);
    const problems: string[] = [];
    if (outcome.status === 'completed') problems.push(...(await recoveredProblems(stack, outcome.result as PointInTimeRecoveryResult, prep)));
    const folders = recoveryFolders(stack, run.workflowId);
    for (const recovery of folders) {
      if (outcome.status !== 'completed' && recovery.serverPid) problems.push(`a recovery that ended ${outcome.status} left its server running (pid ${recovery.serverPid}) in ${recovery.folder}`);
      await discardRecovery(stack, recovery);
    }
    if (outcome.status === 'completed' && !folders.some((f) => f.dataDir === (outcome.result as PointInTimeRecoveryResult).cluster.dataDir)) {
      problems.push(`the completed recovery's data directory ${(outcome.result as PointInTimeRecoveryResult).cluster.dataDir} is not where recoveries make theirs`);
    }
    return problems;
  },
};
