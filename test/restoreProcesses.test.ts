// The way back with real worker processes (`backupctl worker`): each workflow's worker is
// killed with SIGKILL while pg_restore runs, and a new worker finishes the run. Also the CLI's
// contract for restore, verify and drill (one JSON object, exit codes).
import { mkdirSync, readdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import YAML from 'yaml';
import { backupDatabase, recoveryDrill, restoreDatabase, verifyBackup } from '../workflows/index.js';
import type { DrillReport, RestoreDatabaseResult, VerificationReport } from '../common/restoreTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { SOURCE_DB, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { tableChecksums, type PgCluster } from './fixtures/postgres.js';
import { workerProcesses } from './fixtures/workerProcess.js';

const CLI = path.resolve('bin/backupctl.js');
let env: BackupEnv;
let servicesDir: string;
let dbConfigFile: string;
let drillConfigFile: string;
let sourceSums: Record<string, string>;
const workers = workerProcesses();

beforeAll(async () => {
  env = await startBackupEnv({ users: 500, sessionsPerUser: 4, activitiesPerSession: 10 }, async (db) => {
    // Enough rows and indexes that pg_restore runs for seconds, long enough to be killed in.
    await db.query(`CREATE TABLE review_manager_searchresult AS
                    SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b, md5((g * 13)::text) AS c
                    FROM generate_series(1, 400000) g`);
    await db.query('CREATE INDEX ON review_manager_searchresult (a); CREATE INDEX ON review_manager_searchresult (b); CREATE INDEX ON review_manager_searchresult (c)');
    await db.query('ALTER TABLE review_manager_searchresult OWNER TO thesis_grey_user');
  });
  servicesDir = path.join(env.dir, 'services');
  mkdirSync(path.join(servicesDir, 'stopped'), { recursive: true });
  writeFileSync(
    path.join(servicesDir, 'systemctl'),
    `#!/bin/bash\nset -e\necho "$1 $2" >> ${servicesDir}/calls\nif [ "$1" = stop ]; then touch ${servicesDir}/stopped/$2; else rm -f ${servicesDir}/stopped/$2; fi\n`,
  );
  chmodSync(path.join(servicesDir, 'systemctl'), 0o755);
  const restoring = (raw: any, cluster: PgCluster) => {
    raw.encryption.privateKeyHome = env.keys.privateHome;
    raw.restore = {
      serverUrl: cluster.url('postgres'),
      workDir: path.join(env.dir, 'work'),
      services: { units: ['thesis-grey', 'thesis-grey-celery', 'thesis-grey-celery-beat'], stopCommand: [path.join(servicesDir, 'systemctl'), 'stop'], startCommand: [path.join(servicesDir, 'systemctl'), 'start'] },
    };
    mkdirSync(raw.restore.workDir, { recursive: true });
  };
  dbConfigFile = writeConfig('db', (raw) => {
    restoring(raw, env.source);
    raw.drill = { host: 'drill' };
  });
  drillConfigFile = writeConfig('drill', (raw) => {
    restoring(raw, env.fresh);
    raw.repositories = { s3: { ...raw.repositories.s3, prefix: 'db' } };
  });
  const worker = spawnWorker(dbConfigFile);
  await env.temporal.client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'backup-for-crash', args: [{ hostTaskQueue: hostTaskQueue('db') }] });
  killGroup(worker);
  sourceSums = await tableChecksums(env.source, SOURCE_DB);
});

afterAll(async () => {
  workers.killAll();
  await env?.stop();
});

function writeConfig(host: string, patch: (raw: any) => void): string {
  const file = path.join(env.dir, `${host}.yaml`);
  writeFileSync(file, YAML.stringify(env.config(host, patch)));
  return file;
}

const spawnWorker = (configFile: string) => workers.spawn(configFile);
const killGroup = (worker: ResultPromise) => workers.kill(worker);

async function pgRestoreRunning(cluster: PgCluster): Promise<boolean> {
  // The restore's sessions carry its attempt's tag (backupctl-<digest>), not the tool's name.
  const { rows } = await cluster.query('postgres', "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'backupctl-%' AND backend_type = 'client backend' AND query NOT LIKE '%pg_stat_activity%' AND datname NOT IN ('postgres')");
  return rows.length > 0;
}

