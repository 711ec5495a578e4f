// The way back on real components: restore, verification and drill workflows against a
// Temporal dev server, PostgreSQL clusters, SeaweedFS S3 and gpg. Two workers on two task
// queues (the database host and a drill host whose server has never seen the app's roles).
import { execSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError, type Workflow } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import pino from 'pino';
import { readCatalog } from '../client/commands/listBackups.js';
import { collectStatus } from '../client/commands/status.js';
import { loadVerifier } from '../engine/manifestSignature.js';
import { ensureKeyPair } from '../client/dev/demoKeys.js';
import { projectTool } from '../client/dev/tools.js';
import { stopAgent } from '../engine/encryption.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Config } from '../common/config.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupDatabase, recoveryDrill, restoreDatabase, verifyBackup } from '../workflows/index.js';
import type { DrillReport, RestoreDatabaseInput, VerificationReport } from '../common/restoreTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type DatabaseBackupResult } from '../common/types.js';
import { APP_PASSWORD, APP_USER, BUCKET, SOURCE_DB, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { tableChecksums } from './fixtures/postgres.js';

let env: BackupEnv;
let dbConfig: Config;
let drillConfig: Config;
let backup: DatabaseBackupResult;
let sourceSums: Record<string, string>;
const running: RunningWorker[] = [];
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });
let servicesDir: string;

/** A stand-in for systemctl: records each call and which units are stopped. */
function fakeSystemctl(dir: string): string {
  mkdirSync(path.join(dir, 'stopped'), { recursive: true });
  const file = path.join(dir, 'systemctl');
  writeFileSync(
    file,
    `#!/bin/bash\nset -e\necho "$1 $2" >> ${dir}/calls\nif [ "$1" = stop ]; then touch ${dir}/stopped/$2; else rm -f ${dir}/stopped/$2; fi\n`,
  );
  chmodSync(file, 0o755);
  return file;
}

function restoringHost(raw: any, serverUrl: string) {
  raw.encryption.privateKeyHome = env.keys.privateHome;
  raw.restore = {
    serverUrl,
    jobs: 2,
    checks: [{ name: 'users exist', sql: 'SELECT count(*) > 0 FROM auth_user' }],
    freshness: [{ name: 'newest search session', sql: 'SELECT max(created_at) FROM review_manager_searchsession' }],
    services: { units: ['thesis-grey', 'thesis-grey-celery', 'thesis-grey-celery-beat'], stopCommand: [path.join(servicesDir, 'systemctl'), 'stop'], startCommand: [path.join(servicesDir, 'systemctl'), 'start'] },
  };
}

beforeAll(async () => {
  env = await startBackupEnv({ users: 300, sessionsPerUser: 4, activitiesPerSession: 5 });
  servicesDir = path.join(env.dir, 'services');
  fakeSystemctl(servicesDir);
  dbConfig = env.config('db', (raw) => restoringHost(raw, env.source.url('postgres')));
  // The drill host: its own worker, only the offsite repository (the database host's prefix),
  // and a server that has never seen the application's roles.
  drillConfig = env.config('drill', (raw) => {
    restoringHost(raw, env.fresh.url('postgres'));
    raw.repositories = { s3: { ...raw.repositories.s3, prefix: 'db' } };
  });
  running.push(await startWorker(dbConfig, logger, { bundleInProcess: true }));
  running.push(await startWorker(drillConfig, logger, { bundleInProcess: true }));
  backup = await env.temporal.client.workflow.execute(backupDatabase, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId: 'backup-for-restore',
    args: [{ hostTaskQueue: hostTaskQueue('db') }],
  });
  sourceSums = await tableChecksums(env.source, SOURCE_DB);
});

afterAll(async () => {
  await Promise.all(running.map((w) => w.shutdown().catch(() => undefined)));
  await env?.stop();
});

async function outcome<W extends Workflow>(workflow: W, workflowId: string, input: Parameters<W>[0]) {
  const handle = await env.temporal.client.workflow.start(workflow, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [input] } as any);
  try {
    return { result: (await handle.result()) as Awaited<ReturnType<W>>, handle };
  } catch (err) {
    return { failure: (err as WorkflowFailedError).cause as ApplicationFailure, handle };
  }
}

