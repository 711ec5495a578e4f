// A stale attempt harms nothing, and a backup id has one writer. Real worker processes
// (`backupctl worker`) are frozen with SIGSTOP in the middle of the dump while a second worker
// finishes the backup, then woken with SIGCONT, as a paused VM, a long GC pause or a network
// partition would do; and two runs try to write under one backup id.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultPayloadConverter } from '@temporalio/common';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { ResultPromise } from 'execa';
import YAML from 'yaml';
import { readManifest } from '../engine/catalog.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Config } from '../common/config.js';
import { backupDatabase } from '../workflows/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type DatabaseBackupResult } from '../common/types.js';
import { SOURCE_DB, seedSlowToCompress, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { tableChecksums } from './fixtures/postgres.js';
import { restoreDump } from './fixtures/restore.js';
import { workerProcesses } from './fixtures/workerProcess.js';

let env: BackupEnv;
const workers = workerProcesses();

beforeAll(async () => {
  env = await startBackupEnv({ users: 300, sessionsPerUser: 4, activitiesPerSession: 5 }, seedSlowToCompress);
});

afterAll(async () => {
  workers.killAll();
  await env?.stop();
});

function slowConfig(host: string): { file: string; config: Config } {
  const patch = (raw: any) => (raw.compression = { level: 19 });
  const config = env.config(host, patch);
  const file = path.join(env.dir, `${host}.yaml`);
  writeFileSync(file, YAML.stringify(config));
  return { file, config };
}

function configFile(host: string): string {
  const file = path.join(env.dir, `${host}-default.yaml`);
  writeFileSync(file, YAML.stringify(env.config(host)));
  return file;
}

/** Waits until no pg_dump, zstd or gpg runs in the worker's process group. */
async function untilPipelineGone(worker: ResultPromise, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const listed = spawnSync('pgrep', ['-l', '-g', String(worker.pid)], { encoding: 'utf8' }).stdout;
    if (!/pg_dump|zstd|gpg/.test(listed)) return;
    await sleep(500);
  }
  throw new Error('the woken attempt kept its pipeline running');
}

function signalGroup(worker: ResultPromise, signal: NodeJS.Signals) {
  process.kill(-worker.pid!, signal);
}

/** Waits until the dump activity reports stored bytes, i.e. every repository is being written. */
async function waitForDumpBytes(handle: WorkflowHandle, atLeast: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error('the dump never got going');
    const description = await handle.describe();
    const pending = description.raw.pendingActivities?.find((a) => a.activityType?.name === 'dumpDatabaseToRepositories');
    const payload = pending?.heartbeatDetails?.payloads?.[0];
    const progress: { role?: string; storedBytes?: number } = payload ? defaultPayloadConverter.fromPayload(payload as any) : {};
    if (progress.role === 'dump' && (progress.storedBytes ?? 0) >= atLeast) return;
    await sleep(200);
  }
}

