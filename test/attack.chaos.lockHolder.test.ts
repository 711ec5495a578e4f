// Found by the chaos suite (issue 9, docs/reliability.md: verification + freeze): a worker
// frozen (SIGSTOP) while its attempt held a database name's lock (withNameLock, a session-level
// advisory lock on an admin connection) kept that lock for as long as it slept. Temporal gave
// the activity to a newer attempt on another worker; that attempt waited 15 s for the lock,
// failed with TargetDatabaseBusy, and the run failed with the scratch database left behind.
// A newer attempt now ends the session of a stale attempt of its own run (tagged by
// attemptSessionTag, same role), and only that: a session of another run, or of an attempt
// that still stands, keeps the lock.
import path from 'node:path';
import pg from 'pg';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { runDigest } from '../engine/attemptStanding.js';
import { createRestoreActivities } from '../activities/restore.js';
import { markerFor } from '../engine/restoreTarget.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { type KeyPair } from '../client/dev/demoKeys.js';
import { validateConfig, type Config } from '../common/config.js';
import { type PgCluster } from './fixtures/postgres.js';
import { startAttemptStack, type AttemptStack } from './fixtures/attemptStack.js';

let stack: AttemptStack;
let dir: string;
let temporal: TestWorkflowEnvironment;
let cluster: PgCluster;
let keys: KeyPair;
let config: Config;
let local: FilesystemRepository;

beforeAll(async () => {
  stack = await startAttemptStack('attack-lockholder');
  ({ dir, temporal, cluster, keys } = stack);
  local = new FilesystemRepository('local', path.join(dir, 'local'));
  await cluster.query('postgres', 'CREATE DATABASE live_app');
  config = validateConfig(
    {
      host: 'attack-lockholder',
      temporal: { address: temporal.address, namespace: 'default' },
      database: { url: cluster.url('live_app') },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      restore: { serverUrl: cluster.url('postgres'), workDir: dir, jobs: 1 },
      logLevel: 'warn',
    },
    'test config',
  );
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/** A run that is open, with no activity pending (nobody serves its queue). */
async function openRun(workflowId: string): Promise<string> {
  const handle = await temporal.client.workflow.start('verifyBackup', { taskQueue: 'nobody-serves-this', workflowId, args: [{}] });
  return handle.firstExecutionRunId;
}

/** A session like a frozen worker's: tagged as `tag`, holding the name's lock, then silent. */
async function frozenHolder(database: string, tag: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: cluster.url('postgres'), application_name: tag });
  client.on('error', () => undefined);
  await client.connect();
  await client.query('SELECT pg_advisory_lock(hashtext($1))', [`backupctl-database:${database}`]);
  return client;
}

async function holderAlive(tag: string): Promise<boolean> {
  const { rows } = await cluster.query<{ n: number }>('postgres', 'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [tag]);
  return rows[0].n > 0;
}

function newerAttempt(workflowId: string, runId: string): MockActivityEnvironment {
  return new MockActivityEnvironment({ attempt: 2, activityId: '7', workflowNamespace: 'default', workflowExecution: { workflowId, runId } } as Partial<Info>, { client: temporal.client });
}

test("a newer attempt ends the session of its run's stale attempt that holds the name's lock, and drops what the run made", async () => {
  const workflowId = 'attack-lockholder-stale';
  const runId = await openRun(workflowId);
  await cluster.query('postgres', 'CREATE DATABASE scratch_frozen');
  await cluster.query('postgres', `COMMENT ON DATABASE scratch_frozen IS '${markerFor({ workflowId, runId, attempt: 1 }, 'restoring')}'`);
  // Attempt 1 of activity 7, no longer pending: its worker froze holding the lock.
  const tag = `backupctl-attempt-${runDigest(runId)}-7-1`;
  const holder = await frozenHolder('scratch_frozen', tag);
  const restore = createRestoreActivities({ config, repositories: [local], binDir: cluster.binDir });
  try {
    const started = Date.now();
    const dropped = await newerAttempt(workflowId, runId).run(restore.dropRestoredDatabase, { database: 'scratch_frozen', workflowId });
    const { rows } = await cluster.query<{ n: number }>('postgres', "SELECT count(*)::int AS n FROM pg_database WHERE datname = 'scratch_frozen'");
    expect({ dropped, left: rows[0].n, holderAlive: await holderAlive(tag), withinLockWait: Date.now() - started < 15_000 }).toEqual({
      dropped: true,
      left: 0,
      holderAlive: false,
      withinLockWait: true,
    });
  } finally {
    await holder.end().catch(() => undefined);
    await cluster.query('postgres', 'DROP DATABASE IF EXISTS scratch_frozen WITH (FORCE)');
  }
}, 60_000);

test("a session of ANOTHER run holding the lock is not ended: the attempt fails with TargetDatabaseBusy and the other run's session lives", async () => {
  const workflowId = 'attack-lockholder-other';
  const runId = await openRun(workflowId);
  const otherRun = await openRun('attack-lockholder-someone-else');
  await cluster.query('postgres', 'CREATE DATABASE scratch_other');
  await cluster.query('postgres', `COMMENT ON DATABASE scratch_other IS '${markerFor({ workflowId, runId, attempt: 1 }, 'restoring')}'`);
  const tag = `backupctl-attempt-${runDigest(otherRun)}-7-1`;
  const holder = await frozenHolder('scratch_other', tag);
  const restore = createRestoreActivities({ config, repositories: [local], binDir: cluster.binDir });
  try {
    const failure = await newerAttempt(workflowId, runId)
      .run(restore.dropRestoredDatabase, { database: 'scratch_other', workflowId })
      .then(() => undefined, (err: { type?: string }) => err.type);
    expect({ failure, holderAlive: await holderAlive(tag) }).toEqual({ failure: 'TargetDatabaseBusy', holderAlive: true });
  } finally {
    await holder.end().catch(() => undefined);
    await cluster.query('postgres', 'DROP DATABASE IF EXISTS scratch_other WITH (FORCE)');
  }
}, 60_000);
