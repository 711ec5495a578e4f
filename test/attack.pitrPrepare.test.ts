// Attack on prepareRecoveryCluster after 66cc0c1 (each attempt unpacks, fetches ahead and
// configures in folders of its own, and moves them into place only while it stands):
// - an attempt frozen just after its standing check passed (the answer came, then SIGSTOP)
//   woke after a newer attempt of its run had claimed, prepared and started the recovered
//   server: it removed the newer attempt's wal-prefetch, the folder the server's
//   restore_command replays from, before its own move failed;
// - as root, the data directory was the postgres OS user's from the claim on: during the
//   unpack that user (the live cluster's, or a superuser's COPY ... TO PROGRAM) swapped
//   .backupctl-unpack-<attempt> for a link to a root-only folder, and the root worker wrote
//   the recovery settings there, chmodded it, and moved its files into the data directory.
// Real base backup (backupBase workflow), real gpg, zstd and tar, a real recovered server; the
// server's answer to "does this attempt stand" is faked.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import pino from 'pino';
import { serverOwner } from '../engine/localCluster.js';
import { createPitrActivities } from '../activities/pitr.js';
import { prefetchDirOf, workDirOf } from '../engine/recoveryCluster.js';
import type { Repository } from '../engine/storage/repository.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Config } from '../common/config.js';
import { startWorker } from '../workers/worker.js';
import { backupBase } from '../workflows/index.js';
import type { RecoveryCluster } from '../common/pitrTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

let env: BackupEnv;
let config: Config;
let root: string;
let baseBackupId: string;
let stopLsn: string;
const started: string[] = [];

beforeAll(async () => {
  env = await startBackupEnv({ users: 20, sessionsPerUser: 1, activitiesPerSession: 1 });
  config = env.config('attack-prepare', (raw) => {
    raw.baseBackup = { url: env.source.url('postgres') };
    raw.encryption.privateKeyHome = env.keys.privateHome;
    raw.pitr = { restoreCommand: 'false %f %p' };
  });
  const worker = await startWorker(config, pino({ level: 'silent' }), { bundleInProcess: true });
  try {
    const result = await env.temporal.client.workflow.execute(backupBase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'backup-base-attack-prepare', args: [{ hostTaskQueue: hostTaskQueue('attack-prepare') }] });
    baseBackupId = result.backupId;
    stopLsn = result.backup.stopLsn;
  } finally {
    await worker.shutdown();
  }
  root = mkdtempSync(path.join(os.tmpdir(), 'backupctl-attack-prepare-'));
  // Others (the postgres OS user) may pass through, as through the parents of any recovery.
  chmodSync(root, 0o755);
}, 170_000);

