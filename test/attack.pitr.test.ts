// Attack on point-in-time recovery's restore_command (README promise 9: "Hostile input is
// refused, never run"): the data directory's path is written into restore_command unquoted,
// and PostgreSQL runs restore_command through /bin/sh. A --data-dir (or restore.workDir) with
// shell metacharacters runs what they spell, as the postgres OS user, on the database host.
// Real base backup (backupBase workflow on a Temporal dev server), real activities, a real
// recovered server.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import pino from 'pino';
import { createPitrActivities } from '../activities/pitr.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Config } from '../common/config.js';
import { startWorker } from '../workers/worker.js';
import { backupBase } from '../workflows/index.js';
import type { RecoveryCluster } from '../common/pitrTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

const WORKFLOW_ID = 'attack-pitr';
let env: BackupEnv;
let config: Config;
let root: string;
let baseBackupId: string;
let stopLsn: string;
let activities: ReturnType<typeof createPitrActivities>;
const prepared = new Set<string>();

beforeAll(async () => {
  env = await startBackupEnv({ users: 20, sessionsPerUser: 1, activitiesPerSession: 1 });
  config = env.config('attack-pitr', (raw) => {
    raw.baseBackup = { url: env.source.url('postgres') };
    raw.encryption.privateKeyHome = env.keys.privateHome;
    raw.pitr = { restoreCommand: 'false %f %p' };
  });
  const worker = await startWorker(config, pino({ level: 'silent' }), { bundleInProcess: true });
  try {
    const result = await env.temporal.client.workflow.execute(backupBase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'backup-base-attack-pitr', args: [{ hostTaskQueue: hostTaskQueue('attack-pitr') }] });
    baseBackupId = result.backupId;
    stopLsn = result.backup.stopLsn;
  } finally {
    await worker.shutdown();
  }
  activities = createPitrActivities({ config, repositories: openRepositories(config), binDir: env.source.binDir });
  root = mkdtempSync(path.join(os.tmpdir(), 'backupctl-attack-pitr-'));
  chmodSync(root, 0o755);
}, 170_000);

afterAll(async () => {
  for (const dataDir of prepared) {
    await execa(path.join(env.source.binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', 'stop'], { reject: false, uid: statSync(dataDir, { throwIfNoEntry: false })?.uid, cwd: '/' });
  }
  if (root) rmSync(root, { recursive: true, force: true });
  await env?.stop();
});

function inRun(runId: string) {
  return new MockActivityEnvironment({ workflowExecution: { workflowId: WORKFLOW_ID, runId } } as Partial<Info>);
}

test('a data directory whose path holds shell syntax is never run as a command by restore_command', async () => {
  // PostgreSQL runs restore_command in the data directory, as the postgres OS user: the
  // injected command leaves its mark there. (No "/" in a folder name, so a relative path.)
  const parent = path.join(root, 'x;touch injected-by-path;y');
  mkdirSync(parent);
  const dataDir = path.join(parent, 'data');
  const mark = path.join(dataDir, 'injected-by-path');
  const runId = 'run-inject-5d2e8b1c';
  prepared.add(dataDir);

  // Either refused up front (a clear InvalidInput), or run with the path as one word: never the mark.
  let cluster: RecoveryCluster | undefined;
  try {
    cluster = (await inRun(runId).run(activities.prepareRecoveryCluster, { workflowId: WORKFLOW_ID, baseBackupId, target: { kind: 'lsn' as const, value: stopLsn }, dataDir })) as RecoveryCluster;
  } catch (err) {
    expect((err as { type?: string }).type).toBe('InvalidInput');
  }
  if (cluster) {
    // The injected command breaks the rest of restore_command (exit 127), so the server stops
    // in recovery; the mark is what counts.
    await inRun(runId).run(activities.startRecoveryCluster, cluster).catch(() => undefined);
    await inRun(runId).run(activities.waitForPromotion, cluster).catch(() => undefined);
    await inRun(runId).run(activities.stopRecoveryCluster, { dataDir: cluster.dataDir });
  }
  expect(existsSync(mark)).toBe(false);
}, 120_000);
