// The way back must never destroy what it protects, never hang, and never leave plaintext
// behind, on real components: a Temporal dev server, PostgreSQL, SeaweedFS S3, gpg, and real
// `backupctl worker` processes killed with SIGKILL.
import { mkdirSync, readFileSync, readdirSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowFailedError, WorkflowHandle } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import pino from 'pino';
import YAML from 'yaml';
import type { Config } from '../common/config.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupDatabase, restoreDatabase } from '../workflows/index.js';
import type { RestoreDatabaseInput, RestoreDatabaseResult } from '../common/restoreTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type DatabaseBackupResult } from '../common/types.js';
import { SOURCE_DB, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { tableChecksums } from './fixtures/postgres.js';
import { workerProcesses } from './fixtures/workerProcess.js';

let env: BackupEnv;
let dbConfig: Config;
let backup: DatabaseBackupResult;
let sourceSums: Record<string, string>;
let servicesDir: string;
const running: RunningWorker[] = [];
const processes = workerProcesses();
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });

function restoringHost(raw: any) {
  raw.encryption.privateKeyHome = env.keys.privateHome;
  raw.restore = {
    serverUrl: env.source.url('postgres'),
    jobs: 2,
    services: { units: ['thesis-grey', 'thesis-grey-celery', 'thesis-grey-celery-beat'], stopCommand: [path.join(servicesDir, 'systemctl'), 'stop'], startCommand: [path.join(servicesDir, 'systemctl'), 'start'] },
  };
}

beforeAll(async () => {
  env = await startBackupEnv({ users: 200, sessionsPerUser: 4, activitiesPerSession: 5 }, async (db) => {
    // Enough data that a restore streams for a second or more: long enough to be killed in.
    await db.query(`CREATE TABLE review_manager_searchresult AS
                    SELECT g AS id, md5(g::text) AS a, md5((g * 7)::text) AS b FROM generate_series(1, 150000) g`);
    await db.query('CREATE INDEX ON review_manager_searchresult (a)');
    await db.query('ALTER TABLE review_manager_searchresult OWNER TO thesis_grey_user');
  });
  servicesDir = path.join(env.dir, 'services');
  mkdirSync(path.join(servicesDir, 'stopped'), { recursive: true });
  writeFileSync(path.join(servicesDir, 'systemctl'), `#!/bin/bash\necho "$1 $2" >> ${servicesDir}/calls\n`);
  chmodSync(path.join(servicesDir, 'systemctl'), 0o755);
  dbConfig = env.config('db', restoringHost);
  running.push(await startWorker(dbConfig, logger, { bundleInProcess: true }));
  backup = await env.temporal.client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'backup-for-safety', args: [{ hostTaskQueue: hostTaskQueue('db') }] });
  sourceSums = await tableChecksums(env.source, SOURCE_DB);
}, 240_000);

afterAll(async () => {
  processes.killAll();
  await Promise.all(running.map((w) => w.shutdown().catch(() => undefined)));
  await env?.stop();
});

function start(workflowId: string, input: Partial<RestoreDatabaseInput>, host = 'db') {
  return env.temporal.client.workflow.start(restoreDatabase, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId,
    args: [{ hostTaskQueue: hostTaskQueue(host), backup: 'latest', ...input }],
  });
}

/** The outcome within `ms`; a run still going then is terminated and reported as hung. */
async function settle(handle: WorkflowHandle, ms: number): Promise<{ result?: RestoreDatabaseResult; failure?: ApplicationFailure; hung?: true }> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    handle.result().then(
      (result) => ({ result: result as RestoreDatabaseResult }),
      (err) => ({ failure: (err as WorkflowFailedError).cause as ApplicationFailure }),
    ),
    new Promise<{ hung: true }>((resolve) => (timer = setTimeout(() => resolve({ hung: true }), ms))),
  ]);
  clearTimeout(timer);
  if ('hung' in outcome) await handle.terminate('hung in a test').catch(() => undefined);
  return outcome;
}

async function databaseOid(name: string): Promise<number | undefined> {
  const { rows } = await env.source.query<{ oid: number }>('postgres', 'SELECT oid::int FROM pg_database WHERE datname = $1', [name]);
  return rows[0]?.oid;
}

