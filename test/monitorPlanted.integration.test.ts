// Problems planted on a real stack, each told once and resolved once: a Temporal dev server,
// an archiving PostgreSQL cluster (archive_command is backupctl wal-push, run by PostgreSQL),
// a NAS folder, SeaweedFS behind a proxy that can be cut, real backups, and the monitor's real
// channels (aiosmtpd, a json and a slack webhook receiver: test/fixtures/alertReceivers.ts).
// The monitor looks every 2 s and lists failed runs every second, so each problem is seen many
// times over (two or three more looks after each event: a duplicate would show).
// monitor.integration.test.ts proves the rest (no backup, a copy missing, a failed run, SMTP
// down, no secret in any alert); here: our schedules (absent, paused, missed, a scheduled run
// that fails), a stopped archiver, a stale backup, an unreachable S3.
import { readFileSync } from 'node:fs';
import type { WorkflowHandle } from '@temporalio/client';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import pino from 'pino';
import YAML from 'yaml';
import { applySchedules } from '../client/commands/schedules.js';
import { collectStatus } from '../client/commands/status.js';
import { loadConfig, type Config } from '../common/config.js';
import { BASE_SCHEDULE_ID, DATABASE_SCHEDULE_ID, RETENTION_SCHEDULE_ID, VERIFICATION_SCHEDULE_ID } from '../common/schedulePlan.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { openRepositories } from '../engine/storage/index.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupDatabase, monitor } from '../workflows/index.js';
import { startAlertReceivers, startFastMonitor, type AlertReceivers, type MonitorWatch } from './fixtures/alertReceivers.js';
import { startArchivingCluster, writeYaml, type ArchivingCluster } from './fixtures/archivingCluster.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

const HOST = 'planted';
const WEB_UI = 'http://temporal-ui.test:8233/';
/** objectives.maxAgeHours.database: 36 s, so a real backup goes stale while the test runs. */
const STALE_HOURS = 0.01;
const IMPLIED = [DATABASE_SCHEDULE_ID, VERIFICATION_SCHEDULE_ID, BASE_SCHEDULE_ID, RETENTION_SCHEDULE_ID];
const ONCE = { email: 1, ops: 1, slack: 1 };
const HOUR = 3_600_000;

let env: BackupEnv;
let cluster: ArchivingCluster;
let receivers: AlertReceivers;
let watch: MonitorWatch;
let worker: RunningWorker;
let config: Config;
let handle: WorkflowHandle<typeof monitor>;
/** The schedules' hour (UTC): half a day away, so none fires by itself while the test runs. */
const quietHour = (new Date().getUTCHours() + 12) % 24;

beforeAll(async () => {
  env = await startBackupEnv({ users: 2, sessionsPerUser: 1, activitiesPerSession: 1 });
  [cluster, receivers] = await Promise.all([startArchivingCluster(env, HOST), startAlertReceivers()]);
  // The worker's configuration (not PostgreSQL's: wal-push must not need the channels' secrets).
  const raw = YAML.parse(readFileSync(cluster.configFile, 'utf8'));
  raw.temporal.webUiUrl = WEB_UI;
  raw.alerts = receivers.alertsConfig(cluster.dir);
  raw.objectives = { rpoMinutes: 600, maxAgeHours: { database: STALE_HOURS } };
  raw.schedules = Object.fromEntries(['database', 'base', 'verification', 'retention'].map((name) => [name, { cron: `0 ${quietHour} * * *` }]));
  writeYaml(cluster.configFile, raw);
  config = loadConfig(cluster.configFile, {});
  worker = await startWorker(config, pino({ level: process.env.TEST_LOG ? 'info' : 'silent' }), { bundleInProcess: true, configFile: cluster.configFile });
  ({ handle, watch } = await startFastMonitor(env.temporal.client, 'monitor-planted', HOST, receivers));
}, 120_000);

afterAll(async () => {
  await handle?.terminate('test over').catch(() => undefined);
  for (const id of IMPLIED) await env?.temporal.client.schedule.getHandle(id).delete().catch(() => undefined);
  await worker?.shutdown();
  await receivers?.stop();
  await cluster?.stop();
  await env?.stop();
});

const count = (key: string | RegExp, event: string) => receivers.count(key, event);
const everywhere = (key: string | RegExp, event: string) => receivers.everywhere(key, event);
const allEverywhere = async (keys: string[], event: string) => (await Promise.all(keys.map((k) => everywhere(k, event)))).every(Boolean);
const schedule = (id: string) => env.temporal.client.schedule.getHandle(id);

async function backup(workflowId: string) {
  await env.temporal.client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue(HOST) }] });
}

