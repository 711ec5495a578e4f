// The verification's verdict on a backup's copies, with fake activities on a real Temporal dev
// server: every copy is audited (also after a failed restore) before the scratch database is
// dropped and the report written; a restorable backup with a damaged copy completes but does
// not read as healthy (state, verdict, exit code 3), and a failed audit is not "whole".
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../activities/index.js';
import { EXIT_COPIES_DAMAGED, describeVerification, verificationExitCode } from '../client/commands/verify.js';
import { verifyBackup } from '../workflows/index.js';
import type { CatalogSource, CopyAudit, RepositoryCopyCheck, VerificationReport } from '../common/restoreTypes.js';
import { ErrorType, type StoredObject } from '../common/types.js';
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

const objects: StoredObject[] = [
  { role: 'dump', key: 'database/b1/dump.pgcustom.zst.gpg', bytes: 100, sha256: 'a'.repeat(64), plainBytes: 300 },
  { role: 'globals', key: 'database/b1/globals.sql.zst.gpg', bytes: 10, sha256: 'b'.repeat(64), plainBytes: 30 },
];

const source: CatalogSource = {
  kind: 'backup',
  backupId: 'b1',
  takenAt: new Date(Date.now() - 3600_000).toISOString(),
  database: 'app',
  owner: 'app',
  compression: 'zstd',
  recipientFingerprint: 'F'.repeat(40),
  objects,
  rowCounts: { auth_user: 3 },
  repositories: ['local', 'nas', 's3'],
};

function copy(repository: string, states: Partial<Record<StoredObject['role'], RepositoryCopyCheck['objects'][number]['state']>> = {}): RepositoryCopyCheck {
  const checks = objects.map((o) => ({ role: o.role, key: o.key, state: states[o.role] ?? ('ok' as const), bytesRead: states[o.role] ? 0 : o.bytes }));
  return { repository, manifest: { key: 'database/b1/manifest.json', state: 'ok' }, objects: checks, ok: checks.every((c) => c.state === 'ok') };
}

function audit(...repositories: RepositoryCopyCheck[]): CopyAudit {
  return { repositories, damaged: repositories.filter((r) => !r.ok).map((r) => r.repository), bytesRead: 1 };
}

const WHOLE = audit(copy('local'), copy('nas'), copy('s3'));
const DAMAGED = audit(copy('local', { dump: 'checksum-mismatch' }), copy('nas', { dump: 'missing' }), copy('s3'));

interface Recorded {
  calls: string[];
  reports: VerificationReport[];
  auditQueue?: string;
}

function fakes(rec: Recorded, overrides: Partial<Activities> = {}): Activities {
  const base: Partial<Activities> = {
    async resolveRestoreSource() {
      rec.calls.push('resolve');
      return { source, liveDatabase: 'app' };
    },
    async restoreIntoNewDatabase(input) {
      rec.calls.push('restore');
      return { database: input.database, copy: { repository: 's3', key: objects[0].key }, skipped: [], createdRoles: [], plainBytes: 1, restoreSeconds: 1 };
    },
    async inspectRestoredDatabase(input) {
      rec.calls.push('inspect');
      return { database: input.database, rowCounts: { auth_user: 3 }, countMismatches: [], freshness: {}, checks: [], ok: true };
    },
    async auditBackupCopies(input) {
      rec.calls.push(`audit:${input.backupId}:${input.objects.length}`);
      rec.auditQueue = Context.current().info.taskQueue;
      return WHOLE;
    },
    async dropRestoredDatabase() {
      rec.calls.push('drop');
      return true;
    },
    async writeVerificationReport(report) {
      rec.calls.push('report');
      rec.reports.push(report);
      return ['local'];
    },
  };
  return { ...base, ...overrides } as Activities;
}

async function run(activities: Activities, during?: (handle: any) => Promise<void>) {
  const n = ++counter;
  const hostQueue = `backup@unit-audit-${n}-${Date.now()}`;
  const sharedQueue = `shared-audit-${n}-${Date.now()}`;
  const bundle = await workflowBundle();
  const shared = await Worker.create({ connection: env.nativeConnection, taskQueue: sharedQueue, workflowBundle: bundle, activities });
  const host = await Worker.create({ connection: env.nativeConnection, taskQueue: hostQueue, activities });
  return shared.runUntil(
    host.runUntil(async () => {
      const handle = await env.client.workflow.start(verifyBackup, { taskQueue: sharedQueue, workflowId: `wf-audit-${n}-${Date.now()}`, args: [{ hostTaskQueue: hostQueue, backup: 'latest' }] });
      await during?.(handle);
      try {
        return { hostQueue, result: await handle.result() };
      } catch (err) {
        return { hostQueue, error: (err as WorkflowFailedError).cause as ApplicationFailure };
      }
    }),
  );
}

