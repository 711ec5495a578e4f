// Rotating the encryption key (docs/SECURITY.md): backup hosts get the new public key, restore
// hosts add the new private key beside the old one. New backups are encrypted to the new key;
// the backups made before stay restorable with the old private key; a restore host that lacks
// the key a backup needs says so, naming it. Real gpg, PostgreSQL, Temporal, SeaweedFS.
import path from 'node:path';
import pino from 'pino';
import { runCommand } from '../engine/exec.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import type { Config } from '../common/config.js';
import { startWorker } from '../workers/worker.js';
import { backupDatabase, restoreDatabase } from '../workflows/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type DatabaseBackupResult } from '../common/types.js';
import { SOURCE_DB, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { tableChecksums } from './fixtures/postgres.js';

let env: BackupEnv;
let next: KeyPair;
let onlyNext: string;
const logger = pino({ level: 'silent' });
const backups: Record<'old' | 'new', DatabaseBackupResult> = {} as any;

function hostConfig(publicKeyFile: string, privateHome?: string): Config {
  return env.config('db', (raw) => {
    raw.encryption = { publicKeyFile, ...(privateHome ? { privateKeyHome: privateHome } : {}) };
    raw.restore = { serverUrl: env.source.url('postgres'), jobs: 1 };
  });
}

async function withWorker<T>(config: Config, body: () => Promise<T>): Promise<T> {
  const worker = await startWorker(config, logger, { bundleInProcess: true });
  try {
    return await body();
  } finally {
    await worker.shutdown();
  }
}

const backup = (id: string) =>
  env.temporal.client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId: id, args: [{ hostTaskQueue: hostTaskQueue('db') }] }) as Promise<DatabaseBackupResult>;

beforeAll(async () => {
  env = await startBackupEnv({ users: 20, sessionsPerUser: 2, activitiesPerSession: 2 });
  next = await ensureKeyPair(path.join(env.dir, 'next-key'), 'backupctl next <backupctl-next@localhost.invalid>');
  // Before: the old public key on the backup host.
  backups.old = await withWorker(hostConfig(env.keys.publicKeyFile), () => backup('rotation-old'));
  // The rotation: the new public key on the backup host...
  backups.new = await withWorker(hostConfig(next.publicKeyFile), () => backup('rotation-new'));
  // ...and the new private key added to the restore host's keyring, the old one kept.
  const exported = path.join(env.dir, 'next-secret.asc');
  await runCommand('gpg', ['--homedir', next.privateHome, '--batch', '--armor', '--output', exported, '--export-secret-keys', next.fingerprint]);
  await runCommand('gpg', ['--homedir', env.keys.privateHome, '--batch', '--import', exported]);
  onlyNext = next.privateHome;
}, 300_000);

afterAll(async () => {
  await env?.stop();
});

test('new backups are encrypted to the new key, old ones to the old key', () => {
  expect(backups.old.encryption).toContain(env.keys.fingerprint);
  expect(backups.new.encryption).toContain(next.fingerprint);
});

test('a restore host holding both private keys restores the backups made before and after the rotation', async () => {
  const sums = await tableChecksums(env.source, SOURCE_DB);
  await withWorker(hostConfig(next.publicKeyFile, env.keys.privateHome), async () => {
    for (const which of ['old', 'new'] as const) {
      const into = `rotation_${which}`;
      await env.temporal.client.workflow.execute(restoreDatabase, {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId: `rotation-restore-${which}`,
        args: [{ hostTaskQueue: hostTaskQueue('db'), backup: backups[which].backupId, into }],
      });
      expect(await tableChecksums(env.source, into)).toEqual(sums);
    }
  });
}, 300_000);

test('a restore host with only the new key refuses a backup made before, naming the key it needs', async () => {
  await withWorker(hostConfig(next.publicKeyFile, onlyNext), async () => {
    const failure = await env.temporal.client.workflow
      .execute(restoreDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'rotation-restore-missing', args: [{ hostTaskQueue: hostTaskQueue('db'), backup: backups.old.backupId, into: 'rotation_missing' }] })
      .then(() => undefined, (err: any) => err.cause);
    expect(failure).toMatchObject({ type: 'PrivateKeyMissing', message: expect.stringContaining(env.keys.fingerprint) });
  });
}, 300_000);