function restore(workflowId: string, input: Partial<RestoreDatabaseInput>) {
  return outcome(restoreDatabase, workflowId, { hostTaskQueue: hostTaskQueue('db'), backup: 'latest', ...input });
}

async function databases(cluster: typeof env.source): Promise<string[]> {
  return (await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1')).rows.map((r) => r.datname);
}

/** The task queue of every activity the workflow scheduled, by activity type. */
async function activityQueues(handle: { fetchHistory(): Promise<any> }): Promise<Record<string, string[]>> {
  const queues: Record<string, string[]> = {};
  for (const event of (await handle.fetchHistory()).events ?? []) {
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (!scheduled) continue;
    (queues[scheduled.activityType.name] ??= []).push(scheduled.taskQueue.name);
  }
  return queues;
}

describe('on a server without the application roles (the drill host)', () => {
  let run: Awaited<ReturnType<typeof restore>>;

  beforeAll(async () => {
    run = await outcome(restoreDatabase, 'restore-onto-fresh', { hostTaskQueue: hostTaskQueue('drill'), backup: 'latest', into: 'restored_fresh' });
    if (!run.result) throw run.failure;
  });

  test('the data is identical: ordered-row checksums, sequences, large objects, non-ASCII text', async () => {
    expect(await tableChecksums(env.fresh, 'restored_fresh')).toEqual(sourceSums);
    const names = await env.fresh.query<{ first_name: string }>('restored_fresh', "SELECT first_name FROM auth_user WHERE first_name = '論文' LIMIT 1");
    expect(names.rows.length).toBe(1);
  });

  test('roles were created from the backup globals first, and it says so; owners and grants are intact', async () => {
    expect(run.result!.restored.createdRoles.sort()).toEqual([APP_USER, 'thesis_grey_readonly'].sort());
    const owners = await env.fresh.query('restored_fresh', "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'");
    expect(owners.rows).toEqual([{ tableowner: APP_USER }]);
    const owner = await env.fresh.query('postgres', "SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'restored_fresh'");
    expect(owner.rows[0].owner).toBe(APP_USER);
    const grants = await env.fresh.query(
      'restored_fresh',
      "SELECT count(*)::int AS n FROM information_schema.role_table_grants WHERE grantee = 'thesis_grey_readonly' AND privilege_type = 'SELECT'",
    );
    expect(grants.rows[0].n).toBe(4);
  });

  test('it used the only repository the drill host has, verified counts and checks, and left the live database alone', () => {
    const result = run.result!;
    expect(result.restored.copy).toEqual({ repository: 's3', key: backup.objects.find((o) => o.role === 'dump')!.key });
    expect(result.inspection.rowCounts).toEqual(backup.rowCounts);
    expect(result.inspection.checks).toEqual([{ name: 'users exist', ok: true, detail: 'true' }]);
    expect(result.swap).toBeUndefined();
    expect(result.source).toMatchObject({ kind: 'backup', backupId: backup.backupId });
  });

  test('every activity ran on the drill host queue, the backup on the database host queue', async () => {
    const restoreQueues = await activityQueues(run.handle);
    expect(Object.keys(restoreQueues).sort()).toEqual(['inspectRestoredDatabase', 'resolveRestoreSource', 'restoreIntoNewDatabase']);
    expect(new Set(Object.values(restoreQueues).flat())).toEqual(new Set(['backup@drill']));
    const backupQueues = await activityQueues(env.temporal.client.workflow.getHandle('backup-for-restore'));
    expect(new Set(Object.values(backupQueues).flat())).toEqual(new Set(['backup@db']));
  });
});

test('the recovery drill restores the offsite copy on the drill host, measures RTO and RPO, reports and tears down', async () => {
  const { result, handle, failure } = await outcome(recoveryDrill, 'recovery-drill-test', {
    hostTaskQueue: hostTaskQueue('drill'),
    repository: 's3',
    backup: 'latest',
  });
  expect(failure).toBeUndefined();
  const report = result as DrillReport;
  expect(report).toMatchObject({ ok: true, backupId: backup.backupId, repository: 's3', torndown: true, application: { requested: 'none', restored: false } });
  expect(report.restored!.copy).toMatchObject({ repository: 's3' });
  expect(report.rtoSeconds).toBeGreaterThan(0);
  expect(report.rtoSeconds).toBeLessThan((Date.parse(report.finishedAt) - Date.parse(report.startedAt)) / 1000 + 0.001);
  expect(report.rpoSeconds).toBeGreaterThan(0);
  expect(report.inspection!.rowCounts).toEqual(backup.rowCounts);
  expect((await databases(env.fresh)).filter((d) => d.startsWith('backupctl_'))).toEqual([]);
  const stored = await openRepositories(drillConfig)[0].list('drills/');
  expect(stored.map((o) => o.key)).toEqual([`drills/${report.reportId}.json`]);
  expect(new Set(Object.values(await activityQueues(handle)).flat())).toEqual(new Set(['backup@drill']));
  // status measures the RTO from this report, against the objective.
  const status = await collectStatus(undefined, 'not asked here', drillConfig, openRepositories(drillConfig));
  expect(status.objectives.rto).toMatchObject({ measuredMinutes: Math.round((report.rtoSeconds! / 60) * 10) / 10, objectiveMinutes: 240, met: true, drill: { reportId: report.reportId, ok: true } });
});

test('weekly verification: counts as recorded, amcheck, freshness; scratch dropped; report beside the backup', async () => {
  const { result, failure } = await outcome(verifyBackup, 'verify-backup-test', { hostTaskQueue: hostTaskQueue('db'), backup: backup.backupId });
  expect(failure).toBeUndefined();
  const report = result as VerificationReport;
  expect(report).toMatchObject({ ok: true, backupId: backup.backupId, scratchDropped: true });
  expect(report.inspection!.rowCounts).toEqual(backup.rowCounts);
  expect(report.inspection!.amcheck).toMatchObject({ name: 'pg_amcheck', ok: true });
  expect(report.inspection!.freshness['newest search session']).toMatch(/^\d{4}-\d\d-\d\dT/);
  expect((await databases(env.source)).filter((d) => d.startsWith('backupctl_'))).toEqual([]);
  const { entries } = await readCatalog(openRepositories(dbConfig), await loadVerifier(dbConfig));
  expect(entries.find((e) => e.backupId === backup.backupId)!.lastVerification).toMatchObject({ reportId: report.reportId, ok: true });
});

describe('corrupt copies', () => {
  const dumpKey = () => backup.objects.find((o) => o.role === 'dump')!.key;
  const localFile = () => path.join(env.dir, 'db', 'local', dumpKey());
  const nasFile = () => path.join(env.dir, 'db', 'nas', dumpKey());

  function flipMiddleByte(file: string): Buffer {
    const original = readFileSync(file);
    const damaged = Buffer.from(original);
    damaged[damaged.length >> 1] ^= 0xff;
    writeFileSync(file, damaged);
    return original;
  }

  test('a flipped byte in the local copy: the NAS copy is used and the local one reported', async () => {
    const original = flipMiddleByte(localFile());
    try {
      const { result, failure } = await restore('restore-after-local-corruption', { into: 'restored_from_nas' });
      expect(failure).toBeUndefined();
      expect(result!.restored.copy).toMatchObject({ repository: 'nas' });
      expect(result!.restored.skipped).toEqual([
        expect.objectContaining({ repository: 'local', errorType: 'ChecksumMismatch', reason: expect.stringContaining('sha256') }),
      ]);
      expect(await tableChecksums(env.source, 'restored_from_nas')).toEqual(sourceSums);
    } finally {
      writeFileSync(localFile(), original);
      await env.source.query('postgres', 'DROP DATABASE IF EXISTS restored_from_nas');
    }
  });

  test('every copy corrupt: NoUsableCopy naming each, the live database untouched, nothing left behind', async () => {
    const originals = [flipMiddleByte(localFile()), flipMiddleByte(nasFile())];
    const damagedS3 = Buffer.from(originals[0]);
    damagedS3[10] ^= 0xff;
    const s3Key = `db/${dumpKey()}`;
    await env.s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: s3Key, Body: damagedS3 }));
    const before = await databases(env.source);
    try {
      const { failure } = await restore('restore-all-corrupt', { replace: true });
      expect(failure!.type).toBe('NoUsableCopy');
      for (const name of ['local', 'nas', 's3']) expect(failure!.message).toContain(`${name}:`);
      expect(await databases(env.source)).toEqual(before);
      expect(await tableChecksums(env.source, SOURCE_DB)).toEqual(sourceSums);
      expect(readdirSync(path.join(servicesDir, 'stopped'))).toEqual([]);
    } finally {
      writeFileSync(localFile(), originals[0]);
      writeFileSync(nasFile(), originals[1]);
      await env.s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: s3Key, Body: originals[0] }));
    }
  });
});

