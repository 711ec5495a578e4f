// Point-in-time recovery after a prune, on real components: a PostgreSQL cluster archiving
// through wal-push into the spool, WAL shipped to a NAS folder and SeaweedFS, three real base
// backups (b1, b2, b3) with committed rows between them, on a Temporal dev server (the real
// clock, the one PostgreSQL's commit times are on). Retention keeps a point-in-time window of
// one day; its decision runs a day later, on Temporal's time-skipping server (the clock
// injected, never a sleep), so the window's start falls between b2 and b3. Then:
//   - b1 is gone from every repository, and the WAL before b2's start with it (what the spool
//     let go of, NAS and S3 held first); b2, which the window starts from, and b3 stay;
//   - a recovery to the window's very start (what the policy promises) succeeds, with the rows
//     committed by then;
//   - a time before it, recoverable before the prune, is rejected with the window.
import path from 'node:path';
import { existsSync } from 'node:fs';
import { Client, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import pino from 'pino';
import { projectTool } from '../client/dev/tools.js';
import { loadConfig } from '../common/config.js';
import type { BaseBackupResult, PointInTimeRecoveryResult } from '../common/pitrTypes.js';
import type { ApplyRetentionReport } from '../common/retentionTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { listWalEntries } from '../engine/walArchive.js';
import { segmentOf } from '../engine/walHeader.js';
import { openRepositories } from '../engine/storage/index.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { applyRetention, backupBase, pointInTimeRecovery, shipWal } from '../workflows/index.js';
import { pitrStateQuery, setTargetUpdate, walShippingQuery } from '../workflows/messages.js';
import { startArchivingCluster, until, type ArchivingCluster } from './fixtures/archivingCluster.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

const HOST = 'pg-retained';
const DAY = 86_400_000;
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });

let env: BackupEnv;
let cluster: ArchivingCluster;
let clock: TestWorkflowEnvironment;
let worker: RunningWorker;
let clockWorker: RunningWorker;
let shipping: WorkflowHandle;
const bases: BaseBackupResult[] = [];
const times: Record<string, string> = {};

beforeAll(async () => {
  env = await startBackupEnv({ users: 5, sessionsPerUser: 1, activitiesPerSession: 1 });
  cluster = await startArchivingCluster(env, HOST, {
    retention: { timezone: 'UTC', base: { local: { pitrWindowDays: 1 }, offsite: { pitrWindowDays: 1 } } },
  });
  const config = await loadConfig(cluster.configFile, {});
  worker = await startWorker(config, logger, { bundleInProcess: true, configFile: cluster.configFile });
  clock = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: projectTool('temporal-test-server') } } });
  // The same host, on the clock's server: it runs the retention.
  clockWorker = await startWorker({ ...config, temporal: { ...config.temporal, address: clock.address } }, logger, { bundleInProcess: true, configFile: cluster.configFile });
}, 180_000);

afterAll(async () => {
  await shipping?.terminate().catch(() => undefined);
  await clockWorker?.shutdown().catch(() => undefined);
  await worker?.shutdown().catch(() => undefined);
  await clock?.teardown().catch(() => undefined);
  await cluster?.stop();
  await env?.stop();
});

async function baseBackup(workflowId: string): Promise<void> {
  const result = await env.temporal.client.workflow.execute(backupBase, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue(HOST) }] });
  expect(result.copies.every((c) => c.verified)).toBe(true);
  bases.push(result);
}

function recover(workflowId: string) {
  return env.temporal.client.workflow.start(pointInTimeRecovery, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue(HOST) }] });
}

async function windowOf(handle: WorkflowHandle) {
  await until('the recoverable window', async () => (await handle.query(pitrStateQuery)).window !== null);
  return (await handle.query(pitrStateQuery)).window!;
}

const segments = (names: string[]) => names.filter((s) => /^[0-9A-F]{24}$/.test(s));

