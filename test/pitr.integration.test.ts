// Point-in-time recovery on real components: a PostgreSQL cluster archiving through
// `backupctl wal-push` (run by PostgreSQL itself, as the postgres OS user), a base backup,
// WAL shipped to a NAS folder and to S3 (behind a proxy that can be cut), and recoveries to a
// time, an LSN and a restore point, each into a new data directory, checked by its rows.
import { execSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { execa } from 'execa';
import pino from 'pino';
import YAML from 'yaml';
import { openRepositories } from '../engine/storage/index.js';
import { listWalEntries } from '../engine/walArchive.js';
import { loadConfig } from '../common/config.js';
import { projectTool } from '../client/dev/tools.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupBase, pointInTimeRecovery, shipWal } from '../workflows/index.js';
import { pitrStateQuery, setTargetTimeSignal, setTargetUpdate, walShippingQuery } from '../workflows/messages.js';
import type { PointInTimeRecoveryResult, RecoveryTarget } from '../common/pitrTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { startArchivingCluster, until, writeYaml, type ArchivingCluster } from './fixtures/archivingCluster.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { workerProcesses } from './fixtures/workerProcess.js';

const HOST = 'pg';
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });

let env: BackupEnv;
let cluster: ArchivingCluster;
let worker: RunningWorker | undefined;
const workers = workerProcesses();
const times: Record<string, string> = {};
let lsnAfterTwo: string;
let shipping: WorkflowHandle;

beforeAll(async () => {
  env = await startBackupEnv({ users: 20, sessionsPerUser: 1, activitiesPerSession: 1 });
  cluster = await startArchivingCluster(env, HOST);
  worker = await startWorker(await loadWorkerConfig(), logger, { bundleInProcess: true, configFile: cluster.configFile });
});

async function loadWorkerConfig() {
  return loadConfig(cluster.configFile, {});
}

afterAll(async () => {
  workers.killAll();
  await shipping?.terminate().catch(() => undefined);
  await worker?.shutdown().catch(() => undefined);
  await cluster?.stop();
  await env?.stop();
});

const cli = (args: string[]) => cluster.cli(args);
const commitRow = (id: number, name: string) => cluster.commitRow(id, name);
const switchWal = () => cluster.switchWal();
const usernames = (port: number) => cluster.usernames(port);

function recover(workflowId: string, target?: RecoveryTarget) {
  return env.temporal.client.workflow.start(pointInTimeRecovery, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue(HOST), target }] });
}

test('backupctl check: the settings are right and a switched segment reaches the archive', async () => {
  const run = await cli(['check', '--json']);
  const report = JSON.parse(run.stdout);
  expect(report.problems).toEqual([]);
  expect(run.exitCode).toBe(0);
  expect(report.settings).toMatchObject({ wal_level: 'replica', archive_mode: 'on' });
  expect(report.switched).toMatchObject({ arrived: true });
});

test('a base backup, then rows at T1 < T2 < T3 with WAL switches, shipped to NAS and S3', async () => {
  const base = await env.temporal.client.workflow.execute(backupBase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'backup-base-pitr', args: [{ hostTaskQueue: hostTaskQueue(HOST) }] });
  expect(base.copies.every((c) => c.verified)).toBe(true);
  shipping = await env.temporal.client.workflow.start(shipWal, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'wal-shipping-pg', args: [{ hostTaskQueue: hostTaskQueue(HOST), intervalSeconds: 1 }] });

  times.one = await commitRow(1, 'one');
  await switchWal();
  await new Promise((r) => setTimeout(r, 1100));
  times.two = await commitRow(2, 'two');
  lsnAfterTwo = (await cluster.primary.query<{ lsn: string }>('postgres', 'SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0].lsn;
  await cluster.primary.query('postgres', "SELECT pg_create_restore_point('before-three')");
  await switchWal();
  await new Promise((r) => setTimeout(r, 1100));
  times.between = await cluster.databaseNow();
  await new Promise((r) => setTimeout(r, 1100));
  times.three = await commitRow(3, 'three');
  const last = await switchWal();

  await until('the last segment in every repository', async () => {
    const state = await shipping.query(walShippingQuery).catch(() => undefined);
    return Boolean(state && ['nas', 's3'].every((r) => (state.repositories[r]?.newestSegment ?? '') >= last && state.repositories[r].behind === 0));
  });
  const status = JSON.parse((await cli(['status', '--json'])).stdout);
  expect(status.latestBaseBackup).toMatchObject({ backupId: 'backup-base-pitr', foundIn: ['local', 'nas', 's3'] });
  expect(status.walArchive.repositories).toEqual([
    expect.objectContaining({ name: 'nas', behind: 0 }),
    expect.objectContaining({ name: 's3', behind: 0 }),
  ]);
});

