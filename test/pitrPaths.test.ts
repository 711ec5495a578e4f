// Point-in-time recovery owns only what it made, on real components: a real base backup (taken
// by the backupBase workflow on a Temporal dev server), unpacked by the real activities into
// folders an operator may share with other things, and a real recovered server started there.
// What sat beside the data directory stays untouched; a folder another run made (the same
// workflow id reused) is refused, not emptied; a retry of the same run takes back only its own.
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import pino from 'pino';
import { createPitrActivities } from '../activities/pitr.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Config } from '../common/config.js';
import { startWorker } from '../workers/worker.js';
import { backupBase } from '../workflows/index.js';
import type { RecoveryCluster } from '../common/pitrTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

const WORKFLOW_ID = 'pitr-paths';
let env: BackupEnv;
let config: Config;
let root: string;
let baseBackupId: string;
let stopLsn: string;
let activities: ReturnType<typeof createPitrActivities>;
const prepared = new Set<string>();

beforeAll(async () => {
  env = await startBackupEnv({ users: 20, sessionsPerUser: 1, activitiesPerSession: 1 });
  config = env.config('paths', (raw) => {
    raw.baseBackup = { url: env.source.url('postgres') };
    raw.encryption.privateKeyHome = env.keys.privateHome;
    raw.pitr = { restoreCommand: 'false %f %p' };
  });
  const worker = await startWorker(config, pino({ level: 'silent' }), { bundleInProcess: true });
  try {
    const result = await env.temporal.client.workflow.execute(backupBase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'backup-base-paths', args: [{ hostTaskQueue: hostTaskQueue('paths') }] });
    baseBackupId = result.backupId;
    stopLsn = result.backup.stopLsn;
  } finally {
    await worker.shutdown();
  }
  activities = createPitrActivities({ config, repositories: openRepositories(config), binDir: env.source.binDir });
  // The recovered server runs as postgres: it must reach the folders below.
  root = mkdtempSync(path.join(os.tmpdir(), 'backupctl-pitrpaths-'));
  chmodSync(root, 0o755);
}, 170_000);