async function databases(cluster: PgCluster): Promise<string[]> {
  return (await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1')).rows.map((r) => r.datname);
}

/** Starts the run with a worker, kills that worker once pg_restore is at work, starts another. */
async function crashDuringPgRestore<T>(configFile: string, cluster: PgCluster, start: () => Promise<WorkflowHandle>, whileDown?: () => Promise<void>) {
  const first = spawnWorker(configFile);
  const handle = await start();
  const deadline = Date.now() + 120_000;
  while (!(await pgRestoreRunning(cluster))) {
    if (Date.now() > deadline) throw new Error('pg_restore never started');
    await new Promise((r) => setTimeout(r, 50));
  }
  killGroup(first);
  await first;
  await whileDown?.();
  const second = spawnWorker(configFile);
  try {
    const result = (await handle.result()) as T;
    const attempts = (await handle.fetchHistory()).events!.filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 0) > 1);
    return { result, retried: attempts.length };
  } finally {
    killGroup(second);
    await second;
  }
}

test('restore --replace: SIGKILL during pg_restore; live untouched until the swap, a new worker finishes, services running', async () => {
  const { result, retried } = await crashDuringPgRestore<RestoreDatabaseResult>(
    dbConfigFile,
    env.source,
    () =>
      env.temporal.client.workflow.start(restoreDatabase, {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId: 'restore-crash',
        args: [{ hostTaskQueue: hostTaskQueue('db'), backup: 'latest', replace: true }],
      }),
    async () => {
      // The worker is dead mid-restore: the live database is as it was, the services were never stopped.
      expect(await tableChecksums(env.source, SOURCE_DB)).toEqual(sourceSums);
      expect(readdirSync(path.join(servicesDir, 'stopped'))).toEqual([]);
    },
  );
  expect(retried).toBeGreaterThanOrEqual(1);
  expect(result.swap!.live).toBe(SOURCE_DB);
  expect(await tableChecksums(env.source, SOURCE_DB)).toEqual(sourceSums);
  expect(readdirSync(path.join(servicesDir, 'stopped'))).toEqual([]);
  expect(readFileSync(path.join(servicesDir, 'calls'), 'utf8')).toContain('start thesis-grey\n');
  const left = (await databases(env.source)).filter((d) => d !== SOURCE_DB && d !== 'postgres');
  expect(left).toEqual([result.swap!.keptAs]);
  expect(readdirSync(path.join(env.dir, 'work'))).toEqual([]);
});

test('verify: SIGKILL during pg_restore; a new worker finishes and no scratch database is left', async () => {
  const { result, retried } = await crashDuringPgRestore<VerificationReport>(dbConfigFile, env.source, () =>
    env.temporal.client.workflow.start(verifyBackup, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'verify-crash', args: [{ hostTaskQueue: hostTaskQueue('db'), backup: 'latest' }] }),
  );
  expect(retried).toBeGreaterThanOrEqual(1);
  expect(result).toMatchObject({ ok: true, scratchDropped: true });
  expect((await databases(env.source)).filter((d) => d.startsWith('backupctl_'))).toEqual([]);
});

test('drill: SIGKILL of the drill host worker during pg_restore; a new one finishes and tears down', async () => {
  const { result, retried } = await crashDuringPgRestore<DrillReport>(drillConfigFile, env.fresh, () =>
    env.temporal.client.workflow.start(recoveryDrill, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId: 'drill-crash',
      args: [{ hostTaskQueue: hostTaskQueue('drill'), repository: 's3', backup: 'latest' }],
    }),
  );
  expect(retried).toBeGreaterThanOrEqual(1);
  expect(result).toMatchObject({ ok: true, torndown: true });
  expect((await databases(env.fresh)).filter((d) => d.startsWith('backupctl_'))).toEqual([]);
});