async function sha256Of(config: Config, repository: string, key: string): Promise<string> {
  const repo = openRepositories(config).find((r) => r.name === repository)!;
  const hash = createHash('sha256');
  for await (const chunk of await repo.get(key)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function expectIntact(config: Config, result: DatabaseBackupResult): Promise<void> {
  for (const repository of openRepositories(config)) {
    const manifest = await readManifest(repository, 'database', result.backupId);
    expect(manifest?.runId).toBeDefined();
    for (const object of manifest!.objects) {
      expect({ repository: repository.name, key: object.key, sha256: await sha256Of(config, repository.name, object.key) }).toEqual({
        repository: repository.name,
        key: object.key,
        sha256: object.sha256,
      });
    }
  }
}

test('a worker frozen mid-dump and woken after another finished the backup deletes and overwrites nothing', async () => {
  const { file, config } = slowConfig('db-frozen');
  const first = workers.spawn(file);
  const handle = await env.temporal.client.workflow.start(backupDatabase, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId: 'backup-database-frozen',
    args: [{ hostTaskQueue: hostTaskQueue('db-frozen') }],
  });
  await waitForDumpBytes(handle, 1024 * 1024);
  signalGroup(first, 'SIGSTOP');
  let second: ResultPromise | undefined;
  try {
    // The same host at the default zstd level: the takeover need not be slow too.
    second = workers.spawn(configFile('db-frozen'));
    const result = (await handle.result()) as DatabaseBackupResult;
    // The winner is a later attempt; the frozen one's folder is not what the manifest names.
    expect(result.objects.every((o) => !/-a1\//.test(o.key))).toBe(true);
    await expectIntact(config, result);

    signalGroup(first, 'SIGCONT');
    // The woken attempt learns from its next heartbeat that it was superseded, and stops; the
    // old code then removed the backup's objects. Wait until its pipeline is gone, and a bit.
    await untilPipelineGone(first, 90_000);
    await sleep(5_000);
    await expectIntact(config, result);
    for (const repository of openRepositories(config)) {
      const keys = (await repository.list(`database/${result.backupId}/`)).map((o) => o.key);
      const named = new Set([...result.objects.map((o) => o.key), `database/${result.backupId}/manifest.json`, `database/${result.backupId}/claim.json`]);
      // Anything else can only be the stale attempt's own folder.
      expect(keys.filter((k) => !named.has(k)).every((k) => /\/r[0-9a-f]{12}-a1\//.test(k))).toBe(true);
    }

    const local = openRepositories(config).find((r) => r.name === 'local')!;
    const dump = result.objects.find((o) => o.role === 'dump')!;
    await env.fresh.query('postgres', 'CREATE DATABASE after_freeze');
    for (const role of ['thesis_grey_user', 'thesis_grey_readonly']) {
      await env.fresh.query('postgres', `DO $$ BEGIN CREATE ROLE ${role}; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    }
    await restoreDump(await local.get(dump.key), env.keys.privateHome, env.fresh.port, 'after_freeze');
    expect(await tableChecksums(env.fresh, 'after_freeze')).toEqual(await tableChecksums(env.source, SOURCE_DB));
  } finally {
    try {
      signalGroup(first, 'SIGCONT');
    } catch {
      // gone
    }
    workers.kill(first);
    if (second) workers.kill(second);
  }
}, 360_000);

test('two workflow ids that differ only in unsafe characters make two backups, each intact', async () => {
  const config = env.config('db-dup');
  const file = path.join(env.dir, 'db-dup.yaml');
  writeFileSync(file, YAML.stringify(config));
  const worker = workers.spawn(file);
  try {
    const results: DatabaseBackupResult[] = [];
    for (const workflowId of ['dup x', 'dup/x', 'dup_x']) {
      results.push(
        (await env.temporal.client.workflow.execute(backupDatabase, {
          taskQueue: SHARED_TASK_QUEUE,
          workflowId,
          args: [{ hostTaskQueue: hostTaskQueue('db-dup') }],
        })) as DatabaseBackupResult,
      );
    }
    expect(results.map((r) => r.backupId)).toEqual(['dup_20x', 'dup_2fx', 'dup_5fx']);
    for (const result of results) await expectIntact(config, result);
  } finally {
    workers.kill(worker);
  }
});

test('a second run under a reused workflow id is refused before it writes, while the first one may still be writing', async () => {
  const { file, config } = slowConfig('db-reuse');
  const worker = workers.spawn(file);
  try {
    const first = await env.temporal.client.workflow.start(backupDatabase, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId: 'backup-database-reuse',
      args: [{ hostTaskQueue: hostTaskQueue('db-reuse') }],
    });
    await waitForDumpBytes(first, 256 * 1024);
    // Terminated, no compensation runs; its activity keeps writing until it learns.
    await first.terminate('operator terminated it');
    const second = await env.temporal.client.workflow.start(backupDatabase, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId: 'backup-database-reuse',
      args: [{ hostTaskQueue: hostTaskQueue('db-reuse') }],
    });
    const failure = await second.result().then(
      () => undefined,
      (err) => err,
    );
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    const cause = (failure as WorkflowFailedError).cause as any;
    expect(cause?.type).toBe('BackupAlreadyExists');
    expect(cause?.message).toContain(first.firstExecutionRunId);
    // The refused run wrote nothing and removed nothing: every object is the first run's.
    const history = await second.fetchHistory();
    const scheduled = history.events!.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean);
    expect(scheduled).toEqual(['planDatabaseBackup']);
    for (const repository of openRepositories(config)) {
      const keys = (await repository.list('database/backup-database-reuse/')).map((o) => o.key);
      expect(keys).toContain('database/backup-database-reuse/claim.json');
      expect(keys.filter((k) => !k.endsWith('claim.json')).every((k) => k.includes(`/r${first.firstExecutionRunId!.replace(/-/g, '').slice(0, 12)}-a`))).toBe(true);
    }
  } finally {
    workers.kill(worker);
  }
});