// Files carry no signed manifest: restored only when unsigned sources are allowed (--allow-unsigned).
describe('files made by the old scripts', () => {
  test('a pg_dump custom-format .backup file restores with its counts', async () => {
    const file = path.join(env.dir, 'full_backup_20261120.backup');
    await execa(path.join(env.source.binDir, 'pg_dump'), ['-Fc', `--file=${file}`], { env: env.source.env(SOURCE_DB) });
    const { result, failure } = await restore('restore-seed-backup-file', { backup: file, into: 'restored_seed_custom', allowUnsigned: true });
    expect(failure).toBeUndefined();
    expect(result!.restored.copy).toEqual({ path: file });
    expect(await tableChecksums(env.source, 'restored_seed_custom')).toEqual(sourceSums);
  });

  test('a .sql.gz file restores through psql', async () => {
    const file = path.join(env.dir, 'full_backup_20261120.sql.gz');
    execSync(`${env.source.binDir}/pg_dump ${SOURCE_DB} | gzip > ${file}`, { env: { ...process.env, ...env.source.env(SOURCE_DB) } });
    const { result, failure } = await restore('restore-seed-sql-gz', { backup: file, into: 'restored_seed_sqlgz', allowUnsigned: true });
    expect(failure).toBeUndefined();
    expect(await tableChecksums(env.source, 'restored_seed_sqlgz')).toEqual(sourceSums);
    expect(result!.inspection.checks[0]).toMatchObject({ ok: true });
  });
});