test('our schedules absent: each told once; schedules apply makes them: each resolved once; a scheduled run that fails (verification with nothing to verify): one failed-run alert with its link', async () => {
  const absent = IMPLIED.map((id) => `schedule.absent:${id}`);
  await watch.until('every implied schedule told absent', () => allEverywhere(absent, 'opened'));
  // The drill is not implied here (no drill.host): its absence is no problem.
  expect(await count(/^schedule\.absent:recovery-drill-monthly$/, 'opened')).toEqual({ email: 0, ops: 0, slack: 0 });

  expect((await applySchedules(env.temporal.client, config)).map((s) => s.action)).toEqual(['created', 'created', 'skipped', 'created', 'created']);
  await watch.until('every absence resolved', () => allEverywhere(absent, 'resolved'));

  // No backup exists yet: the verification the schedule starts fails (BackupNotFound).
  await schedule(VERIFICATION_SCHEDULE_ID).trigger();
  const failed = /^run\.failed:verify-backup-weekly-/;
  await watch.until('the failed scheduled run told', () => everywhere(failed, 'failed-run'));
  await watch.moreLooks(3);
  for (const key of absent) {
    expect(await count(key, 'opened')).toEqual(ONCE);
    expect(await count(key, 'resolved')).toEqual(ONCE);
  }
  expect(await count(failed, 'failed-run')).toEqual(ONCE);
  const alert = JSON.parse((await receivers.told()).find((t) => t.channel === 'ops' && failed.test(t.key))!.raw);
  expect(alert.title).toMatch(/^verifyBackup verify-backup-weekly-\S+ failed: BackupNotFound: /);
  expect(alert.link).toMatch(new RegExp(`^http://temporal-ui\\.test:8233/namespaces/default/workflows/verify-backup-weekly-[^/]+/[0-9a-f-]+/history$`));
}, 90_000);

test('a schedule paused by hand and one whose last action is two days old: each told once (note; last and expected times), status says the same; unpaused and run: each resolved once', async () => {
  await schedule(VERIFICATION_SCHEDULE_ID).pause('planted: the verification disk is being swapped');
  // A real action two days back: the server backfills the nightly schedule's run of then (a
  // real backup, taken now, recorded at its scheduled time); it has not acted since.
  const now = Date.now();
  const lastFire = Math.floor((now - quietHour * HOUR) / (24 * HOUR)) * 24 * HOUR + quietHour * HOUR;
  const twoDaysBack = lastFire - 2 * 24 * HOUR;
  await schedule(DATABASE_SCHEDULE_ID).backfill({ start: new Date(twoDaysBack - 30_000), end: new Date(twoDaysBack + 30_000), overlap: ScheduleOverlapPolicy.ALLOW_ALL });
  const paused = `schedule.paused:${VERIFICATION_SCHEDULE_ID}`;
  const missed = `schedule.missed:${DATABASE_SCHEDULE_ID}`;
  await watch.until('paused and missed told', async () => (await everywhere(paused, 'opened')) && (await everywhere(missed, 'opened')), 60_000);
  const open = (await watch.state()).open;
  expect(open[paused].message).toContain('planted: the verification disk is being swapped');
  expect(open[missed].message).toContain(`its last action was scheduled at ${new Date(twoDaysBack).toISOString()}`);
  expect(open[missed].message).toContain(`expected by ${new Date(twoDaysBack + 24 * HOUR).toISOString()}`);
  // backupctl status judges them the same way.
  const status = await collectStatus(env.temporal.client, undefined, config, openRepositories(config));
  const keyed = status.keyedProblems.filter((p) => p.key.startsWith('schedule.'));
  expect(keyed.map((p) => p.key).sort()).toEqual([missed, paused]);
  expect(keyed.find((p) => p.key === paused)!.message).toBe(open[paused].message);
  await watch.moreLooks(2);
  expect(await count(paused, 'opened')).toEqual(ONCE);
  expect(await count(missed, 'opened')).toEqual(ONCE);

  // The backfilled backup done first: the nightly one skips a run while one of its runs goes.
  const [backfilled] = (await schedule(DATABASE_SCHEDULE_ID).describe()).info.recentActions;
  await env.temporal.client.workflow.getHandle(backfilled.action.workflow.workflowId).result();
  await schedule(VERIFICATION_SCHEDULE_ID).unpause('planted: swapped');
  await schedule(DATABASE_SCHEDULE_ID).trigger();
  await watch.until('paused and missed resolved', async () => (await everywhere(paused, 'resolved')) && (await everywhere(missed, 'resolved')), 60_000);
  await watch.moreLooks(3);
  for (const key of [paused, missed]) {
    expect(await count(key, 'opened')).toEqual(ONCE);
    expect(await count(key, 'resolved')).toEqual(ONCE);
  }
}, 90_000);

