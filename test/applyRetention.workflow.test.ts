// The retention workflow's orchestration, with fake activities on a real Temporal dev server:
// the decision is made once, at the workflow's clock, and recorded before anything is pruned;
// the spool is pruned first; a repository where the report could not be recorded, or that
// could not be read, is never pruned; one that fails to prune is reported and the others
// proceed; a dry run prunes nothing; bad input is refused before any activity runs.
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../activities/index.js';
import type { PlanRetentionInput, RetentionPlan } from '../activities/retention.js';
import { applyRetention } from '../workflows/index.js';
import type { ApplyRetentionInput, ApplyRetentionReport, RepositoryRetention } from '../common/retentionTypes.js';
import { ErrorType } from '../common/types.js';
import { workflowBundle } from '../workers/worker.js';
import { startTemporal } from './fixtures/temporal.js';

let env: TestWorkflowEnvironment;
let counter = 0;

beforeAll(async () => {
  env = await startTemporal();
});

afterAll(async () => {
  await env?.teardown();
});

function planned(repository: string, deleted: number, extra: Partial<RepositoryRetention> = {}): RepositoryRetention {
  return { repository, backups: { kept: 3, deleted, failed: 0, bytesFreed: deleted * 100 }, wal: { kept: 10, deleted: 0, failed: 0, bytesFreed: 0, unshipped: 0 }, notOurs: [], failures: [], ...extra };
}

interface Recorded {
  plans: PlanRetentionInput[];
  pruned: { reportId: string; repository: string; reportSha256?: string }[];
}

async function run(input: Partial<ApplyRetentionInput>, plan: RetentionPlan, pruneFails: string[] = []): Promise<{ rec: Recorded; report?: ApplyRetentionReport; failure?: unknown }> {
  const n = ++counter;
  const rec: Recorded = { plans: [], pruned: [] };
  const activities = {
    async planRetention(i: PlanRetentionInput) {
      rec.plans.push(i);
      return plan;
    },
    async pruneRepository(i: { reportId: string; repository: string; reportSha256?: string }) {
      rec.pruned.push(i);
      if (pruneFails.includes(i.repository)) throw ApplicationFailure.nonRetryable(`${i.repository} refused the deletes`, ErrorType.StorageAccessDenied);
      return { ...plan.planned.find((p) => p.repository === i.repository)! };
    },
  } as Partial<Activities> as Activities;
  const shared = await Worker.create({ connection: env.nativeConnection, taskQueue: `retention-shared-${n}`, workflowBundle: await workflowBundle() });
  const host = await Worker.create({ connection: env.nativeConnection, taskQueue: `retention-host-${n}`, activities });
  return shared.runUntil(
    host.runUntil(async () => {
      try {
        const report = await env.client.workflow.execute(applyRetention, {
          taskQueue: `retention-shared-${n}`,
          workflowId: `wf-retention-${n}-${Date.now()}`,
          args: [{ hostTaskQueue: `retention-host-${n}`, ...input } as ApplyRetentionInput],
        });
        return { rec, report };
      } catch (failure) {
        return { rec, failure };
      }
    }),
  );
}

test('decides once at the workflow clock, then prunes the spool first and only where the report was recorded and something goes', async () => {
  const plan: RetentionPlan = {
    recordedIn: ['local', 'nas', 's3'],
    reportSha256: 'ab'.repeat(32),
    order: ['local', 'nas', 's3', 'idle'],
    planned: [planned('s3', 2), planned('nas', 1), planned('local', 4), planned('idle', 0)],
  };
  const before = Date.now();
  const { rec, report } = await run({}, plan);
  expect(rec.plans).toHaveLength(1);
  expect(rec.plans[0].now).toBeGreaterThanOrEqual(before - 5000);
  expect(rec.plans[0].reportId).toMatch(/^\d{8}_\d{6}-[0-9a-f]{8}$/);
  expect(rec.pruned.map((p) => p.repository)).toEqual(['local', 'nas', 's3']);
  expect(new Set(rec.pruned.map((p) => p.reportId))).toEqual(new Set([rec.plans[0].reportId]));
  // Each prune checks the report it reads against the digest the decision returned.
  expect(rec.pruned.map((p) => p.reportSha256)).toEqual(['ab'.repeat(32), 'ab'.repeat(32), 'ab'.repeat(32)]);
  expect(report!.reportSha256).toBe('ab'.repeat(32));
  expect(report!.repositories.map((r) => r.repository)).toEqual(['local', 'nas', 's3', 'idle']);
  expect(report!.reportId).toBe(rec.plans[0].reportId);
});

test('a repository not recorded in, or unreachable, is never pruned; one that fails is reported and the rest still go', async () => {
  const plan: RetentionPlan = {
    recordedIn: ['local', 'nas'],
    order: ['local', 'nas', 's3'],
    planned: [planned('local', 2), planned('nas', 3), planned('s3', 5, { failures: ['the decision could not be recorded here, so nothing is deleted here: down'] })],
  };
  const { rec, report } = await run({}, plan, ['local']);
  expect(rec.pruned.map((p) => p.repository)).toEqual(['local', 'nas']);
  const local = report!.repositories.find((r) => r.repository === 'local')!;
  expect(local.backups.deleted).toBe(0);
  expect(local.backups.kept).toBe(5);
  expect(local.failures.join()).toMatch(/not pruned: .*local refused the deletes/);
  expect(report!.repositories.find((r) => r.repository === 'nas')!.backups.deleted).toBe(3);

  const unreachable: RetentionPlan = { recordedIn: ['local'], order: ['local', 's3'], planned: [planned('local', 1), planned('s3', 0, { unreachable: 'connect ECONNREFUSED' })] };
  const second = await run({}, unreachable);
  expect(second.rec.pruned.map((p) => p.repository)).toEqual(['local']);
});

test('a dry run records the decision and prunes nothing', async () => {
  const plan: RetentionPlan = { recordedIn: ['local'], order: ['local'], planned: [planned('local', 7)] };
  const { rec, report } = await run({ dryRun: true, components: ['database'], repositories: ['local'] }, plan);
  expect(rec.plans[0]).toMatchObject({ dryRun: true, components: ['database'], repositories: ['local'] });
  expect(rec.pruned).toEqual([]);
  expect(report!.dryRun).toBe(true);
  expect(report!.repositories[0].backups.deleted).toBe(7);
});

test.each([
  [{ components: ['logs'] }, /input.components is \["logs"\]/],
  [{ components: [] }, /input.components/],
  [{ repositories: ['../etc'] }, /input.repositories/],
  [{ dryRun: 'yes' }, /input.dryRun/],
])('bad input %j is refused, non-retryable, before any activity', async (input, message) => {
  const { rec, failure } = await run(input as Partial<ApplyRetentionInput>, { recordedIn: [], order: [], planned: [] });
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const cause = (failure as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause.type).toBe(ErrorType.InvalidInput);
  expect(cause.nonRetryable).toBe(true);
  expect(cause.message).toMatch(message);
  expect(rec.plans).toEqual([]);
});
