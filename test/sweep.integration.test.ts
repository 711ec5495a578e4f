// The sweep of leftovers on real components (Temporal dev server, PostgreSQL, SeaweedFS, the
// filesystem): what runs that were terminated (not cancelled: no compensation ran) left is
// found, what a closed run made is removed, and nothing of an open run, an unmarked or the live
// database, a complete backup, or a younger upload is touched. A dry run changes nothing. A
// worker killed in the middle of a drop is replaced by another that finishes the sweep.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import type { WorkflowHandle } from '@temporalio/client';
import { execa } from 'execa';
import pg from 'pg';
import pino from 'pino';
import YAML from 'yaml';
import { attemptObjectKey, claimBackup } from '../engine/backupClaim.js';
import { readManifest } from '../engine/catalog.js';
import { ensureCluster } from '../engine/localCluster.js';
import { claimDataDirectory, isRunning, stopCluster } from '../engine/recoveryCluster.js';
import { resolveBinDir } from '../engine/postgres.js';
import { markerFor } from '../engine/restoreTarget.js';
import { openRepositories } from '../engine/storage/index.js';
import { ownedTempPrefix } from '../engine/tempDirs.js';
import { projectTool } from '../client/dev/tools.js';
import type { Config } from '../common/config.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupDatabase, restoreDatabase, sweepLeftovers } from '../workflows/index.js';
import type { Leftover, SweepItem, SweepLeftoversInput, SweepReport } from '../common/sweepTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type DatabaseBackupResult } from '../common/types.js';
import { BUCKET, SOURCE_DB, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { freePort } from './fixtures/ports.js';
import { workerProcesses } from './fixtures/workerProcess.js';

let env: BackupEnv;
let config: Config;
let worker: RunningWorker;
const workers = workerProcesses();
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });
const HOST = 'sweep-a';
/** A queue no worker polls: runs started there stay open until terminated. */
const IDLE = 'sweep-idle';
const handles: WorkflowHandle[] = [];
let recoveryDataDir: string | undefined;
const binDir = resolveBinDir();

interface Runs {
  terminatedRestore: { workflowId: string; runId: string };
  openRestore: { workflowId: string; runId: string };
  terminatedBackup: { workflowId: string; runId: string };
  openBackup: { workflowId: string; runId: string };
  /** A run Temporal has never heard of: closed, its history gone. */
  gone: { workflowId: string; runId: string };
}
let runs: Runs;

async function openRun(workflow: typeof restoreDatabase | typeof backupDatabase, workflowId: string, terminate: boolean) {
  const args = workflow === restoreDatabase ? [{ hostTaskQueue: 'backup@nowhere', backup: 'latest' }] : [{ hostTaskQueue: 'backup@nowhere' }];
  const handle = await env.temporal.client.workflow.start(workflow as typeof restoreDatabase, { taskQueue: IDLE, workflowId, args: args as never });
  handles.push(handle);
  if (terminate) await handle.terminate('the test stands for an operator who terminated it');
  return { workflowId, runId: handle.firstExecutionRunId };
}

function workDir(host: string): string {
  return path.join(env.dir, host, 'work');
}

function configFor(host: string): Config {
  return env.config(host, (raw) => {
    raw.restore = { serverUrl: env.source.url('postgres'), workDir: workDir(host) };
  });
}

beforeAll(async () => {
  env = await startBackupEnv({ users: 20, sessionsPerUser: 2, activitiesPerSession: 2 });
  // PostgreSQL (run as `postgres`) must reach a recovery folder under the test's folder.
  chmodSync(env.dir, 0o755);
  config = configFor(HOST);
  mkdirSync(workDir(HOST), { recursive: true, mode: 0o755 });
  worker = await startWorker(config, logger, { bundleInProcess: true });
  runs = {
    terminatedRestore: await openRun(restoreDatabase, 'restore-database-terminated', true),
    openRestore: await openRun(restoreDatabase, 'restore-database-still-open', false),
    terminatedBackup: await openRun(backupDatabase, 'backup-database-terminated', true),
    openBackup: await openRun(backupDatabase, 'backup-database-still-open', false),
    gone: { workflowId: 'restore-database-long-ago', runId: randomUUID() },
  };
});

