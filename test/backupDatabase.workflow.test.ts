// The backup workflow's orchestration, with fake activities: order of steps, the manifest
// written last, cleanup on failure, input validation, and failures surfaced by type.
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../activities/index.js';
import { backupDatabase } from '../workflows/index.js';
import { progressQuery } from '../workflows/messages.js';
import { ErrorType, type BackupManifest, type DatabaseBackupInput } from '../common/types.js';
import { workflowBundle } from '../workers/worker.js';
import { startTemporal } from './fixtures/temporal.js';

let env: TestWorkflowEnvironment;
let queueCounter = 0;

beforeAll(async () => {
  env = await startTemporal();
});

afterAll(async () => {
  await env?.teardown();
});

type Calls = string[];

function fakeActivities(calls: Calls, overrides: Partial<Activities> = {}): Activities {
  const objects = [
    { role: 'globals' as const, key: 'database/b/globals.sql.zst.gpg', bytes: 10, sha256: 'a'.repeat(64), plainBytes: 20 },
    { role: 'dump' as const, key: 'database/b/dump.pgcustom.zst.gpg', bytes: 100, sha256: 'b'.repeat(64), plainBytes: 300 },
  ];
  const base: Pick<Activities, BackupActivityName> = {
    async planDatabaseBackup(input) {
      calls.push(`plan:${input.backupId}`);
      return {
        database: 'app',
        serverVersion: '15.0',
        repositories: [
          { name: 'local', kind: 'filesystem' },
          { name: 's3', kind: 's3' },
        ],
        keyTables: ['auth_user'],
        compression: input.compression ?? 'zstd',
        encryptionFingerprint: 'F'.repeat(40),
      };
    },
    async dumpDatabaseToRepositories() {
      calls.push('dump');
      return {
        objects,
        rowCounts: { auth_user: 3 },
        warnings: [],
        readabilityCheck: 'fake',
        source: { database: 'app', serverVersion: '15.0', lsn: '0/1', snapshotTakenAt: new Date(0).toISOString(), databaseBytes: 1 },
      };
    },
    async verifyBackupCopies(input) {
      calls.push(`verify:${input.repositories.join(',')}`);
      return input.repositories.flatMap((repository) => input.objects.map((o) => ({ repository, key: o.key, bytes: o.bytes, sha256: o.sha256, verified: true })));
    },
    async writeBackupManifest(manifest: BackupManifest) {
      calls.push(`manifest:${manifest.copies.length}`);
    },
    async discardBackupObjects(input) {
      calls.push(`discard:${input.backupId}`);
      return 0;
    },
  };
  return { ...base, ...overrides } as Activities;
}

type BackupActivityName = 'planDatabaseBackup' | 'dumpDatabaseToRepositories' | 'verifyBackupCopies' | 'writeBackupManifest' | 'discardBackupObjects';

async function run(activities: Activities, input: Partial<DatabaseBackupInput> = {}, workflowId = `backup-database-test-${++queueCounter}`) {
  const hostQueue = `backup@unit-${queueCounter}-${Date.now()}`;
  const sharedQueue = `shared-unit-${queueCounter}-${Date.now()}`;
  const bundle = await workflowBundle();
  const workers = await Promise.all([
    Worker.create({ connection: env.nativeConnection, taskQueue: sharedQueue, workflowBundle: bundle, activities }),
    Worker.create({ connection: env.nativeConnection, taskQueue: hostQueue, activities }),
  ]);
  const [shared, host] = workers;
  return shared.runUntil(
    host.runUntil(async () => {
      const handle = await env.client.workflow.start(backupDatabase, {
        taskQueue: sharedQueue,
        workflowId,
        args: [{ hostTaskQueue: hostQueue, ...input } as DatabaseBackupInput],
      });
      try {
        return { result: await handle.result(), progress: await handle.query(progressQuery) };
      } catch (err) {
        return { error: err as WorkflowFailedError, progress: await handle.query(progressQuery) };
      }
    }),
  );
}

test('plans, dumps, verifies every copy, and writes the manifest last', async () => {
  const calls: Calls = [];
  const { result, progress } = await run(fakeActivities(calls), {}, 'backup-database-2026-11-26');
  expect(calls).toEqual(['plan:backup-database-2026-11-26', 'dump', 'verify:local,s3', 'manifest:4']);
  expect(result?.backupId).toBe('backup-database-2026-11-26');
  expect(result?.bytes).toBe(100);
  expect(result?.sha256).toBe('b'.repeat(64));
  expect(result?.copies).toHaveLength(4);
  expect(progress.phase).toBe('done');
});

test('a failure after planning removes what was written and surfaces the cause by type', async () => {
  const calls: Calls = [];
  const activities = fakeActivities(calls, {
    async verifyBackupCopies() {
      calls.push('verify');
      throw ApplicationFailure.nonRetryable('repository s3: dump reads back as sha256 x, expected y', ErrorType.ChecksumMismatch);
    },
  });
  const { error, progress } = await run(activities);
  expect(calls).toEqual([expect.stringMatching(/^plan:/), 'dump', 'verify', expect.stringMatching(/^discard:/)]);
  expect(error).toBeInstanceOf(WorkflowFailedError);
  const cause = error!.cause as ApplicationFailure;
  expect(cause.type).toBe(ErrorType.ChecksumMismatch);
  expect(cause.message).toContain('reads back as sha256');
  expect(progress.phase).toBe('failed');
  expect(progress.failure).toContain('ChecksumMismatch');
});

test('a failed plan writes nothing and needs no cleanup', async () => {
  const calls: Calls = [];
  const activities = fakeActivities(calls, {
    async planDatabaseBackup() {
      calls.push('plan');
      throw ApplicationFailure.nonRetryable('database "nope" does not exist', ErrorType.UnknownDatabase);
    },
  });
  const { error } = await run(activities);
  expect(calls).toEqual(['plan']);
  expect((error!.cause as ApplicationFailure).type).toBe(ErrorType.UnknownDatabase);
});

test.each([
  [{ hostTaskQueue: '' }, 'hostTaskQueue'],
  [{ compression: 'lz4' }, 'compression'],
  [{ repositories: [] }, 'repositories'],
])('rejects bad input %j without running anything', async (input, field) => {
  const calls: Calls = [];
  const { error } = await run(fakeActivities(calls), input as Partial<DatabaseBackupInput>);
  const cause = error!.cause as ApplicationFailure;
  expect(cause.type).toBe(ErrorType.InvalidInput);
  expect(cause.nonRetryable).toBe(true);
  expect(cause.message).toContain(`input.${field}`);
  expect(calls).toEqual([]);
});
