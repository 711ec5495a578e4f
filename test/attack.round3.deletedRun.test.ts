// Attack round 3 (README promises 2 and 4; commit "stale attempts that wake after their run
// has closed leave nothing"). An attempt asks the server whether it still stands
// (attemptStanding.ts: describeWorkflowExecution). A closed run whose history is already
// deleted (namespace retention, or `temporal workflow delete`, as restoreSafety's test does)
// answers NotFound, and NotFound is taken as "the server could not be asked": 'unknown',
// which passes. So the attempt that wakes late enough, after its run closed AND its history
// went, acts as if it still stood: it claims the backup id for a dead run (every later run
// under that id refused, for ever) or marks a full restored copy of the data as restored,
// a database no run will ever drop.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { createDatabaseBackupActivities } from '../activities/databaseBackup.js';
import { createRestoreActivities } from '../activities/restore.js';
import { resolveFile } from '../engine/restoreSource.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { type KeyPair } from '../client/dev/demoKeys.js';
import { validateConfig, type Config } from '../common/config.js';
import { type PgCluster } from './fixtures/postgres.js';
import { attemptOf, startRun } from './fixtures/runs.js';
import { startAttemptStack, type AttemptStack } from './fixtures/attemptStack.js';

let stack: AttemptStack;
let dir: string;
let temporal: TestWorkflowEnvironment;
let cluster: PgCluster;
let keys: KeyPair;
let config: Config;
let dumpFile: string;

beforeAll(async () => {
  stack = await startAttemptStack('attack3-deletedrun');
  ({ dir, temporal, cluster, keys } = stack);
  await cluster.query('postgres', 'CREATE DATABASE app');
  await cluster.query('app', 'CREATE TABLE secrets AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g');
  dumpFile = path.join(dir, 'app.dump');
  await execa(path.join(cluster.binDir, 'pg_dump'), ['-Fc', '-f', dumpFile, '-d', 'app'], { env: cluster.env('app') });
  config = validateConfig(
    {
      host: 'attack3-deletedrun',
      temporal: { address: temporal.address, namespace: 'default' },
      database: { url: cluster.url('app') },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: keys.publicKeyFile },
      signing: { privateKeyFile: keys.signing.privateKeyFile, publicKeyFiles: [keys.signing.publicKeyFile] },
      restore: { serverUrl: cluster.url('postgres'), workDir: dir, jobs: 1 },
      logLevel: 'warn',
    },
    'test config',
  );
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/**
 * An activity environment of a run that has closed and whose history is gone: started (no
 * worker serves it), terminated, then deleted, as retention deletes every closed run.
 */
async function deletedRun(workflowType: string, workflowId: string): Promise<{ runId: string; env: MockActivityEnvironment }> {
  const runId = await startRun(temporal.client, workflowType, workflowId, 'deleted');
  return { runId, env: attemptOf(temporal.client, workflowId, runId) };
}

test('a plan attempt that wakes after its run has closed and been deleted claims nothing', async () => {
  const { runId, env } = await deletedRun('backupDatabase', 'deleted-claim');
  const local = new FilesystemRepository('local', path.join(dir, 'local'));
  const activities = createDatabaseBackupActivities({ config, repositories: [local] });
  const outcome = await env.run(activities.planDatabaseBackup, { backupId: 'deleted-claim', runId, workflowId: 'deleted-claim' }).then(
    () => 'planned',
    (err: any) => `${err.type}: ${err.message}`,
  );
  const leftovers = existsSync(path.join(dir, 'local')) ? readdirSync(path.join(dir, 'local'), { recursive: true }).map(String) : [];
  expect({ outcome, claims: leftovers.filter((f) => f.includes('claim.json')) }).toEqual({ outcome: expect.stringMatching(/^AttemptSuperseded/), claims: [] });
}, 60_000);

test('a restore attempt that finishes after its run has closed and been deleted leaves no database', async () => {
  const { env } = await deletedRun('restoreDatabase', 'deleted-restore');
  const restore = createRestoreActivities({ config, repositories: [], binDir: cluster.binDir });
  const source = await resolveFile(dumpFile);
  const outcome = await env.run(restore.restoreIntoNewDatabase, { workflowId: 'deleted-restore', source, database: 'orphan_of_deleted_run' }).then(
    () => 'restored',
    (err: any) => `${err.type}: ${err.message}`,
  );
  const { rows } = await cluster.query<{ comment: string | null }>('postgres', "SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = 'orphan_of_deleted_run'");
  expect({ outcome, left: rows.map((r) => r.comment) }).toEqual({ outcome: expect.stringMatching(/^AttemptSuperseded/), left: [] });
}, 60_000);

test('control: the same restore attempt of a closed run whose history still exists drops what it made', async () => {
  const runId = await startRun(temporal.client, 'restoreDatabase', 'closed-restore', 'closed');
  const env = attemptOf(temporal.client, 'closed-restore', runId);
  const restore = createRestoreActivities({ config, repositories: [], binDir: cluster.binDir });
  const outcome = await env.run(restore.restoreIntoNewDatabase, { workflowId: 'closed-restore', source: await resolveFile(dumpFile), database: 'closed_run_db' }).then(
    () => 'restored',
    (err: any) => `${err.type}`,
  );
  const { rows } = await cluster.query('postgres', "SELECT 1 FROM pg_database WHERE datname = 'closed_run_db'");
  expect({ outcome, left: rows.length }).toEqual({ outcome: 'AttemptSuperseded', left: 0 });
}, 60_000);