afterAll(async () => {
  workers.killAll();
  for (const handle of handles) await handle.terminate().catch(() => undefined);
  if (recoveryDataDir) await stopCluster(recoveryDataDir, binDir).catch(() => undefined);
  await worker?.shutdown();
  await env?.stop();
});

async function sweep(input: Omit<SweepLeftoversInput, 'hostTaskQueue'>, workflowId: string, host = HOST): Promise<SweepReport> {
  return env.temporal.client.workflow.execute(sweepLeftovers, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId,
    args: [{ hostTaskQueue: hostTaskQueue(host), ...input }],
  });
}

async function databases(): Promise<string[]> {
  return (await env.source.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database ORDER BY datname')).rows.map((r) => r.datname);
}

async function markedDatabase(name: string, run: { workflowId: string; runId: string }, state: string): Promise<void> {
  await env.source.query('postgres', `CREATE DATABASE ${name}`);
  await env.source.query('postgres', `COMMENT ON DATABASE ${name} IS '${markerFor({ ...run, attempt: 1 }, state)}'`);
}

function itemOf(report: SweepReport, match: (leftover: Leftover) => boolean): SweepItem {
  const found = report.items.find((item) => match(item.leftover));
  if (!found) throw new Error(`no such item in ${JSON.stringify(report.items.map((i) => i.leftover), null, 1)}`);
  return found;
}

const database = (name: string) => (l: Leftover) => l.kind === 'database' && l.name === name;
const backup = (id: string) => (l: Leftover) => l.kind === 'backup' && l.backupId === id;

async function keysUnder(prefix: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const repository of openRepositories(config)) out[repository.name] = (await repository.list(prefix)).map((o) => o.key);
  return out;
}

async function unfinishedUploads(): Promise<string[]> {
  const listed = await env.s3.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `${HOST}/` }));
  return (listed.Uploads ?? []).map((u) => u.Key!);
}