describe('bad input: a clear non-retryable error, nothing lost, nothing left', () => {
  let before: string[];
  beforeAll(async () => {
    before = await databases(env.source);
  });
  afterEach(async () => {
    expect(await databases(env.source)).toEqual(before);
    expect(await tableChecksums(env.source, SOURCE_DB)).toEqual(sourceSums);
  });

  async function failureWith(name: string, input: Partial<RestoreDatabaseInput>, patch?: (raw: any) => void) {
    if (!patch) return (await restore(`restore-bad-${name}`, input)).failure;
    const host = `bad-${name}`;
    const worker = await startWorker(
      env.config(host, (raw) => {
        restoringHost(raw, env.source.url('postgres'));
        raw.repositories = { nas: { type: 'filesystem', path: path.join(env.dir, 'db', 'nas') } };
        patch(raw);
      }),
      logger,
      { bundleInProcess: true },
    );
    try {
      return (await outcome(restoreDatabase, `restore-bad-${name}`, { hostTaskQueue: hostTaskQueue(host), backup: 'latest', ...input })).failure;
    } finally {
      await worker.shutdown();
    }
  }

  test('unknown backup id', async () => {
    const failure = await failureWith('unknown-id', { backup: 'backup-that-never-was' });
    expect(failure).toMatchObject({ type: 'BackupNotFound', nonRetryable: true });
    expect(failure!.message).toContain('backup-that-never-was');
  });

  test('malformed references and paths', async () => {
    expect((await failureWith('relative-path', { backup: '../etc/passwd' }))!.type).toBe('InvalidInput');
    const notADump = path.join(env.dir, 'notes.backup');
    writeFileSync(notADump, 'not a dump');
    const failure = await failureWith('not-a-dump', { backup: notADump });
    expect(failure).toMatchObject({ type: 'InvalidInput', message: expect.stringContaining('custom-format') });
    expect((await failureWith('unknown-suffix', { backup: '/tmp/backup.tar' }))!.message).toContain('unknown format');
  });

  test('the target database already exists', async () => {
    const failure = await failureWith('target-exists', { into: SOURCE_DB });
    expect(failure).toMatchObject({ type: 'TargetDatabaseExists', message: expect.stringContaining(SOURCE_DB) });
  });

  test('missing and wrong private keys', async () => {
    const empty = path.join(env.dir, 'empty-gnupg');
    mkdirSync(empty, { recursive: true, mode: 0o700 });
    const missing = await failureWith('no-key', {}, (raw) => (raw.encryption.privateKeyHome = empty));
    expect(missing).toMatchObject({ type: 'PrivateKeyMissing', message: expect.stringContaining('no private key') });
    const other = await ensureKeyPair(path.join(env.dir, 'other-keys'), 'someone else <other@localhost.invalid>');
    const wrong = await failureWith('wrong-key', {}, (raw) => (raw.encryption.privateKeyHome = other.privateHome));
    expect(wrong).toMatchObject({ type: 'PrivateKeyMissing', message: expect.stringContaining('wrong key') });
    await stopAgent(other.privateHome);
  });

  test('not enough disk to stage the archive', async () => {
    const tiny = path.join(env.dir, 'tiny-work');
    mkdirSync(tiny, { recursive: true });
    execSync(`mount -t tmpfs -o size=1m tmpfs ${tiny}`);
    try {
      const failure = await failureWith('disk', {}, (raw) => (raw.restore.workDir = tiny));
      expect(failure).toMatchObject({ type: 'DiskFull', message: expect.stringContaining(tiny) });
    } finally {
      execSync(`umount ${tiny}`);
    }
  });

  test('a plain SQL file with a failing statement fails (the seed would have exit 0) and leaves no database', async () => {
    const file = path.join(env.dir, 'broken.sql');
    const header = '--\n-- PostgreSQL database dump\n--\n\n';
    writeFileSync(file, `${header}CREATE TABLE fine (id int);\nINSERT INTO fine VALUES (1);\nINSERT INTO no_such_table VALUES (1);\nCREATE TABLE after (id int);\n`);
    const failure = await failureWith('broken-sql', { backup: file, into: 'restored_broken', allowUnsigned: true });
    // The error kind and the file's line; the statement itself is the file's content, never quoted.
    expect(failure).toMatchObject({ type: 'RestoreFailed', message: expect.stringContaining('line 7: ERROR: relation') });
  });
});