describe('recovery to a time sent by signal after the workflow started and waited', () => {
  let handle: WorkflowHandle;
  let result: PointInTimeRecoveryResult;

  beforeAll(async () => {
    handle = await recover('pitr-by-signal');
    await until('the workflow to wait', async () => (await handle.query(pitrStateQuery)).window !== null);
  });

  test('it waits, showing the recoverable window and the base backup', async () => {
    const state = await handle.query(pitrStateQuery);
    expect(state.phase).toBe('waiting-for-target');
    expect(state.window!.baseBackups.map((b) => b.backupId)).toEqual(['backup-base-pitr']);
    expect(Date.parse(state.window!.latest!)).toBeGreaterThan(Date.parse(times.three));
  });

  test('invalid targets are rejected with the window, and it goes on waiting', async () => {
    const rejectedBy = async (time: string) => {
      const before = (await handle.query(pitrStateQuery)).rejected.length;
      await handle.signal(setTargetTimeSignal, time);
      await until('the rejection', async () => (await handle.query(pitrStateQuery)).rejected.length > before);
      return (await handle.query(pitrStateQuery)).rejected.at(-1)!.reason;
    };
    expect(await rejectedBy('2999-01-01T00:00:00Z')).toMatch(/after the newest archived WAL; the recoverable window is/);
    expect(await rejectedBy('2000-01-01T00:00:00Z')).toMatch(/before the end of the oldest base backup/);
    expect(await rejectedBy('yesterday')).toMatch(/not an ISO 8601 time/);
    expect(await rejectedBy(times.between.replace('Z', ''))).toMatch(/explicit zone/);
    // The update answers at once, and changes nothing when it says no.
    await expect(handle.executeUpdate(setTargetUpdate, { args: [{ kind: 'time', value: '2999-01-01T00:00:00Z' }] })).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    expect((await handle.query(pitrStateQuery)).phase).toBe('waiting-for-target');
  });

  test('a valid target (backupctl pitr target) is accepted; rows up to T2 are there, T3 is not', async () => {
    const sent = await cli(['pitr', 'target', 'pitr-by-signal', times.between, '--json']);
    expect(JSON.parse(sent.stdout)).toMatchObject({ accepted: true });
    result = (await handle.result()) as PointInTimeRecoveryResult;
    expect(await usernames(result.cluster.port)).toEqual(['one', 'two']);
    expect(result.baseBackup.backupId).toBe('backup-base-pitr');
    expect(result.timeline).toBe(2);
    expect(Date.parse(result.recoveredTo!)).toBeLessThan(Date.parse(times.three));
    expect(result.cluster.dataDir.startsWith(path.join(cluster.dir, 'work'))).toBe(true);
  });

  test('the live cluster was not touched', async () => {
    const { rows } = await cluster.primary.query('appdb', 'SELECT count(*)::int AS n FROM auth_user');
    expect(rows[0].n).toBe(3);
  });
});

