// Attack (issue 8, items 1 and 4 / README promise: a backup id is written by one run only):
// stale attempts that wake after their run has closed. A plan attempt frozen (SIGSTOP, a paused VM) before it claims the id wakes after its run
// has failed, compensated and given the id back. Had it claimed blindly, the id would stay
// claimed for ever by a dead run: every later run under that workflow id refused, naming a run
// that no longer exists. The attempt asks the server first, and claims nothing.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { createDatabaseBackupActivities } from '../activities/databaseBackup.js';
import { createPitrActivities } from '../activities/pitr.js';
import { claimDataDirectory, markerPath, workDirOf } from '../engine/recoveryCluster.js';
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

beforeAll(async () => {
  stack = await startAttemptStack('attack-staleclaim');
  ({ dir, temporal, cluster, keys } = stack);
  await cluster.query('postgres', 'CREATE DATABASE app');
  config = validateConfig(
    {
      host: 'attack-staleclaim',
      temporal: { address: temporal.address, namespace: 'default' },
      database: { url: cluster.url('app') },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: keys.publicKeyFile },
      signing: { privateKeyFile: keys.signing.privateKeyFile },
      logLevel: 'warn',
    },
    'test config',
  );
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/** An activity environment of a run that has closed: started (no worker serves it), then ended for good. */
async function closedRun(workflowType: string, workflowId: string): Promise<{ runId: string; env: MockActivityEnvironment }> {
  const runId = await startRun(temporal.client, workflowType, workflowId, 'closed');
  return { runId, env: attemptOf(temporal.client, workflowId, runId) };
}

test('a plan attempt that wakes after its run has closed claims nothing', async () => {
  const { runId, env } = await closedRun('backupDatabase', 'stale-claim');
  const local = new FilesystemRepository('local', path.join(dir, 'local'));
  const activities = createDatabaseBackupActivities({ config, repositories: [local] });
  const outcome = await env.run(activities.planDatabaseBackup, { backupId: 'stale-claim', runId, workflowId: 'stale-claim' }).then(
    () => 'planned',
    (err: any) => `${err.type}: ${err.message}`,
  );
  expect(outcome).toMatch(/^AttemptSuperseded: .*has closed/);
  const leftovers = existsSync(path.join(dir, 'local')) ? readdirSync(path.join(dir, 'local'), { recursive: true }).map(String) : [];
  expect(leftovers.filter((f) => f.includes('claim.json'))).toEqual([]);
}, 60_000);

test('a recovery cluster start that wakes after its run has closed starts no server', async () => {
  const { env } = await closedRun('pointInTimeRecovery', 'stale-pitr');
  const pitr = createPitrActivities({ config, repositories: [], binDir: cluster.binDir });
  const dataDir = path.join(dir, 'pitr', 'data');
  const outcome = await env.run(pitr.startRecoveryCluster, { dataDir, port: 1, host: '127.0.0.1' }).then(
    () => 'started',
    (err: any) => `${err.type}: ${err.message}`,
  );
  expect(outcome).toMatch(/^AttemptSuperseded: starting the recovery cluster .*has closed/);
}, 60_000);

// Found by the chaos suite (issue 9: point-in-time recovery + s3-stall): an attempt stalled in
// a storage read until its place was taken woke after the run had completed, and claimed the
// run's recovery folder again, as a retry of the same run may: it would stop the completed
// recovery's server (the one the operator is to switch to) and empty its folder.
test("a recovery prepare that wakes after its run has completed leaves the run's recovered cluster alone", async () => {
  const { runId, env } = await closedRun('pointInTimeRecovery', 'stale-pitr-claim');
  const dataDir = path.join(dir, 'pitr-claim', 'data');
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(workDirOf(dataDir), { recursive: true });
  writeFileSync(markerPath(dataDir), JSON.stringify({ runId, workflowId: 'stale-pitr-claim', port: 1, createdDataDir: true }) + '\n');
  writeFileSync(path.join(dataDir, 'PG_VERSION'), '15\n');
  const outcome = await env.run(claimDataDirectory, dataDir, { runId, workflowId: 'stale-pitr-claim' }, undefined, cluster.binDir).then(
    () => 'claimed',
    (err: any) => `${err.type}: ${err.message}`,
  );
  expect({ outcome, kept: readdirSync(dataDir) }).toEqual({ outcome: expect.stringMatching(/^AttemptSuperseded: claiming the recovery folder .*has closed/), kept: ['PG_VERSION'] });
}, 60_000);
