// Attack (issue 8, items 2 and 8 / README promises 4 and 6): every check-and-act on a restore
// database (create, mark, drop) runs under withNameLock (restoreTarget.ts): a session-level
// pg_advisory_lock(hashtext('backupctl-database:<name>')) taken on the restore server's admin
// database, with no timeout and deaf to the activity's cancellation. Advisory locks are open
// to every role that can connect to that database (CONNECT is PUBLIC's by default; the restore
// server defaults to the live server), and the key is public. So any unprivileged role can
// hold the lock for a scratch name and every drop of it (the workflow's compensation, the
// verify/drill teardown) waits for ever: the activity neither fails nor heeds cancellation,
// its attempts time out one after another, each leaving a blocked connection behind, and the
// restored copy (plaintext data) stays on the server.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { MockActivityEnvironment } from '@temporalio/testing';
import { loadRecipient, stopAgent } from '../engine/encryption.js';
import { permanent } from '../engine/errors.js';
import { spawnStreaming } from '../engine/exec.js';
import { streamToRepositories } from '../engine/pipeline.js';
import { createRestoreActivities } from '../activities/restore.js';
import { markerFor } from '../engine/restoreTarget.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { validateConfig, type Config } from '../common/config.js';
import type { CatalogSource } from '../common/restoreTypes.js';
import { ErrorType, type StoredObject } from '../common/types.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'attack-namelock-'));
const LIVE = 'live_app';
const RUN = '77777777-2222-3333-4444-555555555555';
let cluster: PgCluster;
let keys: KeyPair;
let config: Config;
let dump: StoredObject;
const local = new FilesystemRepository('local', path.join(dir, 'local'));