test('three base backups a few seconds apart, rows between them, all WAL shipped', async () => {
  shipping = await env.temporal.client.workflow.start(shipWal, { taskQueue: SHARED_TASK_QUEUE, workflowId: `wal-shipping-${HOST}`, args: [{ hostTaskQueue: hostTaskQueue(HOST), intervalSeconds: 1 }] });
  await baseBackup('retained-b1');
  times.one = await cluster.commitRow(1, 'one');
  await cluster.switchWal();
  await baseBackup('retained-b2');
  times.two = await cluster.commitRow(2, 'two');
  await cluster.switchWal();
  await new Promise((r) => setTimeout(r, 1100));
  // The window's start, a day before the retention runs: after b2, before b3.
  times.windowStart = await cluster.databaseNow();
  await new Promise((r) => setTimeout(r, 1100));
  await baseBackup('retained-b3');
  times.three = await cluster.commitRow(3, 'three');
  const last = await cluster.switchWal();
  await until('the last segment in every repository', async () => {
    const state = await shipping.query(walShippingQuery).catch(() => undefined);
    return Boolean(state && ['nas', 's3'].every((r) => (state.repositories[r]?.newestSegment ?? '') >= last && state.repositories[r].behind === 0));
  });
  expect(Date.parse(bases[1].backup.stoppedAt)).toBeLessThan(Date.parse(times.windowStart));
  expect(Date.parse(bases[2].finishedAt)).toBeGreaterThan(Date.parse(times.windowStart));
}, 240_000);

test('before the prune, a time after b1 is inside the recoverable window', async () => {
  const handle = await recover('retained-window-before');
  const window = await windowOf(handle);
  expect(window.baseBackups.map((b) => b.backupId)).toEqual(['retained-b1', 'retained-b2', 'retained-b3']);
  expect(Date.parse(window.earliest!)).toBeLessThan(Date.parse(times.one));
  await handle.terminate('only its window was wanted');
});

describe('a day later, retention with a one-day point-in-time window', () => {
  let report: ApplyRetentionReport;
  let b2Start: string;

  beforeAll(async () => {
    await clock.sleep(Date.parse(times.windowStart) + DAY - (await clock.currentTimeMs()));
    report = await new Client({ connection: clock.connection }).workflow.execute(applyRetention, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId: 'retained-prune',
      args: [{ hostTaskQueue: hostTaskQueue(HOST), dryRun: false }],
    });
    b2Start = segmentOf(bases[1].backup.timeline, bases[1].backup.startLsn);
  }, 180_000);

  test('b1 went from every repository with the WAL before b2\'s start; b2 and b3 stayed', async () => {
    expect(report.repositories.map((r) => [r.repository, r.backups.deleted, r.backups.kept, r.failures])).toEqual([
      ['local', 1, 2, []],
      ['nas', 1, 2, []],
      ['s3', 1, 2, []],
    ]);
    const config = await loadConfig(cluster.configFile, {});
    for (const repository of openRepositories(config)) {
      const folders = new Set((await repository.list('base/')).map((o) => o.key.split('/')[1]));
      expect([repository.name, [...folders].sort()]).toEqual([repository.name, ['retained-b2', 'retained-b3']]);
      const wal = segments(await listWalEntries(repository));
      expect([repository.name, wal[0]]).toEqual([repository.name, b2Start]);
      expect(report.repositories.find((r) => r.repository === repository.name)!.wal).toMatchObject({ keepFrom: b2Start });
      expect(report.repositories.find((r) => r.repository === repository.name)!.wal.deleted).toBeGreaterThan(0);
    }
    expect(existsSync(path.join(cluster.dir, 'local', 'base', 'retained-b1'))).toBe(false);
  });

  describe('recovery after the prune', () => {
    let handle: WorkflowHandle;

    beforeAll(async () => {
      handle = await recover('retained-recovery');
    });

    test('the window starts at b2 now; a time before it, recoverable before the prune, is rejected with the window', async () => {
      const window = await windowOf(handle);
      expect(window.baseBackups.map((b) => b.backupId)).toEqual(['retained-b2', 'retained-b3']);
      const refused = await handle.executeUpdate(setTargetUpdate, { args: [{ kind: 'time', value: times.one }] }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((refused as WorkflowUpdateFailedError).cause?.message)).toMatch(/before the end of the oldest base backup; the recoverable window is .* \.\. /);
      expect((await handle.query(pitrStateQuery)).phase).toBe('waiting-for-target');
    });

    test('a recovery to the start of the promised window succeeds, with the rows committed by then', async () => {
      await handle.executeUpdate(setTargetUpdate, { args: [{ kind: 'time', value: times.windowStart }] });
      const result = (await handle.result()) as PointInTimeRecoveryResult;
      expect(result.baseBackup.backupId).toBe('retained-b2');
      expect(await cluster.usernames(result.cluster.port)).toEqual(['one', 'two']);
    }, 180_000);
  });
});
