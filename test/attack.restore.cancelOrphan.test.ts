// Attack (issue 8, item 2 / README promise: a failed or cancelled restore leaves nothing):
// a restore cancelled before its activity has heard of the cancellation. The activity learns
// of a cancel only from a heartbeat's answer, and heartbeats only on progress; while it waits
// (here: creating the backup's roles on a fresh server, behind another session's lock) it
// hears nothing. Had the workflow not waited for the activity to stop, its compensation
// (drop what this run restored) would run first, find nothing, and the workflow would end
// "cancelled"; then the activity would go on, create the database and fill it: a whole copy
// of the application's data left on the server with nobody to drop it.
import { readdirSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import pg from 'pg';
import pino from 'pino';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupDatabase, restoreDatabase, verifyBackup } from '../workflows/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { APP_USER, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

let env: BackupEnv;
let worker: RunningWorker;
let workDir: string;
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });

beforeAll(async () => {
  env = await startBackupEnv({ users: 40, sessionsPerUser: 3, activitiesPerSession: 4 });
  workDir = path.join(env.dir, 'staging');
  mkdirSync(workDir);
  const config = env.config('db', (raw) => {
    raw.encryption.privateKeyHome = env.keys.privateHome;
    // The fresh cluster has never seen the application's roles: the restore creates them.
    raw.restore = { serverUrl: env.fresh.url('postgres'), workDir, jobs: 1 };
  });
  worker = await startWorker(config, logger, { bundleInProcess: true });
  await env.temporal.client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'cancel-orphan-backup', args: [{ hostTaskQueue: hostTaskQueue('db') }] });
}, 240_000);

afterAll(async () => {
  await worker?.shutdown().catch(() => undefined);
  await env?.stop();
});

async function until(what: string, check: () => Promise<boolean> | boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function databaseExists(name: string): Promise<boolean> {
  const { rows } = await env.fresh.query('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return rows.length > 0;
}

/** The fresh server as it was: no databases but the system's, none of the application's roles. */
async function resetFreshServer(): Promise<void> {
  const dbs = await env.fresh.query<{ datname: string }>('postgres', "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')");
  for (const { datname } of dbs.rows) await env.fresh.query('postgres', `DROP DATABASE "${datname}" WITH (FORCE)`);
  const roles = await env.fresh.query<{ rolname: string }>('postgres', "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> 'postgres'");
  for (const { rolname } of roles.rows) await env.fresh.query('postgres', `DROP ROLE "${rolname}"`);
}

/**
 * Holds the creation of the application's role on the fresh server (another session created
 * it in a transaction not yet ended), starts the run, cancels it while the restore waits on
 * that lock, lets the workflow close, then releases the lock and lets the activity run on.
 */
async function cancelWhileCreatingRoles(start: () => Promise<WorkflowHandle>): Promise<{ closed: string }> {
  await resetFreshServer();
  const blocker = new pg.Client({ connectionString: env.fresh.url('postgres') });
  await blocker.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query(`CREATE ROLE ${APP_USER}`);
    const handle = await start();
    await until(
      'the restore to wait on the role lock',
      async () => (await env.fresh.query('postgres', "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'CREATE ROLE%'")).rows.length > 0,
      60_000,
    );
    await handle.cancel();
    const closed = await handle.result().then(
      () => 'completed',
      (err: any) => String(err?.cause?.name ?? err?.name),
    );
    await blocker.query('ROLLBACK');
    // The activity goes on: its staging folder goes when it ends, whatever way it ends.
    await until('the restore activity to end', () => readdirSync(workDir).length === 0, 60_000);
    return { closed };
  } finally {
    await blocker.end().catch(() => undefined);
  }
}

test('restore database: cancelled while its activity cannot yet hear of it, nothing restored is left behind', async () => {
  const into = 'orphan_restore';
  const { closed } = await cancelWhileCreatingRoles(() =>
    env.temporal.client.workflow.start(restoreDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'cancel-orphan-restore', args: [{ hostTaskQueue: hostTaskQueue('db'), backup: 'latest', into }] }),
  );
  expect(closed).toBe('CancelledFailure');
  // Given the activity time to create and fill the database had it gone on unchecked.
  await new Promise((r) => setTimeout(r, 3000));
  expect({ left: await databaseExists(into) }).toEqual({ left: false });
}, 180_000);

test('verify backup: cancelled the same way, no scratch database is left behind', async () => {
  const before = (await env.fresh.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database')).rows.map((r) => r.datname);
  await cancelWhileCreatingRoles(() =>
    env.temporal.client.workflow.start(verifyBackup, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'cancel-orphan-verify', args: [{ hostTaskQueue: hostTaskQueue('db'), backup: 'latest' }] }),
  );
  await new Promise((r) => setTimeout(r, 3000));
  const after = (await env.fresh.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database')).rows.map((r) => r.datname);
  expect(after.filter((d) => !before.includes(d))).toEqual([]);
}, 180_000);