async function dropDatabases(...names: string[]) {
  for (const name of names) await env.source.query('postgres', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}

test('a reused workflow id owns nothing: after restore --replace as swap-1 and deletion of its history, a restore as swap-1 --into the live name is refused and the live database is untouched', async () => {
  const first = await start('swap-1', { replace: true });
  const swap = await settle(first, 120_000);
  expect(swap.failure).toBeUndefined();
  expect(swap.result!.swap!.live).toBe(SOURCE_DB);
  const live = await env.source.query<{ comment: string | null }>('postgres', "SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1", [SOURCE_DB]);

  // Its history deleted, as retention does. The id is free either way once the run closed
  // (the default reuse policy); the deletion names the run, so it can never reach the next.
  const runId = first.firstExecutionRunId;
  await env.temporal.client.workflowService.deleteWorkflowExecution({ namespace: 'default', workflowExecution: { workflowId: 'swap-1', runId } });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && (await env.temporal.client.workflow.getHandle('swap-1', runId).describe().then(() => true, () => false))) {
    await new Promise((r) => setTimeout(r, 200));
  }
  const oid = await databaseOid(SOURCE_DB);
  await env.source.query(SOURCE_DB, `INSERT INTO auth_user (username, email, password, date_joined) VALUES ('after-swap', 'a@b', 'x', now())`);
  const sums = await tableChecksums(env.source, SOURCE_DB);

  const again = await settle(await start('swap-1', { into: SOURCE_DB }), 120_000);
  expect(again.failure).toMatchObject({ type: 'TargetDatabaseExists', message: expect.stringContaining('live database') });
  expect(await databaseOid(SOURCE_DB)).toBe(oid);
  expect(await tableChecksums(env.source, SOURCE_DB)).toEqual(sums);
  // Live since the swap: it carries no owner marker any later run could take as its own.
  expect(live.rows[0].comment ?? '').not.toMatch(/^backupctl (run|workflow)=/);
  await dropDatabases(swap.result!.swap!.keptAs);
}, 300_000);

test('two restores racing for the same --into both settle quickly: one restores, the other is TargetDatabaseExists', async () => {
  for (const round of [1, 2]) {
    const into = `raced_${round}`;
    const handles = await Promise.all([start(`race-a-${round}`, { into }), start(`race-b-${round}`, { into })]);
    const outcomes = await Promise.all(handles.map((h) => settle(h, 90_000)));
    expect(outcomes.filter((o) => o.hung)).toEqual([]);
    expect(outcomes.filter((o) => o.result).length).toBe(1);
    expect(outcomes.find((o) => o.failure)!.failure!.type).toBe('TargetDatabaseExists');
    expect(await tableChecksums(env.source, into)).toMatchObject({ auth_user: sourceSums.auth_user });
    await dropDatabases(into);
  }
}, 300_000);

describe('the first two copies of latest corrupt', () => {
  const dumpKey = () => backup.objects.find((o) => o.role === 'dump')!.key;
  const originals: Record<string, Buffer> = {};

  beforeAll(() => {
    for (const repo of ['local', 'nas']) {
      const file = path.join(env.dir, 'db', repo, dumpKey());
      originals[file] = readFileSync(file);
      const damaged = Buffer.from(originals[file]);
      // Damage early in the stream: garbage reaches zstd and pg_restore long before gpg's end.
      damaged[4096] ^= 0xff;
      damaged[damaged.length >> 1] ^= 0xff;
      writeFileSync(file, damaged);
    }
  });
  afterAll(() => {
    for (const [file, bytes] of Object.entries(originals)) writeFileSync(file, bytes);
  });

  test('restore finishes every time, from the third copy, naming the two it skipped', async () => {
    for (const round of [1, 2, 3, 4]) {
      const into = `from_third_${round}`;
      const outcome = await settle(await start(`restore-third-copy-${round}`, { into }), 90_000);
      expect(outcome.hung).toBeUndefined();
      expect(outcome.failure).toBeUndefined();
      expect(outcome.result!.restored.copy).toMatchObject({ repository: 's3' });
      expect(outcome.result!.restored.skipped.map((s) => s.repository).sort()).toEqual(['local', 'nas']);
      await dropDatabases(into);
    }
  }, 400_000);
});