describe('a sweep after terminated runs', () => {
  let completed: DatabaseBackupResult;
  let strayKey: string;
  let staging: string;
  let recoveryFolder: string;
  let dryRun: SweepReport;
  let swept: SweepReport;
  let history: string;

  beforeAll(async () => {
    // Databases: two of the terminated restore, one of a run whose history is gone in each
    // state, one of the open restore, one unmarked, and the live database with a forged marker.
    await markedDatabase('sweep_left_restored', runs.terminatedRestore, 'restored from backup x');
    await markedDatabase('sweep_left_restoring', runs.terminatedRestore, 'restoring');
    await markedDatabase('sweep_gone_restored', runs.gone, 'restored from backup y');
    await markedDatabase('sweep_gone_restoring', runs.gone, 'restoring');
    await markedDatabase('sweep_open', runs.openRestore, 'restoring');
    await env.source.query('postgres', 'CREATE DATABASE sweep_unmarked');
    await env.source.query('postgres', `COMMENT ON DATABASE ${SOURCE_DB} IS '${markerFor({ ...runs.terminatedRestore, attempt: 1 }, 'restored from backup x')}'`);

    // A complete backup, and a stray attempt folder beside it (a stale attempt's, written after the run's own sweep).
    const handle = await env.temporal.client.workflow.start(backupDatabase, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId: 'backup-database-complete',
      args: [{ hostTaskQueue: hostTaskQueue(HOST) }],
    });
    completed = (await handle.result()) as DatabaseBackupResult;
    strayKey = attemptObjectKey('database', completed.backupId, handle.firstExecutionRunId, 7, 'dump', 'zstd');
    const repositories = openRepositories(config);
    for (const repository of repositories) await repository.put(strayKey, Readable.from([Buffer.from('stale attempt bytes')]));

    // Unfinished backups: claimed by the terminated run and by the open one, each with an attempt's object.
    for (const [id, run] of [['backup-orphan', runs.terminatedBackup], ['backup-in-flight', runs.openBackup]] as const) {
      await claimBackup(repositories, 'database', id, run, new Date());
      const key = attemptObjectKey('database', id, run.runId, 1, 'dump', 'zstd');
      for (const repository of repositories) await repository.put(key, Readable.from([Buffer.from(`${id} bytes`)]));
    }
    // The unfinished write of a second attempt, which no listing shows.
    const partial = path.join(env.dir, HOST, 'local', attemptObjectKey('database', 'backup-orphan', runs.terminatedBackup.runId, 2, 'dump', 'zstd'));
    mkdirSync(path.dirname(partial), { recursive: true });
    writeFileSync(`${partial}.0123456789ab.partial`, 'half');

    // An unfinished multipart upload under the host's prefix.
    const uploadKey = `${HOST}/${attemptObjectKey('database', 'backup-orphan', runs.terminatedBackup.runId, 3, 'dump', 'zstd')}`;
    const created = await env.s3.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: uploadKey }));
    await env.s3.client.send(new UploadPartCommand({ Bucket: BUCKET, Key: uploadKey, UploadId: created.UploadId, PartNumber: 1, Body: Buffer.alloc(1024, 1) }));

    // A recovery of the terminated run whose server still runs, and one of the open run.
    recoveryFolder = path.join(workDir(HOST), `backupctl-pitr-t-${runs.terminatedRestore.runId.slice(0, 8)}`);
    recoveryDataDir = path.join(recoveryFolder, 'data');
    const port = await freePort();
    await claimDataDirectory(recoveryDataDir, runs.terminatedRestore, port, binDir);
    await ensureCluster({ dataDir: recoveryDataDir, port });
    const openRecovery = path.join(workDir(HOST), `backupctl-pitr-open-${runs.openRestore.runId.slice(0, 8)}`, 'data');
    await claimDataDirectory(openRecovery, runs.openRestore, await freePort(), binDir);

    // A restore staging folder of a process that is gone (made after the worker's own start-up sweep).
    // A pid no process can have (above Linux's largest pid_max, 2^22): the pid of a process that
    // just ended was taken again by a live one under a loaded clean-clone CI run (pid_max 32768
    // here), and the folder was then rightly taken for a live process's.
    const dead = 4_194_305;
    staging = path.join(os.tmpdir(), `${ownedTempPrefix('restore').replace(`-${process.pid}-`, `-${dead}-`)}sweeptest`);
    mkdirSync(staging);
    writeFileSync(path.join(staging, 'plaintext.dump'), 'secret rows');

    dryRun = await sweep({ dryRun: true }, 'sweep-leftovers-dry-run');
    swept = await sweep({ uploadAgeHours: 0 }, 'sweep-leftovers-real');
    history = (await execa(projectTool('temporal'), ['workflow', 'show', '--workflow-id', 'sweep-leftovers-real', '--output', 'json', '--address', env.temporal.address])).stdout;
    if (process.env.RECORD_HISTORIES) writeFileSync('test/histories/sweepLeftovers.json', history);
  });

  test('a dry run reports what it would do and changes nothing', async () => {
    expect(dryRun.dryRun).toBe(true);
    expect(dryRun.counts.done).toBe(0);
    expect(itemOf(dryRun, database('sweep_left_restored'))).toMatchObject({ outcome: 'planned', decision: { act: 'drop' } });
    expect(itemOf(dryRun, backup('backup-orphan'))).toMatchObject({ outcome: 'planned', decision: { act: 'remove' } });
    // With the default bound, an upload begun a moment ago may be a live writer's.
    expect(dryRun.items.find((i) => i.leftover.kind === 'upload' && !i.leftover.tempFile)).toMatchObject({ outcome: 'kept', decision: { why: expect.stringContaining('younger than 24 h') } });
    expect(dryRun.items.find((i) => i.leftover.kind === 'upload' && i.leftover.tempFile)).toMatchObject({ outcome: 'kept', decision: { why: expect.stringContaining('less than 24 h ago') } });
    // The real sweep, after it, found the very same leftovers (temporary folders aside: other
    // processes on this machine come and go).
    const ours = (report: SweepReport) =>
      report.items.map((i) => i.leftover).filter((l) => l.kind !== 'staging').map((l) => (l.kind === 'upload' ? { ...l, ageHours: 'some' } : l));
    expect(ours(swept)).toEqual(ours(dryRun));
    expect(dryRun.items.find((i) => i.leftover.kind === 'staging' && i.leftover.folder === staging)).toMatchObject({ outcome: 'planned' });
  });

  test('the databases of the terminated restore are dropped; open, unmarked, live and possibly-delivered ones stay', async () => {
    const names = await databases();
    expect(names).not.toContain('sweep_left_restored');
    expect(names).not.toContain('sweep_left_restoring');
    expect(names).not.toContain('sweep_gone_restoring');
    expect(names).toEqual(expect.arrayContaining(['sweep_open', 'sweep_unmarked', 'sweep_gone_restored', SOURCE_DB]));
    expect(itemOf(swept, database('sweep_left_restored'))).toMatchObject({ outcome: 'done', standing: { state: 'closed', status: 'TERMINATED', type: 'restoreDatabase' } });
    expect(itemOf(swept, database('sweep_open'))).toMatchObject({ outcome: 'kept', standing: { state: 'open' } });
    expect(itemOf(swept, database('sweep_gone_restored'))).toMatchObject({ outcome: 'kept', standing: { state: 'gone' }, decision: { why: expect.stringContaining('history is gone') } });
    // Never even a candidate: the live database whatever its comment, a database without our marker.
    expect(swept.items.some((i) => i.leftover.kind === 'database' && [SOURCE_DB, 'sweep_unmarked'].includes(i.leftover.name))).toBe(false);
  });

  test("an unfinished backup of the terminated run goes, claim last; the open run's stays", async () => {
    expect(await keysUnder('database/backup-orphan/')).toEqual({ local: [], nas: [], s3: [] });
    expect(spawnSync('find', [path.join(env.dir, HOST, 'local', 'database', 'backup-orphan'), '-type', 'f']).stdout.toString()).toBe('');
    const inFlight = await keysUnder('database/backup-in-flight/');
    for (const keys of Object.values(inFlight)) expect(keys.sort()).toEqual([attemptObjectKey('database', 'backup-in-flight', runs.openBackup.runId, 1, 'dump', 'zstd'), 'database/backup-in-flight/claim.json'].sort());
    expect(itemOf(swept, backup('backup-in-flight'))).toMatchObject({ outcome: 'kept', standing: { state: 'open' } });
  });

  test('beside a complete backup only the stray attempt folder goes; the manifest and its objects stay', async () => {
    expect(itemOf(swept, backup(completed.backupId))).toMatchObject({ outcome: 'done', leftover: { manifest: 'published' } });
    for (const repository of openRepositories(config)) {
      expect(await repository.stat(strayKey)).toBeUndefined();
      const manifest = await readManifest(repository, 'database', completed.backupId);
      expect(manifest?.objects.map((o) => o.key).sort()).toEqual(completed.objects.map((o) => o.key).sort());
      for (const object of completed.objects) expect(await repository.stat(object.key)).toEqual({ key: object.key, bytes: object.bytes });
      expect(await repository.stat(`database/${completed.backupId}/claim.json`)).toBeDefined();
    }
  });

  test('an unfinished multipart upload on SeaweedFS is aborted, and a temp file in a file repository removed', async () => {
    expect(swept.items.find((i) => i.leftover.kind === 'upload' && !i.leftover.tempFile)).toMatchObject({ outcome: 'done', decision: { act: 'abort' } });
    expect(swept.items.find((i) => i.leftover.kind === 'upload' && i.leftover.tempFile)).toMatchObject({ outcome: 'done', leftover: { repository: 'local', uploadId: expect.stringMatching(/\.0123456789ab\.partial$/) } });
    expect(await unfinishedUploads()).toEqual([]);
  });

  test("the terminated run's recovery server is stopped and its folder kept; the open run's is kept", async () => {
    expect(itemOf(swept, (l) => l.kind === 'recovery' && l.folder === recoveryFolder)).toMatchObject({ outcome: 'done', decision: { act: 'stop' } });
    expect(await isRunning(recoveryDataDir!, binDir)).toBe(false);
    expect(existsSync(path.join(recoveryDataDir!, 'PG_VERSION'))).toBe(true);
    expect(swept.items.find((i) => i.leftover.kind === 'recovery' && i.leftover.run.runId === runs.openRestore.runId)).toMatchObject({ outcome: 'kept' });
  });

  test("a dead process's staging folder is removed", () => {
    expect(itemOf(swept, (l) => l.kind === 'staging' && l.folder === staging)).toMatchObject({ outcome: 'done' });
    expect(existsSync(staging)).toBe(false);
  });

  test('the history carries names and ids: no connection string, no password', () => {
    expect(history).toContain('sweepLeftover');
    expect(history).not.toMatch(/postgres(ql)?:\/\/|app-secret/);
    expect(history).not.toContain(env.s3.secretAccessKey);
  });

  test('with --remove-recovery-folders the stopped recovery folder goes too, and a second sweep finds nothing more to do', async () => {
    const again = await sweep({ removeRecoveryFolders: true }, 'sweep-leftovers-recovery-folders');
    expect(itemOf(again, (l) => l.kind === 'recovery' && l.folder === recoveryFolder)).toMatchObject({ outcome: 'done', decision: { act: 'remove' } });
    expect(existsSync(recoveryFolder)).toBe(false);
    expect(again.items.filter((i) => i.outcome === 'done').map((i) => i.leftover.kind)).toEqual(['recovery']);
    expect(again.counts.failed).toBe(0);
  });
});

