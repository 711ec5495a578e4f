// Retention on real components: real nightly dumps (PostgreSQL, gpg, zstd) into two filesystem
// repositories and SeaweedFS, made at simulated dates. The catalog records the workflow's
// clock, and the clock is injected: Temporal's time-skipping test server runs the backups and
// the prune, and the test moves its clock between runs (never a sleep). Then: the dry run
// deletes nothing and prints every decision with its reason; the prune keeps exactly what each
// repository's rule says; every kept dump restores and reads back whole (a copy retention let
// go of is not taken for a lost one); what is not ours, and a folder no manifest speaks for,
// are left alone.
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import pino from 'pino';
import YAML from 'yaml';
import { projectTool } from '../client/dev/tools.js';
import type { Config } from '../common/config.js';
import type { ApplyRetentionReport } from '../common/retentionTypes.js';
import type { VerificationReport } from '../common/restoreTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { collectStatus } from '../client/commands/status.js';
import { listManifests } from '../engine/catalog.js';
import { readReport, type RetentionReportFile } from '../engine/prune.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Repository } from '../engine/storage/repository.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { applyRetention, backupDatabase, verifyBackup } from '../workflows/index.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

const HOST = 'retention-a';
const DAY = 86_400_000;
/** A fixed start, so the calendar is known: Sunday 25 November 2040, 10:00 in Paris. */
const START = Date.UTC(2040, 10, 25, 9);
/** Days after START of each nightly backup: b0 Sun 25 Nov (2040-W47) ... b7 Thu 27 Dec (2040-W52). */
const OFFSETS = [0, 1, 2, 8, 9, 30, 31, 32];

let env: BackupEnv;
let clock: TestWorkflowEnvironment;
let client: Client;
let config: Config;
let worker: RunningWorker;
let repositories: Repository[];
const ids: string[] = [];

async function inRepository(name: string): Promise<string[]> {
  const repository = repositories.find((r) => r.name === name)!;
  return (await listManifests(repository, 'database')).map((m) => m.backupId).sort();
}

const named = (...indexes: number[]) => indexes.map((i) => ids[i]).sort();

async function prune(dryRun: boolean, workflowId: string): Promise<ApplyRetentionReport> {
  return client.workflow.execute(applyRetention, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue(HOST), dryRun }] });
}

beforeAll(async () => {
  env = await startBackupEnv({ users: 20, sessionsPerUser: 1, activitiesPerSession: 1 });
  clock = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: projectTool('temporal-test-server') } } });
  // A plain client: the clock moves only when the test moves it (the time-skipping client
  // would let it run ahead while it waits for a result).
  client = new Client({ connection: clock.connection });
  config = env.config(HOST, (raw) => {
    raw.temporal.address = clock.address;
    // This host restores too (the verifications below).
    raw.encryption.privateKeyHome = env.keys.privateHome;
    raw.restore = { serverUrl: env.source.url('postgres'), jobs: 2 };
    raw.retention = {
      timezone: 'Europe/Paris',
      database: { local: { daily: 2, weekly: 2 }, offsite: { monthly: 2 }, repositories: { nas: { daily: 1 } } },
    };
  });
  repositories = openRepositories(config);
  worker = await startWorker(config, pino({ level: process.env.TEST_LOG ? 'info' : 'silent' }), { bundleInProcess: true });
  await clock.sleep(START - (await clock.currentTimeMs()));
  let at = START;
  for (const [i, offset] of OFFSETS.entries()) {
    await clock.sleep(START + offset * DAY - at);
    at = START + offset * DAY;
    const result = await client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId: `retention-nightly-${i}`, args: [{ hostTaskQueue: hostTaskQueue(HOST) }] });
    ids.push(result.backupId);
  }
  // Not ours, and a folder no manifest speaks for: never touched.
  mkdirSync(path.join(localPath(), 'database', 'half-made'), { recursive: true });
  writeFileSync(path.join(localPath(), 'database', 'half-made', 'dump.pgcustom.zst.gpg'), 'half a dump of a run that died');
  writeFileSync(path.join(localPath(), 'database', 'notes.txt'), 'an operator note');
  mkdirSync(path.join(localPath(), 'other-tool'), { recursive: true });
  writeFileSync(path.join(localPath(), 'other-tool', 'x'), 'another tool');
}, 240_000);

function localPath(): string {
  const local = config.repositories.local;
  if (local.type !== 'filesystem') throw new Error('local is a filesystem repository');
  return local.path;
}

afterAll(async () => {
  await worker?.shutdown();
  await clock?.teardown();
  await env?.stop();
});

