// The nightly database backup on real components: Temporal dev server, PostgreSQL clusters,
// SeaweedFS S3, gpg and zstd. Proves the stored copies restore identical, and that every bad
// input fails clearly with no backup recorded as good.
import { execSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import pino from 'pino';
import { execa } from 'execa';
import { projectTool } from '../client/dev/tools.js';
import { listManifests } from '../engine/catalog.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Config } from '../common/config.js';
import { startWorker } from '../workers/worker.js';
import { backupDatabase } from '../workflows/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type DatabaseBackupInput, type DatabaseBackupResult } from '../common/types.js';
import { APP_PASSWORD, APP_USER, BUCKET, SOURCE_DB, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { tableChecksums } from './fixtures/postgres.js';
import { applyGlobals, restoreDump } from './fixtures/restore.js';

let env: BackupEnv;
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });

beforeAll(async () => {
  env = await startBackupEnv({ users: 1000, sessionsPerUser: 5, activitiesPerSession: 10 });
});

afterAll(async () => {
  await env?.stop();
});

async function backupWith(config: Config, workflowId: string, input: Partial<DatabaseBackupInput> = {}) {
  const worker = await startWorker(config, logger, { bundleInProcess: true });
  try {
    const handle = await env.temporal.client.workflow.start(backupDatabase, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId,
      args: [{ hostTaskQueue: hostTaskQueue(config.host), ...input }],
    });
    try {
      return { result: await handle.result(), handle };
    } catch (err) {
      return { failure: (err as WorkflowFailedError).cause as ApplicationFailure, handle };
    }
  } finally {
    await worker.shutdown();
  }
}

/** Every object under the backup's folder, per repository; `.partial` files count too. */
async function objectsOf(config: Config, backupId: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const repository of openRepositories(config)) {
    const listed = (await repository.list(`database/${backupId}/`)).map((o) => o.key.split('/').pop()!);
    const spec = config.repositories[repository.name];
    if (spec.type === 'filesystem') {
      const folder = path.join(spec.path, 'database', backupId);
      const partials = execSync(`find ${JSON.stringify(folder)} -name '*.partial' 2>/dev/null || true`).toString().trim();
      if (partials) listed.push(...partials.split('\n'));
    }
    out[repository.name] = listed.sort();
  }
  return out;
}