describe('CLI contract', () => {
  let dbWorker: ResultPromise;
  let drillWorker: ResultPromise;
  beforeAll(() => {
    dbWorker = spawnWorker(dbConfigFile);
    drillWorker = spawnWorker(drillConfigFile);
  });
  afterAll(() => {
    killGroup(dbWorker);
    killGroup(drillWorker);
  });

  const cli = (args: string[]) => execa('node', [CLI, '--config', dbConfigFile, ...args], { reject: false });

  test('verify latest --wait --json: one JSON report, exit 0; backups list shows it', async () => {
    const run = await cli(['verify', 'latest', '--wait', '--json', '--workflow-id', 'verify-cli']);
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ kind: 'verification', ok: true, scratchDropped: true });
    const list = JSON.parse((await cli(['backups', 'list', '--json'])).stdout);
    expect(list.backups[0].lastVerification).toMatchObject({ ok: true });
    const status = JSON.parse((await cli(['status', '--json'])).stdout);
    expect(status.latestVerification).toMatchObject({ ok: true, backupId: 'backup-for-crash' });
  });

  test('restore database of an unknown id: exit 1 and a JSON error naming it', async () => {
    const run = await cli(['restore', 'database', 'no-such-backup', '--wait', '--json']);
    expect(run.exitCode).toBe(1);
    expect(JSON.parse(run.stdout)).toEqual({ ok: false, error: { type: 'BackupNotFound', message: expect.stringContaining('no-such-backup') } });
  });

  test('restore database --into, without --wait: started, then the result names the copy used', async () => {
    const run = await cli(['restore', 'database', 'latest', '--into', 'restored_by_cli', '--json', '--workflow-id', 'restore-cli']);
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ workflowId: 'restore-cli', status: 'started' });
    const result = (await env.temporal.client.workflow.getHandle('restore-cli').result()) as RestoreDatabaseResult;
    expect(result.restored).toMatchObject({ database: 'restored_by_cli', copy: { repository: 'local' }, skipped: [] });
    expect(await tableChecksums(env.source, 'restored_by_cli')).toEqual(sourceSums);
  });

  test('schedules apply: the weekly verification and, with drill.host set, the monthly drill on the drill host', async () => {
    const run = await cli(['schedules', 'apply', '--json']);
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout).schedules.map((s: { scheduleId: string; action: string }) => `${s.scheduleId}:${s.action}`)).toEqual([
      'backup-database-nightly:created',
      'verify-backup-weekly:created',
      'recovery-drill-monthly:created',
      'backup-base-weekly:skipped',
      'apply-retention-daily:created',
    ]);
    // The fixture names a spool, so shipping was started: not wanted by the drill tests that follow.
    expect(JSON.parse(run.stdout).walShipping).toMatchObject({ action: 'started' });
    await env.temporal.client.workflow.getHandle(JSON.parse(run.stdout).walShipping.workflowId).terminate('test: not wanted here');
    // And the monitor, which always runs: not wanted here either.
    expect(JSON.parse(run.stdout).monitor).toMatchObject({ action: 'started' });
    await env.temporal.client.workflow.getHandle(JSON.parse(run.stdout).monitor.workflowId).terminate('test: not wanted here');
    const drill = await env.temporal.client.schedule.getHandle('recovery-drill-monthly').describe();
    expect(drill.action).toMatchObject({ workflowType: 'recoveryDrill', args: [{ hostTaskQueue: 'backup@drill', repository: 's3', backup: 'latest' }] });
    expect(drill.info.nextActionTimes[0].getUTCDate()).toBe(1);
    for (const id of ['backup-database-nightly', 'verify-backup-weekly', 'recovery-drill-monthly', 'apply-retention-daily']) await env.temporal.client.schedule.getHandle(id).delete();
  });

  test('drill --wait --json on the drill host: a passing report with RTO and RPO', async () => {
    const run = await cli(['drill', '--wait', '--json', '--workflow-id', 'drill-cli']);
    expect(run.exitCode).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ kind: 'drill', ok: true, repository: 's3', host: 'backup@drill', torndown: true });
    expect(report.rtoSeconds).toBeGreaterThan(0);
  });
});
