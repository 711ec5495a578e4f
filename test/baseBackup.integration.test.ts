// The physical base backup on real components: pg_basebackup's tar through zstd and gpg into
// every repository, a manifest with the WAL range, and a stored copy that plain tools turn
// back into a data directory that pg_verifybackup accepts.
import { execSync } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import pino from 'pino';
import { listManifests } from '../engine/catalog.js';
import { openRepositories } from '../engine/storage/index.js';
import { startWorker } from '../workers/worker.js';
import type { Config } from '../common/config.js';
import { backupBase } from '../workflows/index.js';
import type { BaseBackupResult } from '../common/pitrTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

let env: BackupEnv;
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });

beforeAll(async () => {
  env = await startBackupEnv({ users: 200, sessionsPerUser: 2, activitiesPerSession: 2 });
});

afterAll(async () => {
  await env?.stop();
});

async function baseBackupWith(config: Config, workflowId: string) {
  const worker = await startWorker(config, logger, { bundleInProcess: true });
  try {
    const handle = await env.temporal.client.workflow.start(backupBase, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue(config.host) }] });
    try {
      return { result: await handle.result() };
    } catch (err) {
      return { failure: (err as WorkflowFailedError).cause as ApplicationFailure };
    }
  } finally {
    await worker.shutdown();
  }
}

describe('a base backup', () => {
  let config: Config;
  let result: BaseBackupResult;

  beforeAll(async () => {
    config = env.config('base', (raw) => (raw.baseBackup = { url: env.source.url('postgres') }));
    const run = await baseBackupWith(config, 'backup-base-good');
    if (!run.result) throw run.failure;
    result = run.result;
  });

  test('reports the WAL range, timeline and server, and every verified copy', () => {
    expect(result).toMatchObject({ backupId: 'backup-base-good', component: 'base', compression: 'zstd' });
    expect(result.backup.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(result.backup.stopLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(result.backup.timeline).toBe(1);
    expect(result.backup.includesBackupManifest).toBe(true);
    expect(result.server.versionNum).toBeGreaterThanOrEqual(150000);
    expect(result.server.systemIdentifier).toMatch(/^\d+$/);
    // Where its WAL starts, for retention: the segment size is recorded.
    expect(result.server.walSegmentBytes).toBe(16 * 1024 * 1024);
    expect(result.copies.map((c) => c.repository).sort()).toEqual(['local', 'nas', 's3']);
    expect(result.copies.every((c) => c.verified)).toBe(true);
  });

  test('each repository holds the tar and one manifest', async () => {
    for (const repository of openRepositories(config)) {
      expect((await repository.list('base/')).map((o) => o.key)).toEqual(
        [result.objects[0].key, 'base/backup-base-good/claim.json', 'base/backup-base-good/manifest.json'].sort(),
      );
      expect(result.objects[0].key).toMatch(/^base\/backup-base-good\/r[0-9a-f]{12}-a1\/base\.tar\.zst\.gpg$/);
      const manifests = await listManifests(repository, 'base');
      expect(manifests.map((m) => m.backup.stopLsn)).toEqual([result.backup.stopLsn]);
    }
  });

  test('the S3 copy unpacks with plain tools into a data directory that pg_verifybackup accepts', async () => {
    const dir = path.join(env.dir, 'unpacked');
    mkdirSync(dir, { mode: 0o700 });
    const file = path.join(env.dir, 'base.tar.zst.gpg');
    const body = await openRepositories(config).find((r) => r.name === 's3')!.get(result.objects[0].key);
    await pipeline(body, createWriteStream(file));
    execSync(`gpg --homedir ${env.keys.privateHome} --batch -q -d ${file} | zstd -d -q | tar -x -C ${dir}`);
    const verified = execSync(`${env.source.binDir}/pg_verifybackup ${dir} 2>&1`).toString();
    expect(verified).toContain('backup successfully verified');
  });
});

test('a role without REPLICATION fails at once with PermissionDenied, nothing written', async () => {
  const config = env.config('base-norepl');
  const { failure } = await baseBackupWith(config, 'backup-base-norepl');
  expect(failure).toMatchObject({ type: 'PermissionDenied', message: expect.stringContaining('REPLICATION') });
  for (const repository of openRepositories(config)) expect(await repository.list('base/')).toEqual([]);
});
