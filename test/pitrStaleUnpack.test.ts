// Found by the chaos suite (issue 9: point-in-time recovery + worker frozen): an attempt frozen
// while it unpacked the base backup woke after a newer attempt had unpacked, configured,
// started and promoted the recovered server in the same folder. Its tar went on writing files
// of the base backup over the running server's, and then it wrote recovery.signal there: the
// next restart of the promoted server would have gone back into recovery. Each attempt now
// unpacks, fetches ahead and configures in folders of its own, and moves them into place in one
// step only while it still stands.
// Real base backup (backupBase workflow), real gpg, zstd and tar; the server's answer to "does
// this attempt still stand" turns from yes to no while the copy is read, as it does for a
// frozen attempt whose place is taken meanwhile.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import pino from 'pino';
import { createPitrActivities } from '../activities/pitr.js';
import { markerPath, prefetchDirOf, workDirOf } from '../engine/recoveryCluster.js';
import type { Repository } from '../engine/storage/repository.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Config } from '../common/config.js';
import { startWorker } from '../workers/worker.js';
import { backupBase } from '../workflows/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

const RUN_ID = 'run-stale-unpack-7a41c0de';
let env: BackupEnv;
let config: Config;
let root: string;
let baseBackupId: string;
let stopLsn: string;

beforeAll(async () => {
  env = await startBackupEnv({ users: 20, sessionsPerUser: 1, activitiesPerSession: 1 });
  config = env.config('stale-unpack', (raw) => {
    raw.baseBackup = { url: env.source.url('postgres') };
    raw.encryption.privateKeyHome = env.keys.privateHome;
    raw.pitr = { restoreCommand: 'false %f %p' };
  });
  const worker = await startWorker(config, pino({ level: 'silent' }), { bundleInProcess: true });
  try {
    const result = await env.temporal.client.workflow.execute(backupBase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'backup-base-stale-unpack', args: [{ hostTaskQueue: hostTaskQueue('stale-unpack') }] });
    baseBackupId = result.backupId;
    stopLsn = result.backup.stopLsn;
  } finally {
    await worker.shutdown();
  }
  root = mkdtempSync(path.join(os.tmpdir(), 'backupctl-stale-unpack-'));
}, 170_000);

afterAll(async () => {
  if (root) rmSync(root, { recursive: true, force: true });
  await env?.stop();
});

/** A repository whose reads of the base backup's data, just before their last byte, run `beforeEnd`. */
function withHookBeforeEnd(inner: Repository, beforeEnd: () => void): Repository {
  return Object.assign(Object.create(inner) as Repository, {
    async get(key: string, options?: { signal?: AbortSignal }): Promise<Readable> {
      const body = await inner.get(key, options);
      if (!key.startsWith('base/') || key.endsWith('.json')) return body;
      const hook = new Transform({
        transform: (chunk, _enc, done) => done(null, chunk),
        flush: (done) => {
          beforeEnd();
          done();
        },
      });
      body.on('error', (err) => hook.destroy(err));
      return body.pipe(hook);
    },
  });
}

/** A client whose server says the run is open and activity 1 pending with attempt `pendingAttempt()`. */
function answering(pendingAttempt: () => number) {
  return {
    withAbortSignal: <R>(_signal: AbortSignal, fn: () => Promise<R>) => fn(),
    workflowService: {
      describeWorkflowExecution: async () => ({ workflowExecutionInfo: { status: 1 }, pendingActivities: [{ activityId: '1', attempt: pendingAttempt(), state: 1 }] }),
    },
  };
}

