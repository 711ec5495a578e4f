// Attack round 4: the sweep removes a LIVE backup run's objects, in every repository, on the
// word of a claim rewritten in one. The sweep asks Temporal about the run a claim names by
// workflow id AND run id; a run that Temporal does not know is "gone" (closed, its history
// deleted), and what it left is removed. Whoever can write to one repository (a NAS share)
// rewrites that repository's claim of a running backup with the same run id (claims are plain
// JSON, readable there) and another workflow id: Temporal knows no such run, so it is "gone".
// The sweep then removes the run's attempt folders in EVERY repository (in each, the claim's
// run id is the run's own), the local one and S3 included, which the attacker cannot write,
// and gives its claims back: the running backup loses its objects and its id, and fails.
//
// Claims of two repositories that disagree on the run (its workflow id or run id) prove
// nothing: the id is kept.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { attemptObjectKey, claimBackup, claimKey, readClaim } from '../engine/backupClaim.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { createSweepActivities } from '../activities/sweep.js';
import { validateConfig, type Config } from '../common/config.js';
import { decide, runKey, runOf, DEFAULT_UPLOAD_AGE_HOURS } from '../workflows/sweepRules.js';
import type { FoundLeftovers, RunRef, RunStanding } from '../common/sweepTypes.js';
import { startTemporal } from './fixtures/temporal.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'attack4-liverun-'));
let temporal: TestWorkflowEnvironment;
let config: Config;

beforeAll(async () => {
  temporal = await startTemporal();
  config = validateConfig(
    {
      host: 'attack4-liverun',
      temporal: { address: temporal.address, namespace: 'default' },
      database: { url: 'postgresql://nobody@127.0.0.1:1/app' },
      repositories: { nas: { type: 'filesystem', path: path.join(dir, 'nas') }, local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: path.join(dir, 'unused.asc') },
      signing: { required: false },
      restore: { workDir: dir },
      logLevel: 'warn',
    },
    'test config',
  );
}, 120_000);

afterAll(async () => {
  await temporal?.teardown();
  rmSync(dir, { recursive: true, force: true });
});

test("a claim rewritten in one repository never makes the sweep remove a running backup's objects anywhere", async () => {
  const nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
  const local = new FilesystemRepository('local', path.join(dir, 'local'));
  // A backup that is running: its workflow is open, its claims and first objects are written.
  const backupId = 'backup-database-2026-11-28';
  const handle = await temporal.client.workflow.start('backupDatabase', { taskQueue: 'nobody-serves-this', workflowId: backupId, args: [{ hostTaskQueue: 'nobody' }] });
  const live = { workflowId: backupId, runId: handle.firstExecutionRunId };
  await claimBackup([nas, local], 'database', backupId, live, new Date());
  const objects = (['globals', 'dump'] as const).map((role) => attemptObjectKey('database', backupId, live.runId, 1, role, 'zstd'));
  for (const repository of [nas, local]) for (const key of objects) await repository.put(key, Readable.from([Buffer.from(`live ${key}`)]));

  // The attacker rewrites the NAS claim: the same run id, another workflow id.
  const claim = await readClaim(nas, 'database', backupId);
  await nas.put(claimKey('database', backupId), Readable.from([Buffer.from(JSON.stringify({ ...(claim as object), workflowId: 'no-such-workflow' }))]));

  const activities = createSweepActivities({ config, repositories: [nas, local] });
  const env = new MockActivityEnvironment(
    { attempt: 1, activityId: '1', workflowNamespace: 'default', workflowExecution: { workflowId: 'sweep-leftovers-attack4', runId: 'f0f0f0f0-0000-4000-8000-000000000009' } } as Partial<Info>,
    { client: temporal.client },
  );
  const found: FoundLeftovers = await env.run(activities.findLeftovers, { uploadAgeHours: DEFAULT_UPLOAD_AGE_HOURS });
  const runs = found.leftovers.map(runOf).filter((r): r is RunRef => r !== undefined);
  const answers: RunStanding[] = await env.run(activities.describeRuns, { runs });
  const standings = new Map(runs.map((r, i) => [runKey(r), answers[i]]));
  for (const leftover of found.leftovers) {
    const r = runOf(leftover);
    const decision = decide(leftover, r && standings.get(runKey(r)), { removeRecoveryFolders: false, uploadAgeHours: DEFAULT_UPLOAD_AGE_HOURS });
    if (decision.act === 'keep') continue;
    await env.run(activities.sweepLeftover, { leftover, decision }).catch(() => undefined);
  }

  // The repository the attacker cannot write still holds the running backup's objects and claim.
  const missing: string[] = [];
  for (const key of objects) if (!(await local.stat(key))) missing.push(key);
  expect(missing).toEqual([]);
  expect(await readClaim(local, 'database', backupId)).toMatchObject(live);
  await handle.terminate('test over');
}, 120_000);