afterAll(async () => {
  for (const dataDir of prepared) {
    await execa(path.join(env.source.binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', 'stop'], { reject: false, uid: statSync(dataDir, { throwIfNoEntry: false })?.uid, cwd: '/' });
  }
  if (root) rmSync(root, { recursive: true, force: true });
  await env?.stop();
});

function inRun(runId: string) {
  return new MockActivityEnvironment({ workflowExecution: { workflowId: WORKFLOW_ID, runId } } as Partial<Info>);
}

async function prepare(runId: string, dataDir: string): Promise<RecoveryCluster> {
  prepared.add(dataDir);
  return inRun(runId).run(activities.prepareRecoveryCluster, { workflowId: WORKFLOW_ID, baseBackupId, target: { kind: 'lsn' as const, value: stopLsn }, dataDir });
}

async function failure(promise: Promise<unknown>): Promise<{ type?: string; nonRetryable?: boolean; message: string }> {
  try {
    await promise;
  } catch (err) {
    return err as { type?: string; nonRetryable?: boolean; message: string };
  }
  throw new Error('expected a failure');
}

/** Every file under a folder with its content (folders as '/'), to show nothing changed. */
function snapshot(folder: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(folder, { recursive: true }) as string[]) {
    const full = path.join(folder, entry);
    const info = lstatSync(full);
    out[entry] = info.isSymbolicLink() ? `-> ${readlinkSync(full)}` : info.isDirectory() ? '/' : readFileSync(full, 'utf8');
  }
  return out;
}

test('keeps what the operator had beside the data directory: a wal-prefetch folder, a server.log, a sockets folder', async () => {
  const parent = path.join(root, 'shared');
  mkdirSync(path.join(parent, 'wal-prefetch'), { recursive: true });
  writeFileSync(path.join(parent, 'wal-prefetch', 'notes.txt'), 'the operator keeps this\n');
  mkdirSync(path.join(parent, 'sockets'));
  writeFileSync(path.join(parent, 'server.log'), "another server's log\n", { mode: 0o600 });
  writeFileSync(path.join(parent, 'backupctl-recovery.json'), '{"not":"ours"}\n');
  const before = snapshot(parent);

  const cluster = await prepare('run-keep-1', path.join(parent, 'data'));
  await inRun('run-keep-1').run(activities.startRecoveryCluster, cluster);
  const promoted = (await inRun('run-keep-1').run(activities.waitForPromotion, cluster)) as { timeline: number };
  expect(promoted.timeline).toBe(2);
  await inRun('run-keep-1').run(activities.stopRecoveryCluster, { dataDir: cluster.dataDir });

  const after = snapshot(parent);
  for (const [name, content] of Object.entries(before)) expect({ name, content: after[name] }).toEqual({ name, content });
  expect(statSync(path.join(parent, 'sockets')).uid).toBe(0);
  // Ours: the data directory and one private folder beside it, nothing else.
  expect(readdirSync(parent).filter((n) => !(n in before)).sort()).toEqual(['.data.backupctl', 'data']);
  // Root's as root (the server's group passes through to its log and the WAL fetched ahead), else 0700.
  expect(statSync(path.join(parent, '.data.backupctl')).mode & 0o777).toBe(process.getuid?.() === 0 ? 0o710 : 0o700);
  expect(readdirSync(path.join(parent, '.data.backupctl')).sort()).toEqual(['owner.json', 'server.log', 'wal-prefetch']);
});

test('a run never takes a data directory another run of the same workflow id made: refused, nothing removed; a retry of the owning run takes it back', async () => {
  const parent = path.join(root, 'reused');
  mkdirSync(parent);
  writeFileSync(path.join(parent, 'keep.txt'), 'beside it\n');
  const dataDir = path.join(parent, 'data');
  await prepare('run-first', dataDir);
  const made = readdirSync(dataDir).sort();
  expect(made).toContain('PG_VERSION');

  const refused = await failure(prepare('run-second', dataDir));
  expect(refused).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
  expect(refused.message).toContain(`data directory ${dataDir} was not made by this recovery run (run-second): ${path.join(parent, '.data.backupctl')} already exists`);
  expect(readdirSync(dataDir).sort()).toEqual(made);

  // The first run's retry (after a crash): empties what it made, unpacks again.
  writeFileSync(path.join(dataDir, 'left-by-the-crashed-attempt'), '');
  await prepare('run-first', dataDir);
  expect(existsSync(path.join(dataDir, 'left-by-the-crashed-attempt'))).toBe(false);
  expect(readdirSync(dataDir)).toContain('PG_VERSION');
  expect(readFileSync(path.join(parent, 'keep.txt'), 'utf8')).toBe('beside it\n');
});

test('refuses a data directory that is not empty, a symbolic link or a file, and a private folder it did not make, changing nothing', async () => {
  const parent = path.join(root, 'refused');
  mkdirSync(path.join(parent, 'full'), { recursive: true });
  writeFileSync(path.join(parent, 'full', 'PG_VERSION'), '15\n');
  mkdirSync(path.join(parent, 'elsewhere'));
  symlinkSync(path.join(parent, 'elsewhere'), path.join(parent, 'link'));
  writeFileSync(path.join(parent, 'file'), 'x');
  mkdirSync(path.join(parent, '.taken.backupctl'));
  writeFileSync(path.join(parent, '.taken.backupctl', 'owner.json'), JSON.stringify({ runId: 'someone-else', workflowId: WORKFLOW_ID, port: 5999, createdDataDir: true }));
  const before = snapshot(parent);
  const cases: [string, RegExp][] = [
    ['full', /it is not empty/],
    ['link', /it is a symbolic link/],
    ['file', /it exists and is not a folder/],
    ['taken', /\.taken\.backupctl already exists and holds no marker of this run/],
  ];
  for (const [name, why] of cases) {
    const refused = await failure(prepare('run-refused', path.join(parent, name)));
    expect({ name, type: refused.type, nonRetryable: refused.nonRetryable }).toEqual({ name, type: 'InvalidInput', nonRetryable: true });
    expect(refused.message).toMatch(why);
  }
  expect(snapshot(parent)).toEqual(before);
});

test('a data directory deep enough that a socket path beside it would pass the kernel limit still recovers (TCP only)', async () => {
  const parent = path.join(root, 'a-folder-name-long-enough-to-push-paths-past-one-hundred-and-seven-bytes');
  mkdirSync(parent);
  const cluster = await prepare('run-deep-7f3c9a1e', path.join(parent, 'data'));
  expect(`${cluster.dataDir}/../.data.backupctl/sockets/.s.PGSQL.${cluster.port}`.length).toBeGreaterThan(107);
  await inRun('run-deep-7f3c9a1e').run(activities.startRecoveryCluster, cluster);
  const promoted = (await inRun('run-deep-7f3c9a1e').run(activities.waitForPromotion, cluster)) as { timeline: number };
  expect(promoted.timeline).toBe(2);
  await inRun('run-deep-7f3c9a1e').run(activities.stopRecoveryCluster, { dataDir: cluster.dataDir });
});