beforeAll(async () => {
  [cluster, keys] = await Promise.all([startCluster(), ensureKeyPair(path.join(dir, 'keys'))]);
  await cluster.query('postgres', `CREATE DATABASE ${LIVE}`);
  await cluster.query('postgres', 'CREATE ROLE mallory LOGIN');
  config = validateConfig(
    {
      host: 'attack-namelock',
      temporal: { address: '127.0.0.1:7233', namespace: 'default' },
      database: { url: cluster.url(LIVE) },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      restore: { serverUrl: cluster.url('postgres'), workDir: dir, jobs: 1 },
      logLevel: 'warn',
    },
    'test config',
  );
  await cluster.query('postgres', 'CREATE DATABASE dump_source');
  await cluster.query('dump_source', 'CREATE TABLE t AS SELECT g AS id, md5(g::text) AS a FROM generate_series(1, 20000) g');
  const recipient = await loadRecipient(keys.publicKeyFile);
  try {
    const abort = new AbortController();
    const key = 'database/attack-namelock/dump.pgcustom.zst.gpg';
    const stored = await streamToRepositories({
      producer: spawnStreaming(path.join(cluster.binDir, 'pg_dump'), ['--format=custom', '--compress=0', '--no-password'], { env: cluster.env('dump_source'), signal: abort.signal }),
      classifyProducerError: (err) => permanent(ErrorType.DumpFailed, String(err)),
      compression: { algorithm: 'zstd', level: 3, threads: 0 },
      recipient,
      repositories: [local],
      key,
      abort,
    });
    dump = { role: 'dump', key, bytes: stored.bytes, sha256: stored.sha256, plainBytes: stored.plainBytes };
  } finally {
    await recipient.dispose();
  }
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown; timedOut?: true }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ timedOut: true }>((resolve) => (timer = setTimeout(() => resolve({ timedOut: true }), ms)));
  try {
    return await Promise.race([promise.then((value) => ({ value }), (error) => ({ error })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

test("an unprivileged role holding the name's advisory lock cannot make the scratch database's drop wait for ever, nor deafen it to cancellation", async () => {
  // A scratch database this run made (as restoreIntoNewDatabase marks it).
  await cluster.query('postgres', 'CREATE DATABASE scratch_locked');
  const marker = markerFor({ workflowId: 'attack-namelock', runId: RUN, attempt: 1 }, 'restored from backup x');
  await cluster.query('postgres', `COMMENT ON DATABASE scratch_locked IS '${marker}'`);
  // mallory: no privilege but PUBLIC's CONNECT on the admin database.
  const mallory = new pg.Client({ connectionString: cluster.url('postgres', 'mallory') });
  mallory.on('error', () => undefined);
  await mallory.connect();
  await mallory.query("SELECT pg_advisory_lock(hashtext('backupctl-database:scratch_locked'))");
  const env = new MockActivityEnvironment({ attempt: 1, workflowExecution: { workflowId: 'attack-namelock', runId: RUN } });
  const restore = createRestoreActivities({ config, repositories: [local], binDir: cluster.binDir });
  const dropping = env.run(restore.dropRestoredDatabase, { database: 'scratch_locked', workflowId: 'attack-namelock' });
  dropping.catch(() => undefined);
  try {
    // A quick activity (start-to-close 2 minutes): it must finish or fail with a clear error
    // well within that, and must end when cancelled.
    const first = await settledWithin(dropping, 20_000);
    if (first.timedOut) {
      env.cancel();
      const afterCancel = await settledWithin(dropping, 5000);
      expect({ droppedOrFailedWithin20s: false, endedAfterCancel: !afterCancel.timedOut }).toEqual({ droppedOrFailedWithin20s: true, endedAfterCancel: true });
    }
  } finally {
    await mallory.end().catch(() => undefined);
    await dropping.catch(() => undefined);
    await cluster.query('postgres', 'DROP DATABASE IF EXISTS scratch_locked WITH (FORCE)');
  }
}, 90_000);

test("the same lock held on a restore's target name: the restore must end when cancelled, not wait for ever with its staging folder", async () => {
  const source: CatalogSource = {
    kind: 'backup',
    backupId: 'attack-namelock',
    takenAt: new Date().toISOString(),
    database: 'dump_source',
    compression: 'zstd',
    recipientFingerprint: keys.fingerprint,
    objects: [dump],
    rowCounts: { t: 20000 },
    repositories: ['local'],
  };
  const mallory = new pg.Client({ connectionString: cluster.url('postgres', 'mallory') });
  mallory.on('error', () => undefined);
  await mallory.connect();
  await mallory.query("SELECT pg_advisory_lock(hashtext('backupctl-database:restore_locked'))");
  const env = new MockActivityEnvironment({ attempt: 1, workflowExecution: { workflowId: 'attack-namelock', runId: RUN } });
  const restore = createRestoreActivities({ config, repositories: [local], binDir: cluster.binDir });
  const restoring = env.run(restore.restoreIntoNewDatabase, { workflowId: 'attack-namelock', source, database: 'restore_locked' });
  restoring.catch(() => undefined);
  try {
    // Wait until the restore is at the lock (createRestoreDatabase, inside the copy's consumer):
    // a session waiting on it, or (now that it is only tried, never waited on) trying it.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows } = await cluster.query<{ n: number }>('postgres', "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename <> 'mallory' AND ((wait_event_type = 'Lock' AND wait_event = 'advisory') OR query LIKE '%pg_try_advisory_lock%') AND pid <> pg_backend_pid()");
      if (rows[0].n > 0) break;
      if (Date.now() > deadline) throw new Error('the restore never reached the lock');
      await new Promise((r) => setTimeout(r, 50));
    }
    // The heartbeat timeout or the workflow's cancellation reaches the activity as a cancel.
    env.cancel();
    const ended = await settledWithin(restoring, 10_000);
    expect({ endedAfterCancel: !ended.timedOut }).toEqual({ endedAfterCancel: true });
  } finally {
    await mallory.end().catch(() => undefined);
    await restoring.catch(() => undefined);
    await cluster.query('postgres', 'DROP DATABASE IF EXISTS restore_locked WITH (FORCE)');
  }
}, 90_000);