describe('eight nightly dumps over five weeks, then retention', () => {
  let dry: ApplyRetentionReport;
  let recorded: RetentionReportFile;

  test('every backup was made at its simulated date', async () => {
    const manifests = await listManifests(repositories.find((r) => r.name === 's3')!, 'database');
    expect(manifests.map((m) => Date.parse(m.finishedAt) - START).map((ms) => Math.floor(ms / DAY))).toEqual(OFFSETS);
  });

  test('a dry run records its decision in every repository, with a reason for each backup, and deletes nothing', async () => {
    dry = await prune(true, 'retention-dry-run');
    expect(dry.dryRun).toBe(true);
    expect(dry.recordedIn).toEqual(['local', 'nas', 's3']);
    for (const name of ['local', 'nas', 's3']) expect(await inRepository(name)).toEqual(named(0, 1, 2, 3, 4, 5, 6, 7));
    recorded = await readReport(repositories[0], dry.reportId);
    const local = Object.fromEntries(recorded.backups.filter((b) => b.repository === 'local').map((b) => [b.backupId, b]));
    expect(local[ids[3]]).toMatchObject({ action: 'keep', reasons: ['weekly 2040-W49'] });
    expect(local[ids[5]]).toMatchObject({ action: 'keep', reasons: ['weekly 2040-W52'] });
    expect(local[ids[7]].reasons).toEqual(['daily 2040-12-27', 'the newest complete backup']);
    expect(local[ids[0]]).toMatchObject({ action: 'delete', reasons: ['complete, and kept by no rule of the policy'] });
    expect(recorded.forTheSweep).toEqual(['local: database/half-made/ (no manifest in any repository)']);
    expect(recorded.notes).toEqual([{ repository: 'local', notes: ['database/notes.txt: not under a backup\'s folder; left alone'] }]);
  });

  test('backupctl prune --dry-run prints every decision with its reason', async () => {
    const file = path.join(env.dir, `${HOST}.yaml`);
    writeFileSync(file, YAML.stringify(config));
    const cli = await execa('node', [path.resolve('bin/backupctl.js'), '--config', file, 'prune', '--dry-run', '--workflow-id', 'retention-cli-dry-run'], { reject: false });
    expect({ code: cli.exitCode, stderr: cli.stderr }).toMatchObject({ code: 0 });
    expect(cli.stdout).toContain('dry run: nothing was deleted');
    expect(cli.stdout).toContain(`keep   local database ${ids[3]}: weekly 2040-W49`);
    expect(cli.stdout).toContain(`DELETE nas database ${ids[6]}: complete, and kept by no rule of the policy`);
    expect(cli.stdout).toContain(`keep   s3 database ${ids[0]}: monthly 2040-11`);
    expect(cli.stdout).toMatch(/local: backups would delete 4, kept 4;/);
    for (const name of ['local', 'nas', 's3']) expect(await inRepository(name)).toHaveLength(8);
  });

  test('the prune keeps exactly what each repository\'s rule says, and leaves alone what is not ours', async () => {
    const report = await prune(false, 'retention-prune');
    expect(report.repositories.map((r) => [r.repository, r.backups.deleted, r.backups.kept, r.backups.failed])).toEqual([
      ['local', 4, 4, 0],
      ['nas', 7, 1, 0],
      ['s3', 5, 3, 0],
    ]);
    // local {daily 2, weekly 2}: 26 and 27 Dec; the first of W52 (25 Dec) and of W49 (3 Dec).
    expect(await inRepository('local')).toEqual(named(3, 5, 6, 7));
    // nas {daily 1}: the newest.
    expect(await inRepository('nas')).toEqual(named(7));
    // s3 {monthly 2}: the first of December (3 Dec) and of November (25 Nov), and the newest.
    expect(await inRepository('s3')).toEqual(named(0, 3, 7));
    // Nothing of a deleted backup is left in a filesystem repository, not even its folder.
    expect(existsSync(path.join(localPath(), 'database', ids[0]))).toBe(false);
    for (const kept of ['half-made/dump.pgcustom.zst.gpg', 'notes.txt']) expect(existsSync(path.join(localPath(), 'database', kept))).toBe(true);
    expect(existsSync(path.join(localPath(), 'other-tool', 'x'))).toBe(true);
    // Run again a minute later (report ids name the second): the same policy deletes nothing more.
    await clock.sleep(60_000);
    const again = await prune(false, 'retention-prune-again');
    expect(again.repositories.map((r) => r.backups.deleted)).toEqual([0, 0, 0]);
    // Status shows the newest retention run, read back from the repositories.
    const status = await collectStatus(undefined, 'not asked', config, repositories);
    expect(status.latestRetention).toMatchObject({ reportId: again.reportId, dryRun: false, deletedBackups: 0, foundIn: 'local' });
  });

  test.each([
    // Every backup kept anywhere: b0 (s3), b3 (local, s3), b5 and b6 (local), b7 (all three).
    [0, 's3 only'],
    [3, 'local and s3'],
    [5, 'local only'],
    [6, 'local only'],
    [7, 'every repository'],
  ])('kept backup b%i (%s) restores, and reads back whole: a pruned copy is not a lost one', async (index) => {
    const report: VerificationReport = await client.workflow.execute(verifyBackup, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId: `retention-verify-${index}`,
      args: [{ hostTaskQueue: hostTaskQueue(HOST), backup: ids[index], amcheck: false }],
    });
    expect(report.state).toBe('verified');
    expect(report.copies?.damaged).toEqual([]);
  });
});
