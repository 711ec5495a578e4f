// Attack on the point-in-time recovery's steps around prepareRecoveryCluster (after 66cc0c1):
// - a stale cutover attempt (frozen until its workflow gave up, started the services on the old
//   cluster and stopped the recovered one) still ran pitr.cutoverCommand, pointing the
//   application at a stopped server;
// - a stale prepare attempt woken after its claim's check passed stopped the run's recovered
//   (maybe promoted) server and emptied its folder;
// - as root, the private folder beside the data directory was the postgres OS user's: a link it
//   planted as server.log made the root worker create a file of the link's choosing (say
//   /etc/ld.so.preload) and chown it to postgres.
// No Temporal server: the server's answer to "does this attempt stand" is faked.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { createPitrActivities } from '../activities/pitr.js';
import { serverOwner } from '../engine/localCluster.js';
import { claimDataDirectory, isRunning, markerPath, serverLog, startCluster, workDirOf } from '../engine/recoveryCluster.js';
import type { Config } from '../common/config.js';
import { startCluster as startPg, type PgCluster } from './fixtures/postgres.js';

let root: string;
let pg: PgCluster | undefined;

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'attack-pitr-steps-'));
  // Others (the postgres OS user) may pass through, as through any folder of a recovery's parent.
  chmodSync(root, 0o755);
});

afterAll(async () => {
  await pg?.stop();
  rmSync(root, { recursive: true, force: true });
});

/** A client whose server answers describeWorkflowExecution with `answer`. */
function answering(answer: () => unknown) {
  return {
    withAbortSignal: <R>(_signal: AbortSignal, fn: () => Promise<R>) => fn(),
    workflowService: { describeWorkflowExecution: async () => answer() },
  };
}

test('a cutover attempt that wakes after its workflow closed runs no cutover command', async () => {
  const mark = path.join(root, 'cutover-ran');
  const config = { host: 'attack-pitr-steps', pitr: { cutoverCommand: ['touch', mark] } } as unknown as Config;
  const activities = createPitrActivities({ config, repositories: [] } as never);
  const client = answering(() => ({ workflowExecutionInfo: { status: 3 }, pendingActivities: [] }));
  const env = new MockActivityEnvironment(
    { attempt: 1, activityId: '7', workflowNamespace: 'default', workflowExecution: { workflowId: 'pitr-stale-cutover', runId: 'run-stale-cutover' } } as Partial<Info>,
    { client: client as never },
  );
  const outcome = await env.run(activities.switchToRecoveredCluster, { dataDir: path.join(root, 'gone', 'data'), port: 5999, host: '127.0.0.1' }).then(
    () => 'switched',
    (err: any) => `${err.type}: ${err.message}`,
  );
  expect(outcome).toMatch(/^AttemptSuperseded: pointing the application at the recovered cluster .*has closed/);
  expect(existsSync(mark)).toBe(false);
});

test("a prepare attempt that finds its run's recovered server running neither stops it nor empties its folder", async () => {
  pg = await startPg();
  const dataDir = pg.dataDir;
  const runId = 'run-stale-claim-3c1d';
  // The run's marker, as its claim wrote it; the server runs: the workflow is past the prepare.
  mkdirSync(workDirOf(dataDir), { mode: 0o700 });
  writeFileSync(markerPath(dataDir), JSON.stringify({ runId, workflowId: 'pitr-stale-claim', port: pg.port, createdDataDir: true }) + '\n');
  const before = readdirSync(dataDir).sort();
  // Outside an activity the standing is "current": the answer a frozen attempt had before it froze.
  const outcome = await claimDataDirectory(dataDir, { runId, workflowId: 'pitr-stale-claim' }, undefined, pg.binDir).then(
    () => 'claimed',
    (err: any) => `${err.type}: ${err.message}`,
  );
  expect(outcome).toMatch(/^AttemptSuperseded: claiming the recovery folder .*the run's recovered server runs there/);
  expect(await isRunning(dataDir, pg.binDir)).toBe(true);
  expect(readdirSync(dataDir).sort()).toEqual(before);
}, 60_000);

const asRoot = process.getuid?.() === 0;
(asRoot ? test : test.skip)('the postgres OS user cannot make the root worker create and hand it a file through a link planted as server.log', async () => {
  const { uid, gid } = serverOwner().spawn;
  const rootOnly = path.join(root, 'root-only');
  mkdirSync(rootOnly, { mode: 0o700 });
  const target = path.join(rootOnly, 'ld.so.preload');
  const dataDir = path.join(root, 'planted-log', 'data');
  await claimDataDirectory(dataDir, { runId: 'run-planted-log-9e2a', workflowId: 'pitr-planted-log' }, 5998, undefined);
  // The postgres OS user (the live cluster's, or a superuser's COPY ... TO PROGRAM) tries its link.
  await execa('ln', ['-s', target, serverLog(dataDir)], { uid, gid, reject: false });
  // No PostgreSQL here: pg_ctl fails, after the log was made.
  await startCluster(dataDir, path.join(root, 'no-bin'), {}).catch(() => undefined);
  expect(existsSync(target)).toBe(false);
  expect(readdirSync(rootOnly)).toEqual([]);
});