test('every copy whole: audited on the host queue before cleanup, verified, exit 0', async () => {
  const rec: Recorded = { calls: [], reports: [] };
  const { result, hostQueue } = await run(fakes(rec));
  expect(rec.calls).toEqual(['resolve', 'restore', 'inspect', 'audit:b1:2', 'drop', 'report']);
  expect(rec.auditQueue).toBe(hostQueue);
  expect(result).toMatchObject({ ok: true, state: 'verified', verdict: 'verified, all 3 copies whole', copies: WHOLE });
  expect(rec.reports[0]).toMatchObject({ state: 'verified', copies: WHOLE });
  expect(verificationExitCode(result)).toBe(0);
});

test('restorable, two copies damaged: the report says so, names each, and the exit code is not 0', async () => {
  const rec: Recorded = { calls: [], reports: [] };
  const { result, error } = await run(fakes(rec, { auditBackupCopies: async () => DAMAGED }));
  expect(error).toBeUndefined();
  expect(result).toMatchObject({ ok: true, state: 'copies-damaged', verdict: 'restorable, 2 of 3 copies damaged (local, nas)' });
  expect(rec.reports[0]).toMatchObject({ state: 'copies-damaged', verdict: 'restorable, 2 of 3 copies damaged (local, nas)', copies: DAMAGED });
  expect(verificationExitCode(result)).toBe(EXIT_COPIES_DAMAGED);
  const text = describeVerification(result!);
  expect(text).toContain('backup b1 restorable, 2 of 3 copies damaged (local, nas)');
  expect(text).toContain('damaged copy local: database/b1/dump.pgcustom.zst.gpg checksum mismatch');
  expect(text).toContain('damaged copy nas: database/b1/dump.pgcustom.zst.gpg missing');
  expect(text).not.toMatch(/damaged copy s3/);
});

test('a failed restore: the copies are still audited and recorded, then the restore failure is the verdict', async () => {
  const rec: Recorded = { calls: [], reports: [] };
  const none = audit(copy('local', { dump: 'checksum-mismatch' }), copy('nas', { dump: 'missing' }), copy('s3', { dump: 'unreadable' }));
  const activities = fakes(rec, {
    async restoreIntoNewDatabase() {
      rec.calls.push('restore');
      throw ApplicationFailure.nonRetryable('no whole copy', ErrorType.NoUsableCopy);
    },
    async auditBackupCopies() {
      rec.calls.push('audit');
      return none;
    },
  });
  const { error } = await run(activities);
  expect(error!.type).toBe(ErrorType.NoUsableCopy);
  expect(rec.calls).toEqual(['resolve', 'restore', 'audit', 'drop', 'report']);
  expect(rec.reports[0]).toMatchObject({ ok: false, state: 'failed', verdict: 'FAILED, 3 of 3 copies damaged (local, nas, s3)', copies: none, scratchDropped: true });
});

test('failed checks with damaged copies: VerificationFailed names the checks and every damaged copy', async () => {
  const rec: Recorded = { calls: [], reports: [] };
  const activities = fakes(rec, {
    async inspectRestoredDatabase(input) {
      return { database: input.database, rowCounts: {}, countMismatches: ['auth_user: expected 3 rows, found 0'], freshness: {}, checks: [], ok: false };
    },
    auditBackupCopies: async () => DAMAGED,
  });
  const { error } = await run(activities);
  expect(error!.type).toBe(ErrorType.VerificationFailed);
  expect(error!.message).toContain('expected 3 rows, found 0');
  expect(error!.message).toContain('2 of 3 copies damaged (local, nas)');
  expect(error!.message).toContain('nas: database/b1/dump.pgcustom.zst.gpg missing');
});

test('an audit that cannot run: the restore still counts, but the copies read as unchecked, never whole', async () => {
  const rec: Recorded = { calls: [], reports: [] };
  const activities = fakes(rec, {
    async auditBackupCopies() {
      rec.calls.push('audit');
      throw ApplicationFailure.nonRetryable('repository s3: access denied', ErrorType.StorageAccessDenied);
    },
  });
  const { result } = await run(activities);
  expect(rec.calls).toEqual(['resolve', 'restore', 'inspect', 'audit', 'drop', 'report']);
  expect(result).toMatchObject({ ok: true, state: 'copies-unchecked', verdict: 'restorable, copies not checked', scratchDropped: true });
  expect(result!.copyAuditFailure).toContain('StorageAccessDenied');
  expect(verificationExitCode(result)).toBe(EXIT_COPIES_DAMAGED);
});

test('cancelled during the audit: the scratch database is dropped and the report written', async () => {
  const rec: Recorded = { calls: [], reports: [] };
  const activities = fakes(rec, {
    async auditBackupCopies() {
      rec.calls.push('audit');
      const ctx = Context.current();
      for (;;) {
        ctx.heartbeat({ bytesRead: 1 });
        await new Promise((r) => setTimeout(r, 100));
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
      }
    },
  });
  const { error } = await run(activities, async (handle) => {
    while (!rec.calls.includes('audit')) await new Promise((r) => setTimeout(r, 50));
    await handle.cancel();
  });
  expect(error).toBeDefined();
  expect(rec.calls.slice(-2)).toEqual(['drop', 'report']);
  expect(rec.reports[0].copyAuditFailure).toBeDefined();
  expect(rec.reports[0].state).not.toBe('verified');
});
