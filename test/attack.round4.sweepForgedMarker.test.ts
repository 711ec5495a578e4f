// Attack round 4: a restore's database marker rewritten by the database's owner makes the sweep
// drop a RUNNING restore's database, ending the restore role's sessions on it. A restore
// creates its database OWNER the backup's owner (the application's role), and an owner may
// COMMENT ON its database. The marker (`backupctl run=<run> attempt=<n> workflow=<id> restoring`,
// readable by every role) names the run; the owner keeps the run id and writes another workflow
// id. Temporal, asked by workflow id and run id, knows no such run: "gone", taken as closed,
// and a database still restoring whose run is gone is dropped, WITH (FORCE), by the restore
// role, which ends the restore's own sessions (pg_restore's): something the application's role
// cannot do itself (ending another role's sessions needs pg_signal_backend).
//
// A run id that Temporal holds under another workflow id than the mark's is not gone: the mark
// is not believed (unknown), and what it marks is kept.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { markerFor } from '../engine/restoreTarget.js';
import { createSweepActivities } from '../activities/sweep.js';
import { validateConfig, type Config } from '../common/config.js';
import { decide, runKey, runOf, DEFAULT_UPLOAD_AGE_HOURS } from '../workflows/sweepRules.js';
import type { FoundLeftovers, RunRef, RunStanding } from '../common/sweepTypes.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';
import { startTemporal } from './fixtures/temporal.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'attack4-marker-'));
let temporal: TestWorkflowEnvironment;
let cluster: PgCluster;
let config: Config;
const APP_PASSWORD = 'app-password-4b7e';

beforeAll(async () => {
  [temporal, cluster] = await Promise.all([startTemporal(), startCluster()]);
  await cluster.query('postgres', `CREATE ROLE app LOGIN PASSWORD '${APP_PASSWORD}'`);
  await cluster.createDatabase('app', 'app');
  config = validateConfig(
    {
      host: 'attack4-marker',
      temporal: { address: temporal.address, namespace: 'default' },
      database: { url: cluster.url('app', 'app', APP_PASSWORD) },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: path.join(dir, 'unused.asc') },
      signing: { required: false },
      restore: { serverUrl: cluster.url('postgres'), workDir: dir },
      logLevel: 'warn',
    },
    'test config',
  );
}, 120_000);

afterAll(async () => {
  await temporal?.teardown();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("a marker rewritten by the database's owner never makes the sweep drop a running restore's database", async () => {
  // A restore that is running: its workflow is open, its database made and marked, pg_restore connected.
  const workflowId = 'restore-database-attack4';
  const handle = await temporal.client.workflow.start('restoreDatabase', { taskQueue: 'nobody-serves-this', workflowId, args: [{ hostTaskQueue: 'nobody', backup: 'latest' }] });
  const run = { workflowId, runId: handle.firstExecutionRunId };
  await cluster.query('postgres', 'CREATE DATABASE restore_target OWNER app');
  await cluster.query('postgres', `COMMENT ON DATABASE restore_target IS '${markerFor({ ...run, attempt: 1 }, 'restoring')}'`);
  const restoreSession = new pg.Client({ connectionString: cluster.url('restore_target') });
  await restoreSession.connect();
  restoreSession.on('error', () => undefined);

  // The application's role, owner of the database, keeps the run id and writes another workflow id.
  const app = new pg.Client({ connectionString: cluster.url('postgres', 'app', APP_PASSWORD) });
  await app.connect();
  try {
    const { rows } = await app.query<{ c: string }>("SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = 'restore_target'");
    await app.query(`COMMENT ON DATABASE restore_target IS '${rows[0].c.replace(`workflow=${workflowId}`, 'workflow=no-such-workflow')}'`);
    // On its own it may not end the restore role's sessions.
    await expect(app.query('DROP DATABASE restore_target WITH (FORCE)')).rejects.toThrow(/permission|terminate/i);
  } finally {
    await app.end();
  }

  const activities = createSweepActivities({ config, repositories: [] });
  const env = new MockActivityEnvironment(
    { attempt: 1, activityId: '1', workflowNamespace: 'default', workflowExecution: { workflowId: 'sweep-leftovers-attack4', runId: 'f0f0f0f0-0000-4000-8000-00000000000a' } } as Partial<Info>,
    { client: temporal.client },
  );
  const found: FoundLeftovers = await env.run(activities.findLeftovers, { uploadAgeHours: DEFAULT_UPLOAD_AGE_HOURS });
  const runs = found.leftovers.map(runOf).filter((r): r is RunRef => r !== undefined);
  const answers: RunStanding[] = await env.run(activities.describeRuns, { runs });
  const standings = new Map(runs.map((r, i) => [runKey(r), answers[i]]));
  // Asked about the forged pair, Temporal answers NotFound; where it holds the run tells the lie.
  expect(answers.find((_, i) => runs[i].runId === run.runId)).toMatchObject({ state: 'unknown', why: expect.stringContaining(`under workflow ${workflowId}`) });
  for (const leftover of found.leftovers) {
    const r = runOf(leftover);
    const decision = decide(leftover, r && standings.get(runKey(r)), { removeRecoveryFolders: false, uploadAgeHours: DEFAULT_UPLOAD_AGE_HOURS });
    if (decision.act === 'keep') continue;
    await env.run(activities.sweepLeftover, { leftover, decision }).catch(() => undefined);
  }

  const exists = (await cluster.query('postgres', "SELECT 1 FROM pg_database WHERE datname = 'restore_target'")).rowCount;
  const alive = await restoreSession.query('SELECT 1').then(() => true, () => false);
  await restoreSession.end().catch(() => undefined);
  await handle.terminate('test over');
  expect({ exists, alive }).toEqual({ exists: 1, alive: true });
}, 120_000);