test('--replace: services stopped, live swapped for the verified copy (old kept), services started', async () => {
  await env.source.query(SOURCE_DB, `INSERT INTO auth_user (username, email, password, date_joined) VALUES ('written-after-backup', 'x@y', 'x', now())`);
  const { result, failure } = await restore('restore-replace', { replace: true });
  expect(failure).toBeUndefined();
  const swap = result!.swap!;
  expect(swap.live).toBe(SOURCE_DB);
  expect(swap.keptAs).toMatch(new RegExp(`^${SOURCE_DB}_pre_restore_\\d{8}_\\d{6}$`));
  expect(await tableChecksums(env.source, SOURCE_DB)).toEqual(sourceSums);
  const kept = await env.source.query(swap.keptAs, "SELECT count(*)::int AS n FROM auth_user WHERE username = 'written-after-backup'");
  expect(kept.rows[0].n).toBe(1);
  expect(readFileSync(path.join(servicesDir, 'calls'), 'utf8').trim().split('\n')).toEqual([
    'stop thesis-grey',
    'stop thesis-grey-celery',
    'stop thesis-grey-celery-beat',
    'start thesis-grey-celery-beat',
    'start thesis-grey-celery',
    'start thesis-grey',
  ]);
  expect(readdirSync(path.join(servicesDir, 'stopped'))).toEqual([]);
  // The application logs in as before.
  await execa(path.join(env.source.binDir, 'psql'), ['-h', '127.0.0.1', '-p', String(env.source.port), '-U', APP_USER, '-d', SOURCE_DB, '-c', 'SELECT 1'], {
    env: { PGPASSWORD: APP_PASSWORD },
  });
  if (process.env.RECORD_HISTORIES) {
    const history = (await execa(projectTool('temporal'), ['workflow', 'show', '--workflow-id', 'restore-replace', '--output', 'json', '--address', env.temporal.address])).stdout;
    writeFileSync('test/histories/restoreDatabase.json', history);
    for (const [id, name] of [['verify-backup-test', 'verifyBackup'], ['recovery-drill-test', 'recoveryDrill']]) {
      const h = (await execa(projectTool('temporal'), ['workflow', 'show', '--workflow-id', id, '--output', 'json', '--address', env.temporal.address])).stdout;
      writeFileSync(`test/histories/${name}.json`, h);
    }
  }
});