describe('the command', () => {
  const CLI = path.resolve('bin/backupctl.js');
  let file: string;
  beforeAll(() => {
    file = path.join(env.dir, `${HOST}.yaml`);
    writeFileSync(file, YAML.stringify(config));
  });

  test('backupctl sweep --dry-run --json prints the report, exits 0 and changes nothing', async () => {
    const before = await databases();
    const cli = await execa('node', [CLI, '--config', file, 'sweep', '--dry-run', '--json', '--workflow-id', 'sweep-leftovers-cli'], { reject: false });
    expect({ code: cli.exitCode, stderr: cli.stderr }).toMatchObject({ code: 0 });
    const report = JSON.parse(cli.stdout) as SweepReport;
    expect(report).toMatchObject({ workflowId: 'sweep-leftovers-cli', hostTaskQueue: hostTaskQueue(HOST), dryRun: true, counts: { done: 0 } });
    expect(report.items.find((i) => i.leftover.kind === 'database' && i.leftover.name === 'sweep_open')).toMatchObject({ outcome: 'kept' });
    expect(await databases()).toEqual(before);
  });
});

describe('a worker killed in the middle of the sweep', () => {
  test('another worker finishes it, and nothing else is removed', async () => {
    const host = 'sweep-crash';
    const crashConfig = configFor(host);
    mkdirSync(workDir(host), { recursive: true, mode: 0o755 });
    const file = path.join(env.dir, `${host}.yaml`);
    writeFileSync(file, YAML.stringify(crashConfig));
    await markedDatabase('sweep_crash_left', runs.terminatedRestore, 'restoring');
    await markedDatabase('sweep_crash_open', runs.openRestore, 'restoring');
    // The drop waits for the name's lock, held here: the worker is killed while it waits.
    const holder = new pg.Client({ connectionString: env.source.url('postgres') });
    await holder.connect();
    await holder.query('SELECT pg_advisory_lock(hashtext($1))', ['backupctl-database:sweep_crash_left']);
    const first = workers.spawn(file);
    try {
      const handle = await env.temporal.client.workflow.start(sweepLeftovers, {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId: 'sweep-leftovers-crash',
        args: [{ hostTaskQueue: hostTaskQueue(host) }],
      });
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (Date.now() > deadline) throw new Error('the sweep never started dropping');
        const pending = (await handle.describe()).raw.pendingActivities ?? [];
        // PENDING_ACTIVITY_STATE_STARTED
        if (pending.some((a) => a.activityType?.name === 'sweepLeftover' && a.state === 2)) break;
        await sleep(200);
      }
      workers.kill(first);
      await holder.query('SELECT pg_advisory_unlock_all()');
      void workers.spawn(file);
      const report = await handle.result();
      const left = report.items.find((i) => i.leftover.kind === 'database' && i.leftover.name === 'sweep_crash_left');
      expect(left).toMatchObject({ outcome: 'done' });
      const names = await databases();
      expect(names).not.toContain('sweep_crash_left');
      expect(names).toEqual(expect.arrayContaining(['sweep_crash_open', 'sweep_open', 'sweep_unmarked', 'sweep_gone_restored', SOURCE_DB]));
      const described = await handle.describe();
      expect(described.status.name).toBe('COMPLETED');
    } finally {
      await holder.end().catch(() => undefined);
    }
  });
});