test("a SIGKILLed worker leaves a plaintext staging folder and a gpg home; the next worker removes them, never a live process's", async () => {
  const tmp = path.join(env.dir, 'tmp');
  const workDir = path.join(env.dir, 'work-kill');
  mkdirSync(tmp, { recursive: true });
  mkdirSync(workDir, { recursive: true });
  const killFile = path.join(env.dir, 'kill.yaml');
  writeFileSync(
    killFile,
    YAML.stringify(
      env.config('kill', (raw) => {
        restoringHost(raw);
        raw.restore.workDir = workDir;
        raw.repositories = { s3: { ...raw.repositories.s3, prefix: 'db' } };
      }),
    ),
  );
  const previousTmp = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  const ours = () => readdirSync(tmp).filter((n) => n.startsWith('backupctl-'));
  /** A process that made a gpg home (as every backup does) and holds it; the home is what appeared. */
  const gpgHolder = async () => {
    const before = new Set(ours());
    const holder = execa(
      process.execPath,
      ['--import', 'tsx', '-e', `import('./engine/encryption.ts').then((m) => m.loadRecipient(${JSON.stringify(env.keys.publicKeyFile)})).then(() => { console.log('ready'); setInterval(() => {}, 1000); })`],
      { reject: false, env: { TMPDIR: tmp } },
    );
    await new Promise<void>((resolve) => holder.stdout!.on('data', () => resolve()));
    const home = ours().find((n) => !before.has(n) && n.startsWith('backupctl-gpg-'));
    // Wrapped: an execa process is a promise, and returning it would wait for its end.
    return { process: holder, home };
  };
  const alive = await gpgHolder();
  const doomed = processes.spawn(killFile);
  let next: ReturnType<typeof processes.spawn> | undefined;
  const handle = await start('restore-killed-worker', { into: 'killed_restore' }, 'kill');
  try {
    const deadline = Date.now() + 120_000;
    while (!readdirSync(workDir).some((n) => readdirSync(path.join(workDir, n)).length > 0)) {
      if (Date.now() > deadline) throw new Error('the restore never staged anything');
      await new Promise((r) => setTimeout(r, 10));
    }
    processes.kill(doomed);
    await doomed;
    const killed = await gpgHolder();
    killed.process.kill('SIGKILL');
    await killed.process;
    const left = { tmp: ours(), work: readdirSync(workDir) };
    expect(left.work.length).toBe(1);
    expect(readdirSync(path.join(workDir, left.work[0])).length).toBeGreaterThan(0);
    const aliveHome = alive.home;
    const killedHome = killed.home;
    expect(left.tmp).toEqual(expect.arrayContaining([aliveHome, killedHome]));
    // A worker removes its own bundle as soon as it has loaded it: a kill leaves none behind.
    expect(left.tmp.filter((n) => n.startsWith('backupctl-bundle-'))).toEqual([]);

    next = processes.spawn(killFile);
    const until = Date.now() + 60_000;
    while (readdirSync(workDir).length > 0 || ours().includes(killedHome!)) {
      if (Date.now() > until) throw new Error(`left behind: ${JSON.stringify({ tmp: ours(), work: readdirSync(workDir) })}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // The live process's folder is still there.
    expect(ours()).toContain(aliveHome);
  } finally {
    alive.process.kill('SIGKILL');
    await alive.process;
    await handle.terminate('test over').catch(() => undefined);
    if (next) processes.kill(next);
    await dropDatabases('killed_restore');
    if (previousTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previousTmp;
  }
}, 300_000);

test('a cancelled restore leaves no plaintext in its staging folder', async () => {
  const workDir = path.join(env.dir, 'work-cancel');
  mkdirSync(workDir, { recursive: true });
  const host = 'cancel';
  const worker = await startWorker(
    env.config(host, (raw) => {
      restoringHost(raw);
      raw.restore.workDir = workDir;
      raw.repositories = { nas: { type: 'filesystem', path: path.join(env.dir, 'db', 'nas') } };
    }),
    logger,
    { bundleInProcess: true },
  );
  try {
    const handle = await start('restore-cancelled', { into: 'cancelled_restore' }, host);
    const deadline = Date.now() + 120_000;
    while (!readdirSync(workDir).some((n) => readdirSync(path.join(workDir, n)).length > 0)) {
      if (Date.now() > deadline) throw new Error('the restore never staged anything');
      await new Promise((r) => setTimeout(r, 10));
    }
    await handle.cancel();
    const outcome = await settle(handle, 60_000);
    expect(outcome.hung).toBeUndefined();
    const until = Date.now() + 20_000;
    while (readdirSync(workDir).length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(readdirSync(workDir)).toEqual([]);
    expect(await databaseOid('cancelled_restore')).toBeUndefined();
  } finally {
    await worker.shutdown();
    await dropDatabases('cancelled_restore');
  }
}, 200_000);
