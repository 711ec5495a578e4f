// Attack on the backup path (real Temporal dev server, PostgreSQL, SeaweedFS, gpg): the commit
// step, writeBackupManifest, succeeds in some repositories and fails in another (a NAS that
// fills up or goes read-only at that moment; here a directory planted where the NAS's
// manifest goes makes its rename fail every time). The workflow then compensates:
// discardBackupObjects removes the dump and globals from every repository that has no
// manifest, although the manifests written in the other repositories still name those copies
// as verified. Promise 3 of the README: destructive cleanup "never touches a backup whose
// manifest exists".
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { WorkflowFailedError } from '@temporalio/client';
import pino from 'pino';
import { openRepositories } from '../engine/storage/index.js';
import type { Config } from '../common/config.js';
import { startWorker } from '../workers/worker.js';
import { backupBase, backupDatabase } from '../workflows/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type BackupManifest } from '../common/types.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

let env: BackupEnv;
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });

beforeAll(async () => {
  env = await startBackupEnv({ users: 50, sessionsPerUser: 2, activitiesPerSession: 2 });
}, 180_000);

afterAll(async () => {
  await env?.stop();
});

async function attackPartialManifest(component: 'database' | 'base', workflowId: string, patch?: (raw: any) => void): Promise<{ published: number; broken: string[] }> {
  const config: Config = env.config(workflowId, patch);
  const nasSpec = config.repositories.nas as { path: string };
  // Where the NAS's manifest goes, something the rename cannot replace.
  const blocker = path.join(nasSpec.path, component, workflowId, 'manifest.json');
  mkdirSync(blocker, { recursive: true });
  writeFileSync(path.join(blocker, 'keep'), 'x');

  const worker = await startWorker(config, logger, { bundleInProcess: true });
  let failed: unknown;
  try {
    const handle = await env.temporal.client.workflow.start(component === 'database' ? backupDatabase : backupBase, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId,
      args: [{ hostTaskQueue: hostTaskQueue(config.host) }],
    });
    await handle.result().catch((err: unknown) => (failed = err));
  } finally {
    await worker.shutdown();
  }
  expect(failed).toBeInstanceOf(WorkflowFailedError);

  // Whatever the failure, a manifest that survives anywhere is the catalog's word that the
  // backup is complete: every copy it names must still be there.
  const repositories = openRepositories(config);
  const broken: string[] = [];
  let published = 0;
  for (const holder of repositories) {
    const key = `${component}/${workflowId}/manifest.json`;
    const info = await holder.stat(key);
    if (!info) continue;
    published++;
    const manifest = JSON.parse(await text(await holder.get(key))) as BackupManifest;
    for (const copy of manifest.copies) {
      const where = repositories.find((r) => r.name === copy.repository)!;
      if (!(await where.stat(copy.key))) broken.push(`${holder.name}'s manifest names ${copy.key} in ${copy.repository}, which is gone`);
    }
  }
  return { published, broken };
}

test('a manifest write that fails in one repository never leaves a published manifest naming copies the compensation deleted', async () => {
  const { published, broken } = await attackPartialManifest('database', 'attack-partial-manifest');
  // A manifest is published everywhere or nowhere: the ones committed before the NAS failed
  // were taken back, so no manifest survives to name copies the compensation deleted.
  expect(published).toBe(0);
  expect(broken).toEqual([]);
}, 240_000);

test('the same for a base backup: its compensation never deletes copies a published base manifest names', async () => {
  const { published, broken } = await attackPartialManifest('base', 'attack-partial-base', (raw) => (raw.baseBackup = { url: env.source.url('postgres') }));
  expect(published).toBe(0);
  expect(broken).toEqual([]);
}, 240_000);