test('cutover only after approval: services stopped, the cutover command told where the cluster runs, services started', async () => {
  const servicesDir = path.join(cluster.dir, 'services');
  mkdirSync(path.join(servicesDir, 'stopped'), { recursive: true });
  writeFileSync(
    path.join(servicesDir, 'systemctl'),
    `#!/bin/bash\nset -e\necho "$1 $2" >> ${servicesDir}/calls\nif [ "$1" = stop ]; then touch ${servicesDir}/stopped/$2; else rm -f ${servicesDir}/stopped/$2; fi\n`,
    { mode: 0o755 },
  );
  writeFileSync(path.join(servicesDir, 'switch'), `#!/bin/bash\necho "switch $BACKUPCTL_RECOVERED_HOST:$BACKUPCTL_RECOVERED_PORT" >> ${servicesDir}/calls\n`, { mode: 0o755 });
  const raw = YAML.parse(readFileSync(cluster.configFile, 'utf8'));
  raw.restore.services = { units: ['web'], stopCommand: [path.join(servicesDir, 'systemctl'), 'stop'], startCommand: [path.join(servicesDir, 'systemctl'), 'start'] };
  raw.pitr.cutoverCommand = [path.join(servicesDir, 'switch')];
  writeYaml(cluster.configFile, raw);
  await worker!.shutdown();
  worker = await startWorker(await loadWorkerConfig(), logger, { bundleInProcess: true, configFile: cluster.configFile });

  const handle = await env.temporal.client.workflow.start(pointInTimeRecovery, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId: 'pitr-cutover',
    args: [{ hostTaskQueue: hostTaskQueue(HOST), target: { kind: 'name', value: 'before-three' }, awaitCutoverApprovalHours: 1 }],
  });
  await until('the approval wait', async () => (await handle.query(pitrStateQuery)).phase === 'awaiting-cutover-approval');
  expect(readdirSync(servicesDir)).not.toContain('calls');
  const approved = await cli(['pitr', 'approve', 'pitr-cutover', '--by', 'sre-on-call', '--json']);
  expect(approved.exitCode).toBe(0);
  const result = (await handle.result()) as PointInTimeRecoveryResult;
  expect(result.cutover).toMatchObject({ requested: true, switched: true, approvedBy: 'sre-on-call' });
  expect(readFileSync(path.join(servicesDir, 'calls'), 'utf8').trim().split('\n')).toEqual(['stop web', `switch 127.0.0.1:${result.cluster.port}`, 'start web']);
  expect(readdirSync(path.join(servicesDir, 'stopped'))).toEqual([]);
});

test.each([
  ['an LSN', () => ({ kind: 'lsn', value: lsnAfterTwo }) as RecoveryTarget],
  ['a restore point', () => ({ kind: 'name', value: 'before-three' }) as RecoveryTarget],
])('recovery to %s given at start', async (name, target) => {
  const handle = await recover(`pitr-by-${name.replace(/\W+/g, '-')}`, target());
  const result = (await handle.result()) as PointInTimeRecoveryResult;
  expect(await usernames(result.cluster.port)).toEqual(['one', 'two']);
});

test('S3 down while archiving: PostgreSQL keeps archiving locally, the lag shows, shipping catches up, nothing lost', async () => {
  await cluster.proxy.cut();
  try {
    for (let i = 10; i < 13; i++) {
      await commitRow(i, `during-outage-${i}`);
      await switchWal();
    }
    const last = await switchWal();
    await until('local archiving during the outage', async () => (await cluster.primary.query<{ w: string }>('postgres', 'SELECT last_archived_wal AS w FROM pg_stat_archiver')).rows[0].w >= last);
    await until('the failure to show', async () => Boolean((await shipping.query(walShippingQuery)).repositories.s3.lastError));
    const state = await shipping.query(walShippingQuery);
    expect(state.repositories.s3.lastError).toMatch(/StorageUnreachable|ECONNREFUSED|connect/i);
    expect(state.repositories.nas.behind).toBe(0);
    const status = JSON.parse((await cli(['status', '--json'])).stdout);
    expect(status.ok).toBe(false);
    expect(status.walArchive.repositories.find((r: { name: string }) => r.name === 's3')).toMatchObject({ error: expect.stringMatching(/ECONNREFUSED|unreachable/i) });
    expect(status.problems).toEqual(expect.arrayContaining([expect.stringMatching(/WAL archive in s3 cannot be read/)]));
  } finally {
    await cluster.proxy.restore();
  }
  await until('shipping to catch up', async () => {
    const state = await shipping.query(walShippingQuery);
    return state.repositories.s3.behind === 0 && !state.repositories.s3.lastError;
  });
  // Continuity: every segment the spool has is in S3, and they form an unbroken sequence.
  const listing = JSON.parse((await cli(['status', '--json'])).stdout).walArchive;
  expect(listing.repositories.find((r: { name: string }) => r.name === 's3')).toMatchObject({ behind: 0 });
  const repositories = openRepositories(await loadWorkerConfig());
  const local = (await listWalEntries(repositories[0])).filter((s) => /^[0-9A-F]{24}$/.test(s));
  const s3 = (await listWalEntries(repositories[2])).filter((s) => /^[0-9A-F]{24}$/.test(s));
  expect(s3).toEqual(local);
  const numbers = local.map((s) => parseInt(s.slice(16), 16));
  expect(numbers).toEqual(numbers.map((_, i) => numbers[0] + i));
});