describe('a good backup', () => {
  let config: Config;
  let result: DatabaseBackupResult;
  let history: string;

  beforeAll(async () => {
    config = env.config('db-good');
    const run = await backupWith(config, 'backup-database-good');
    if (!run.result) throw run.failure;
    result = run.result;
    // The history as operators would download it: the temporal CLI's JSON.
    history = (await execa(projectTool('temporal'), ['workflow', 'show', '--workflow-id', 'backup-database-good', '--output', 'json', '--address', env.temporal.address])).stdout;
    if (process.env.RECORD_HISTORIES) {
      mkdirSync('test/histories', { recursive: true });
      writeFileSync('test/histories/backupDatabase.json', history);
    }
  });

  test('the workflow history carries ids, sizes and checksums: no password, no data', () => {
    expect(history).toContain('planDatabaseBackup');
    expect(history).not.toContain(APP_PASSWORD);
    expect(history).not.toContain(encodeURIComponent(APP_PASSWORD));
    expect(history).not.toMatch(/postgres(ql)?:\/\//);
    expect(history).not.toContain(env.s3.secretAccessKey);
    expect(history).not.toContain('Zo\u00eb');
    expect(Buffer.byteLength(history)).toBeLessThan(64 * 1024);
  });

  test('reports what it stored, where, and that every copy was verified', () => {
    expect(result).toMatchObject({ workflowId: 'backup-database-good', backupId: 'backup-database-good', component: 'database', compression: 'zstd' });
    expect(result.encryption).toBe(`openpgp:${env.keys.fingerprint}`);
    expect(result.rowCounts).toEqual({
      auth_user: env.sourceCounts.auth_user,
      review_manager_searchsession: env.sourceCounts.review_manager_searchsession,
      review_manager_sessionactivity: env.sourceCounts.review_manager_sessionactivity,
    });
    const dump = result.objects.find((o) => o.role === 'dump')!;
    expect(result.bytes).toBe(dump.bytes);
    expect(result.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(dump.bytes).toBeLessThan(dump.plainBytes);
    expect(result.copies.map((c) => c.repository).sort()).toEqual(['local', 'local', 'nas', 'nas', 's3', 's3']);
    expect(result.copies.every((c) => c.verified)).toBe(true);
    expect(Date.parse(result.finishedAt)).toBeGreaterThanOrEqual(Date.parse(result.startedAt));
  });

  test('each repository holds exactly the claim, the globals, the dump and one manifest, nothing partial', async () => {
    const objects = await objectsOf(config, result.backupId);
    for (const name of ['local', 'nas', 's3']) {
      expect(objects[name]).toEqual(['claim.json', 'dump.pgcustom.zst.gpg', 'globals.sql.zst.gpg', 'manifest.json']);
    }
    // Written by the first attempt of this run, in a folder of its own.
    const token = result.objects[0].key.split('/')[2];
    expect(token).toMatch(/^r[0-9a-f]{12}-a1$/);
    expect(result.objects.map((o) => o.key)).toEqual([`database/${result.backupId}/${token}/globals.sql.zst.gpg`, `database/${result.backupId}/${token}/dump.pgcustom.zst.gpg`]);
    const uploads = await env.s3.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    expect(uploads.Uploads ?? []).toEqual([]);
  });

  test('the manifests agree, and files are 0600 in 0700 folders', async () => {
    const manifests = await Promise.all(openRepositories(config).map((r) => listManifests(r, 'database')));
    expect(manifests.map((m) => m.length)).toEqual([1, 1, 1]);
    expect(manifests[1][0]).toEqual(manifests[0][0]);
    expect(manifests[2][0]).toEqual(manifests[0][0]);
    expect(manifests[0][0].source).toMatchObject({ database: SOURCE_DB, serverVersion: expect.stringMatching(/^15/) });
    expect(manifests[0][0].source.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const folder = path.join(env.dir, 'db-good', 'local', 'database', result.backupId);
    expect(statSync(folder).mode & 0o777).toBe(0o700);
    for (const key of [...result.objects.map((o) => o.key), `database/${result.backupId}/manifest.json`, `database/${result.backupId}/claim.json`]) {
      expect(statSync(path.join(env.dir, 'db-good', 'local', key)).mode & 0o777).toBe(0o600);
    }
  });

  test('no plaintext is stored: the copies are OpenPGP messages, not dumps or zstd frames', () => {
    const dumpFile = path.join(env.dir, 'db-good', 'local', result.objects.find((o) => o.role === 'dump')!.key);
    const head = readFileSync(dumpFile).subarray(0, 8);
    expect(head.subarray(0, 5).toString('latin1')).not.toBe('PGDMP');
    expect(head.readUInt32LE(0)).not.toBe(0xfd2fb528);
    const packets = execSync(`gpg --batch --list-packets --homedir ${env.keys.privateHome} ${dumpFile} 2>&1 || true`).toString();
    expect(packets).toContain(`keyid`);
  });

  test('the S3 copy restores, on a server without the application roles, identical to the source', async () => {
    const s3 = openRepositories(config).find((r) => r.name === 's3')!;
    const globals = result.objects.find((o) => o.role === 'globals')!;
    const dump = result.objects.find((o) => o.role === 'dump')!;
    await applyGlobals(await s3.get(globals.key), env.keys.privateHome, env.fresh.port);
    await env.fresh.query('postgres', `CREATE DATABASE restored OWNER ${APP_USER}`);
    await restoreDump(await s3.get(dump.key), env.keys.privateHome, env.fresh.port, 'restored');

    expect(await tableChecksums(env.fresh, 'restored')).toEqual(await tableChecksums(env.source, SOURCE_DB));
    const owners = await env.fresh.query('restored', "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'");
    expect(owners.rows).toEqual([{ tableowner: APP_USER }]);
    const grants = await env.fresh.query(
      'restored',
      "SELECT count(*)::int AS n FROM information_schema.role_table_grants WHERE grantee = 'thesis_grey_readonly' AND privilege_type = 'SELECT'",
    );
    expect(grants.rows[0].n).toBe(4);
  });

  test('a second start with the same workflow id does not run a second backup', async () => {
    await expect(
      env.temporal.client.workflow.start(backupDatabase, {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId: 'backup-database-good',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        args: [{ hostTaskQueue: hostTaskQueue(config.host) }],
      }),
    ).rejects.toThrow(/already/i);
  });
});

test('gzip is selectable for readers that have nothing else', async () => {
  const config = env.config('db-gzip');
  const { result, failure } = await backupWith(config, 'backup-database-gzip', { compression: 'gzip' });
  expect(failure).toBeUndefined();
  expect(result!.objects.map((o) => o.key.split('/').pop())).toEqual(['globals.sql.gz.gpg', 'dump.pgcustom.gz.gpg']);
  const file = path.join(env.dir, 'db-gzip', 'nas', result!.objects[1].key);
  execSync(`gpg --homedir ${env.keys.privateHome} --batch -q -d ${file} | gzip -t`);
});

describe('bad input and faults: a clear error, nothing recorded as good, nothing left behind', () => {
  const cases: Array<[string, string, (raw: any) => void]> = [
    ['unknown database', 'UnknownDatabase', (raw) => (raw.database.url = raw.database.url.replace(SOURCE_DB, 'no_such_db'))],
    ['wrong password', 'AuthenticationFailed', (raw) => (raw.database.url = raw.database.url.replace(/:[^:@]+@/, ':wrong@'))],
    ['missing public key', 'PublicKeyMissing', (raw) => (raw.encryption.publicKeyFile = path.join(env.dir, 'no-such-key.asc'))],
    [
      'invalid public key',
      'InvalidPublicKey',
      (raw) => {
        const file = path.join(env.dir, 'not-a-key.asc');
        writeFileSync(file, 'this is not an OpenPGP key\n');
        raw.encryption.publicKeyFile = file;
      },
    ],
    ['missing bucket', 'BucketMissing', (raw) => (raw.repositories.s3.bucket = 'no-such-bucket')],
    ['unreachable S3', 'StorageUnreachable', (raw) => (raw.repositories.s3.endpoint = 'http://127.0.0.1:9')],
  ];

  test.each(cases)('%s fails with %s', async (name, type, patch) => {
    const host = `db-bad-${name.replace(/\W+/g, '-')}`;
    const config = env.config(host, patch);
    const { failure } = await backupWith(config, `backup-database-${host}`);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure!.type).toBe(type);
    expect(failure!.message.length).toBeGreaterThan(10);
    expect(failure!.message).not.toContain('app-secret');
    if (name !== 'unreachable S3' && name !== 'missing bucket') {
      const objects = await objectsOf(config, `backup-database-${host}`);
      expect(objects).toEqual({ local: [], nas: [], s3: [] });
    }
  });

  test('a full disk in the local repository fails with DiskFull and removes the other copies', async () => {
    const host = 'db-bad-disk-full';
    const mountPoint = path.join(env.dir, host, 'tiny');
    mkdirSync(mountPoint, { recursive: true });
    execSync(`mount -t tmpfs -o size=1m tmpfs ${mountPoint}`);
    try {
      const config = env.config(host, (raw) => (raw.repositories.local.path = mountPoint));
      const { failure } = await backupWith(config, `backup-database-${host}`);
      expect(failure!.type).toBe('DiskFull');
      expect(failure!.message).toContain(mountPoint);
      expect(await objectsOf(config, `backup-database-${host}`)).toEqual({ local: [], nas: [], s3: [] });
    } finally {
      execSync(`umount ${mountPoint}`);
    }
  });
});