test('a stopped archiver: archive_command fails (set to false), WAL switched: wal.archiving-failing told once; set back: resolved once', async () => {
  const key = 'wal.archiving-failing';
  const { rows } = await cluster.primary.query<{ archive_command: string }>('postgres', 'SHOW archive_command');
  const archiveCommand = rows[0].archive_command;
  await cluster.primary.query('postgres', "ALTER SYSTEM SET archive_command = 'false'");
  await cluster.primary.query('postgres', 'SELECT pg_reload_conf()');
  await cluster.commitRow(1, 'archived-never');
  await cluster.switchWal();
  await watch.until('archiving failing told', () => everywhere(key, 'opened'), 60_000);
  expect((await watch.state()).open[key].message).toMatch(/^archive_command is failing: [0-9A-F]{24} failed at /);
  await watch.moreLooks(2);
  expect(await count(key, 'opened')).toEqual(ONCE);

  await cluster.primary.query('postgres', `ALTER SYSTEM SET archive_command = '${archiveCommand.replace(/'/g, "''")}'`);
  await cluster.primary.query('postgres', 'SELECT pg_reload_conf()');
  await cluster.switchWal();
  await watch.until('archiving failing resolved', () => everywhere(key, 'resolved'), 60_000);
  await watch.moreLooks(3);
  expect(await count(key, 'opened')).toEqual(ONCE);
  expect(await count(key, 'resolved')).toEqual(ONCE);
}, 90_000);

test('S3 unreachable (its proxy cut): repository.unreadable:s3 told once, the monitor keeps looking and says so; back: resolved once, as is all the outage opened', async () => {
  const key = 'repository.unreadable:s3';
  const before = new Set((await receivers.told()).map((t) => `${t.event} ${t.key}`));
  await cluster.proxy.cut();
  await watch.until('S3 unreadable told', () => everywhere(key, 'opened'), 60_000);
  const looks = (await watch.state()).looks;
  await watch.moreLooks(3, 60_000);
  const down = await watch.state();
  // Still looking, every look made (not blind), the outage in what it says.
  expect(down.looks).toBeGreaterThanOrEqual(looks + 3);
  expect(down.lastLookError).toBeUndefined();
  expect(down.open['monitor.blind']).toBeUndefined();
  expect(down.open[key].message).toMatch(/^repository s3 cannot be read: /);
  expect(await count(key, 'opened')).toEqual(ONCE);

  await cluster.proxy.restore();
  await watch.until('S3 unreadable resolved', () => everywhere(key, 'resolved'), 60_000);
  await watch.moreLooks(3);
  // Whatever the outage opened (the newest copy missing from s3 with it) is told once and
  // resolved once; the stale backup, which time alone brings back, is left out.
  const opened = [...new Set((await receivers.told()).filter((t) => t.event === 'opened' && !before.has(`opened ${t.key}`) && t.key !== 'database.stale').map((t) => t.key))];
  expect(opened).toContain(key);
  for (const k of opened) {
    expect([k, await count(k, 'opened')]).toEqual([k, ONCE]);
    expect([k, await count(k, 'resolved')]).toEqual([k, ONCE]);
  }
}, 120_000);

test('a stale backup: the newest real backup passes objectives.maxAgeHours.database: database.stale told once; a fresh backup resolves it once', async () => {
  const key = 'database.stale';
  // The newest real backup (the nightly schedule's, in the second test) has aged through the tests since.
  await watch.until('stale told', () => everywhere(key, 'opened'), STALE_HOURS * HOUR + 30_000);
  expect((await watch.state()).open[key].message).toMatch(/^the newest database backup is [\d.]+ hours old \(at most 0\.01 expected\)$/);
  await watch.moreLooks(2);
  expect(await count(key, 'opened')).toEqual(ONCE);

  await backup('planted-backup-fresh');
  await watch.until('stale resolved', () => everywhere(key, 'resolved'));
  // Within the 36 s the fresh backup stays fresh: nothing more of it.
  await watch.moreLooks(3);
  expect(await count(key, 'opened')).toEqual(ONCE);
  expect(await count(key, 'resolved')).toEqual(ONCE);
}, 90_000);

test('no reminder within alerts.reminderMinutes (60): every problem was told when it opened, and not again', async () => {
  const told = await receivers.told();
  expect(told.filter((t) => t.event === 'reminder')).toEqual([]);
  expect(told.length).toBeGreaterThanOrEqual(30);
});