test('SIGKILL of the worker during WAL replay: a new worker finishes the recovery', async () => {
  await worker!.shutdown();
  worker = undefined;
  // A slow archive (each file PostgreSQL asks the archive for takes over a second), so the
  // kill lands while the cluster replays. A restore point target goes to the archive for
  // what was not fetched ahead (the timeline history it probes for).
  const raw = YAML.parse(readFileSync(cluster.configFile, 'utf8'));
  raw.pitr.restoreCommand = `sleep 1.5; ${raw.pitr.restoreCommand}`;
  writeYaml(cluster.configFile, raw);
  const spawnWorker = () => workers.spawn(cluster.configFile);
  const first = spawnWorker();
  const handle = await recover('pitr-crash', { kind: 'name', value: 'before-three' });
  const deadline = Date.now() + 120_000;
  while ((await handle.query(pitrStateQuery).catch(() => undefined))?.phase !== 'replaying-wal') {
    if (Date.now() > deadline) throw new Error('replay never started');
    await new Promise((r) => setTimeout(r, 20));
  }
  workers.kill(first);
  await first;
  void spawnWorker();
  const result = (await handle.result()) as PointInTimeRecoveryResult;
  expect(await usernames(result.cluster.port)).toEqual(['one', 'two']);
  const history = await handle.fetchHistory();
  const retried = history.events!.filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 0) > 1);
  expect(retried.length).toBeGreaterThanOrEqual(1);
});

test('SIGKILL during a base backup upload, with WAL shipping running: a new worker finishes both, nothing doubled', async () => {
  // Enough data, compressed hard enough, that the upload takes seconds.
  await cluster.primary.query('appdb', 'CREATE TABLE review_manager_searchresult AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS body FROM generate_series(1, 300000) g');
  const slowConfig = path.join(cluster.dir, 'worker-slow.yaml');
  writeYaml(slowConfig, { ...YAML.parse(readFileSync(cluster.configFile, 'utf8')), compression: { level: 19 } });
  workers.killAll();
  const first = workers.spawn(slowConfig);
  const handle = await env.temporal.client.workflow.start(backupBase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'backup-base-crash', args: [{ hostTaskQueue: hostTaskQueue(HOST) }] });
  await until('the upload to get going', async () => {
    const pending = (await handle.describe()).raw.pendingActivities?.find((a) => a.activityType?.name === 'baseBackupToRepositories');
    const payload = pending?.heartbeatDetails?.payloads?.[0];
    return Boolean(payload && (defaultPayloadConverter.fromPayload(payload as never) as { storedBytes?: number }).storedBytes! > 1024 * 1024);
  });
  workers.kill(first);
  await first;
  const last = await switchWal();
  void workers.spawn(cluster.configFile);
  const result = await handle.result();
  expect(result.copies.every((c) => c.verified)).toBe(true);
  for (const repository of openRepositories(await loadWorkerConfig())) {
    // The killed attempt's folder was swept: only what the manifest names is left.
    expect((await repository.list('base/backup-base-crash/')).map((o) => o.key)).toEqual(
      [result.objects[0].key, 'base/backup-base-crash/claim.json', 'base/backup-base-crash/manifest.json'].sort(),
    );
  }
  expect(result.objects[0].key).not.toContain('-a1/');
  expect(execSync(`find ${path.join(cluster.dir, 'local', 'base', 'backup-base-crash')} -name '*.partial'`).toString().trim()).toBe('');
  // The shipping workflow's passes, cut off with the first worker, go on on the second.
  await until('shipping to resume', async () => {
    const state = await shipping.query(walShippingQuery);
    return ['nas', 's3'].every((r) => (state.repositories[r].newestSegment ?? '') >= last && state.repositories[r].behind === 0);
  });
  if (process.env.RECORD_HISTORIES) {
    for (const [id, name] of [['backup-base-pitr', 'backupBase'], ['pitr-by-signal', 'pointInTimeRecovery'], ['wal-shipping-pg', 'shipWal']]) {
      const json = (await execa(projectTool('temporal'), ['workflow', 'show', '--workflow-id', id, '--output', 'json', '--address', env.temporal.address])).stdout;
      writeFileSync(`test/histories/${name}.json`, json);
    }
  }
});