afterAll(async () => {
  for (const dataDir of started) {
    await execa(path.join(env.source.binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', 'stop'], { reject: false, uid: statSync(dataDir, { throwIfNoEntry: false })?.uid, cwd: '/' });
  }
  if (root) rmSync(root, { recursive: true, force: true });
  await env?.stop();
});

/** A repository whose reads of the base backup's data, just before their last byte, await `beforeEnd`. */
function withHookBeforeEnd(inner: Repository, beforeEnd: () => Promise<void>): Repository {
  return Object.assign(Object.create(inner) as Repository, {
    async get(key: string, options?: { signal?: AbortSignal }): Promise<Readable> {
      const body = await inner.get(key, options);
      if (!key.startsWith('base/') || key.endsWith('.json')) return body;
      const hook = new Transform({
        transform: (chunk, _enc, done) => done(null, chunk),
        flush: (done) => void beforeEnd().then(() => done(), done),
      });
      body.on('error', (err) => hook.destroy(err));
      return body.pipe(hook);
    },
  });
}

/** A client whose server says the run is open and activity 1 pending with attempt `pendingAttempt()`; `before` runs first. */
function answering(pendingAttempt: () => number, before: () => void = () => undefined) {
  return {
    withAbortSignal: <R>(_signal: AbortSignal, fn: () => Promise<R>) => fn(),
    workflowService: {
      describeWorkflowExecution: async () => {
        before();
        return { workflowExecutionInfo: { status: 1 }, pendingActivities: [{ activityId: '1', attempt: pendingAttempt(), state: 1 }] };
      },
    },
  };
}

function attempt(attemptNo: number, runId: string, client: unknown) {
  return new MockActivityEnvironment(
    { attempt: attemptNo, activityId: '1', workflowNamespace: 'default', workflowExecution: { workflowId: 'attack-prepare', runId } } as Partial<Info>,
    { client: client as never },
  );
}

test("an attempt frozen after its standing check passed leaves the newer attempt's WAL fetched ahead and data directory alone", async () => {
  const dataDir = path.join(root, 'frozen-after-check', 'data');
  const segment = path.join(prefetchDirOf(dataDir), '000000010000000000000099');
  let asked = 0;
  // The second question is the one before the move. Its answer ("you stand") came; then the
  // attempt froze, and the newer attempt claimed (removing this attempt's folders), prepared
  // and started its server, which replays from its wal-prefetch.
  const newerAttempt = () => {
    if (++asked !== 2) return;
    rmSync(path.join(dataDir, '.backupctl-unpack-1'), { recursive: true, force: true });
    for (const entry of readdirSync(workDirOf(dataDir))) if (entry.includes('.attempt-')) rmSync(path.join(workDirOf(dataDir), entry), { recursive: true, force: true });
    mkdirSync(prefetchDirOf(dataDir));
    writeFileSync(segment, 'the newer attempt fetched this\n');
    writeFileSync(path.join(dataDir, 'PG_VERSION'), 'the newer attempt\n');
  };
  const activities = createPitrActivities({ config, repositories: openRepositories(config), binDir: env.source.binDir });
  const outcome = await attempt(1, 'run-frozen-after-check-1', answering(() => 1, newerAttempt))
    .run(activities.prepareRecoveryCluster, { workflowId: 'attack-prepare', baseBackupId, target: { kind: 'lsn' as const, value: stopLsn }, dataDir })
    .then(
      () => 'prepared',
      (err: Error) => `failed: ${err.message}`,
    );
  expect(asked).toBe(2);
  expect(outcome).toMatch(/^failed: /);
  expect(existsSync(segment) && readFileSync(segment, 'utf8')).toBe('the newer attempt fetched this\n');
  expect(readdirSync(dataDir)).toEqual(['PG_VERSION']);
  expect(readFileSync(path.join(dataDir, 'PG_VERSION'), 'utf8')).toBe('the newer attempt\n');
}, 120_000);

const asRoot = process.getuid?.() === 0;
(asRoot ? test : test.skip)('the postgres OS user cannot swap the unpack folder for a link while root unpacks: nothing of a root-only folder is written, chmodded or moved', async () => {
  const { uid, gid } = serverOwner().spawn;
  const rootOnly = path.join(root, 'root-only');
  mkdirSync(rootOnly, { mode: 0o750 });
  writeFileSync(path.join(rootOnly, 'canary'), 'root keeps this\n', { mode: 0o600 });
  const dataDir = path.join(root, 'swapped', 'data');
  const unpackDir = path.join(dataDir, '.backupctl-unpack-1');
  let tried: { exitCode?: number; stderr?: string } | undefined;
  const swap = async () => {
    if (tried) return;
    tried = await execa('sh', ['-c', 'mv "$1" "$1.moved" && ln -s "$2" "$1"', 'swap', unpackDir, rootOnly], { uid, gid, reject: false, cwd: '/' });
  };
  const runId = 'run-swapped-unpack-4b7e';
  const client = answering(() => 1);
  const activities = createPitrActivities({ config, repositories: openRepositories(config).map((r) => withHookBeforeEnd(r, swap)), binDir: env.source.binDir });
  const outcome = await attempt(1, runId, client)
    .run(activities.prepareRecoveryCluster, { workflowId: 'attack-prepare', baseBackupId, target: { kind: 'lsn' as const, value: stopLsn }, dataDir })
    .then(
      (cluster) => cluster as RecoveryCluster,
      (err: Error) => `failed: ${err.message}`,
    );
  expect(tried).toBeDefined();
  expect(readdirSync(rootOnly)).toEqual(['canary']);
  expect(statSync(rootOnly).mode & 0o777).toBe(0o750);
  expect(readFileSync(path.join(rootOnly, 'canary'), 'utf8')).toBe('root keeps this\n');

  // The swap was refused; the prepared folder is the server's and it recovers.
  expect(tried!.exitCode).not.toBe(0);
  expect(typeof outcome).toBe('object');
  const cluster = outcome as RecoveryCluster;
  expect(statSync(dataDir).uid).toBe(uid);
  expect(readdirSync(dataDir)).toEqual(expect.arrayContaining(['PG_VERSION', 'base', 'recovery.signal']));
  expect(readdirSync(dataDir).filter((e) => e.startsWith('.backupctl'))).toEqual([]);
  started.push(dataDir);
  await attempt(1, runId, client).run(activities.startRecoveryCluster, cluster);
  const promoted = (await attempt(1, runId, client).run(activities.waitForPromotion, cluster)) as { timeline: number };
  expect(promoted.timeline).toBe(2);
}, 180_000);