test('an attempt that loses its standing while it unpacks writes nothing into the data directory', async () => {
  const dataDir = path.join(root, 'recovery', 'data');
  let superseded = false;
  // What the newer attempt made meanwhile: its server's files, which must stay exactly as they are.
  const newerAttempt = () => {
    if (superseded) return;
    superseded = true;
    writeFileSync(path.join(dataDir, 'PG_VERSION'), 'the newer attempt\n');
    mkdirSync(path.join(dataDir, 'base'));
  };
  const repositories = openRepositories(config).map((r) => withHookBeforeEnd(r, newerAttempt));
  const client = answering(() => (superseded ? 2 : 1));
  const activityEnv = new MockActivityEnvironment(
    { attempt: 1, activityId: '1', workflowNamespace: 'default', workflowExecution: { workflowId: 'stale-unpack', runId: RUN_ID } } as Partial<Info>,
    { client: client as never },
  );
  const activities = createPitrActivities({ config, repositories, binDir: env.source.binDir });
  const outcome = await activityEnv.run(activities.prepareRecoveryCluster, { workflowId: 'stale-unpack', baseBackupId, target: { kind: 'lsn' as const, value: stopLsn }, dataDir }).then(
    () => 'prepared',
    (err: any) => `${err.type}: ${err.message}`,
  );
  expect(superseded).toBe(true);
  expect(outcome).toMatch(/^AttemptSuperseded: moving the unpacked base backup into .*attempt 2 of activity 1 has taken this attempt's \(1\) place/);
  expect(readdirSync(dataDir).sort()).toEqual(['PG_VERSION', 'base']);
  expect(readFileSync(path.join(dataDir, 'PG_VERSION'), 'utf8')).toBe('the newer attempt\n');
  expect(readdirSync(path.join(dataDir, 'base'))).toEqual([]);
  expect(readdirSync(workDirOf(dataDir)).filter((f) => f.startsWith(path.basename(prefetchDirOf(dataDir))))).toEqual([]);
}, 120_000);

// The same, frozen just after its standing check passed: the newer attempt committed while it
// slept, with no WAL to fetch ahead (an empty wal-prefetch). A rename would have replaced that
// empty folder and then the newer attempt's files, one by one.
test("an attempt frozen after its standing check replaces nothing of the newer attempt's", async () => {
  const dataDir = path.join(root, 'frozen-after-check', 'data');
  let committed = false;
  const newerAttempt = () => {
    if (committed) return;
    committed = true;
    writeFileSync(path.join(dataDir, 'PG_VERSION'), 'the newer attempt\n');
    mkdirSync(prefetchDirOf(dataDir));
  };
  const repositories = openRepositories(config).map((r) => withHookBeforeEnd(r, newerAttempt));
  const activityEnv = new MockActivityEnvironment(
    { attempt: 1, activityId: '1', workflowNamespace: 'default', workflowExecution: { workflowId: 'frozen-after-check', runId: `${RUN_ID}-3` } } as Partial<Info>,
    { client: answering(() => 1) as never },
  );
  const activities = createPitrActivities({ config, repositories, binDir: env.source.binDir });
  const outcome = await activityEnv.run(activities.prepareRecoveryCluster, { workflowId: 'frozen-after-check', baseBackupId, target: { kind: 'lsn' as const, value: stopLsn }, dataDir }).then(
    () => 'prepared',
    (err: any) => `${err.type}: ${err.message}`,
  );
  expect(committed).toBe(true);
  expect(outcome).toMatch(/^AttemptSuperseded: moving the unpacked base backup into .*wal-prefetch is there already, made by a newer attempt/);
  expect(readdirSync(dataDir)).toEqual(['PG_VERSION']);
  expect(readFileSync(path.join(dataDir, 'PG_VERSION'), 'utf8')).toBe('the newer attempt\n');
  expect(readdirSync(prefetchDirOf(dataDir))).toEqual([]);
  expect(existsSync(markerPath(dataDir))).toBe(true);
}, 120_000);

test('an attempt that stands moves the unpacked, configured base backup into place and leaves no folder of its own', async () => {
  const dataDir = path.join(root, 'standing', 'data');
  const client = answering(() => 3);
  const activityEnv = new MockActivityEnvironment(
    { attempt: 3, activityId: '1', workflowNamespace: 'default', workflowExecution: { workflowId: 'standing-unpack', runId: `${RUN_ID}-2` } } as Partial<Info>,
    { client: client as never },
  );
  const activities = createPitrActivities({ config, repositories: openRepositories(config), binDir: env.source.binDir });
  await activityEnv.run(activities.prepareRecoveryCluster, { workflowId: 'standing-unpack', baseBackupId, target: { kind: 'lsn' as const, value: stopLsn }, dataDir });
  const entries = readdirSync(dataDir);
  expect(entries).toEqual(expect.arrayContaining(['PG_VERSION', 'base', 'global', 'recovery.signal', 'postgresql.auto.conf']));
  expect(entries.filter((e) => e.startsWith('.backupctl'))).toEqual([]);
  expect(readFileSync(path.join(dataDir, 'postgresql.auto.conf'), 'utf8')).toContain(`recovery_target_lsn = '${stopLsn}'`);
  expect(existsSync(prefetchDirOf(dataDir))).toBe(true);
  expect(readdirSync(workDirOf(dataDir)).filter((f) => f.includes('.attempt-'))).toEqual([]);
}, 120_000);
