// Orchestration of the restore, verification and drill workflows with fake activities: the
// live database is swapped only after verification, the services are started again on every
// path (failure and cancellation included), and scratch databases are always dropped.
import { ApplicationFailure } from '@temporalio/common';
import { WorkflowFailedError, type Workflow } from '@temporalio/client';
import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../activities/index.js';
import { recoveryDrill, restoreDatabase, verifyBackup } from '../workflows/index.js';
import type { CatalogSource, DatabaseInspection, RestoredDatabase } from '../common/restoreTypes.js';
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

const source: CatalogSource = {
  kind: 'backup',
  backupId: 'b1',
  takenAt: new Date(Date.now() - 3600_000).toISOString(),
  database: 'app',
  owner: 'app',
  compression: 'zstd',
  recipientFingerprint: 'F'.repeat(40),
  objects: [],
  rowCounts: { auth_user: 3 },
  repositories: ['local', 's3'],
};

type RestoreActivityName =
  | 'resolveRestoreSource'
  | 'restoreIntoNewDatabase'
  | 'inspectRestoredDatabase'
  | 'dropRestoredDatabase'
  | 'stopApplicationServices'
  | 'startApplicationServices'
  | 'swapLiveDatabase'
  | 'allowLiveDatabaseConnections'
  | 'writeVerificationReport'
  | 'auditBackupCopies'
  | 'writeDrillReport'
  | 'checkHealthUrl';

function fakes(calls: string[], overrides: Partial<Activities> = {}): Activities {
  const inspection = (database: string, ok = true): DatabaseInspection => ({
    database,
    rowCounts: { auth_user: 3 },
    countMismatches: ok ? [] : ['auth_user: expected 3 rows, found 2'],
    freshness: {},
    checks: [],
    ok,
  });
  const base: Pick<Activities, RestoreActivityName> = {
    async resolveRestoreSource() {
      calls.push('resolve');
      return { source, liveDatabase: 'app' };
    },
    async restoreIntoNewDatabase(input): Promise<RestoredDatabase> {
      calls.push(`restore:${input.database}`);
      return { database: input.database, copy: { repository: 'local', key: 'k' }, skipped: [], createdRoles: [], plainBytes: 1, restoreSeconds: 1 };
    },
    async inspectRestoredDatabase(input) {
      calls.push('inspect');
      return inspection(input.database);
    },
    async dropRestoredDatabase(input) {
      calls.push(`drop:${input.database}`);
      return true;
    },
    async stopApplicationServices() {
      calls.push('stop');
      return ['web'];
    },
    async startApplicationServices() {
      calls.push('start');
      return ['web'];
    },
    async swapLiveDatabase(input) {
      calls.push(`swap:${input.live}->${input.keepAs}`);
      return { live: input.live, keptAs: input.keepAs, sessionsEnded: 0 };
    },
    async allowLiveDatabaseConnections(input) {
      calls.push(`reopen:${input.live},${input.keepAs.replace(/_\d{8}_\d{6}$/, '')}`);
      return [];
    },
    async writeVerificationReport(report) {
      calls.push(`report:${report.ok}`);
      return ['local'];
    },
    async auditBackupCopies() {
      // Its order and verdicts are proved in copyAudit.workflow.test.ts.
      return { repositories: [], damaged: [], bytesRead: 0 };
    },
    async writeDrillReport(report) {
      calls.push(`drill-report:${report.ok}`);
      return ['s3'];
    },
    async checkHealthUrl(input) {
      calls.push('health');
      return { name: input.url, ok: true, detail: 'HTTP 200' };
    },
  };
  return { ...base, ...overrides } as Activities;
}

async function run<W extends Workflow>(workflow: W, activities: Activities, input: object, during?: (handle: any) => Promise<void>) {
  const n = ++counter;
  const hostQueue = `backup@unit-restore-${n}-${Date.now()}`;
  const sharedQueue = `shared-restore-${n}-${Date.now()}`;
  const bundle = await workflowBundle();
  const shared = await Worker.create({ connection: env.nativeConnection, taskQueue: sharedQueue, workflowBundle: bundle, activities });
  const host = await Worker.create({ connection: env.nativeConnection, taskQueue: hostQueue, activities });
  return shared.runUntil(
    host.runUntil(async () => {
      const handle = await env.client.workflow.start(workflow, { taskQueue: sharedQueue, workflowId: `wf-restore-${n}`, args: [{ hostTaskQueue: hostQueue, ...input }] } as any);
      await during?.(handle);
      try {
        return { result: (await handle.result()) as Awaited<ReturnType<W>> };
      } catch (err) {
        return { error: (err as WorkflowFailedError).cause as ApplicationFailure };
      }
    }),
  );
}

describe('restoreDatabase', () => {
  test('without --replace: restore, verify, and the live database is never touched', async () => {
    const calls: string[] = [];
    const { result } = await run(restoreDatabase, fakes(calls), { backup: 'latest' });
    expect(calls).toEqual(['resolve', expect.stringMatching(/^restore:app_restore_\d{8}_\d{6}$/), 'inspect']);
    expect(result!.swap).toBeUndefined();
  });

  test('with --replace: stop, swap, start, in that order, after verification', async () => {
    const calls: string[] = [];
    const { result } = await run(restoreDatabase, fakes(calls), { backup: 'b1', replace: true, into: 'app_new' });
    expect(calls).toEqual(['resolve', 'restore:app_new', 'inspect', 'stop', expect.stringMatching(/^swap:app->app_pre_restore_\d{8}_\d{6}$/), 'start']);
    expect(result!.swap).toMatchObject({ live: 'app', servicesStopped: ['web'], servicesStarted: ['web'] });
  });

  test('a failed verification: no swap, services untouched, the new database dropped', async () => {
    const calls: string[] = [];
    const activities = fakes(calls, {
      async inspectRestoredDatabase(input) {
        calls.push('inspect');
        return { database: input.database, rowCounts: {}, countMismatches: ['auth_user: expected 3 rows, found 2'], freshness: {}, checks: [], ok: false };
      },
    });
    const { error } = await run(restoreDatabase, activities, { backup: 'b1', replace: true, into: 'app_new' });
    expect(error!.type).toBe(ErrorType.VerificationFailed);
    expect(error!.message).toContain('expected 3 rows, found 2');
    expect(calls).toEqual(['resolve', 'restore:app_new', 'inspect', 'drop:app_new']);
  });

  // A failed swap: the live database is let in again before the services start (a swap whose
  // server stayed away past its retries left it refusing connections), the services are
  // started again and the new database dropped. A failed stop: no swap began, nothing to reopen.
  test.each([
    ['swapLiveDatabase', 'swap', ErrorType.SwapFailed, ['stop', 'swap', 'reopen:app,app_pre_restore', 'start', 'drop:app_new']],
    ['stopApplicationServices', 'stop', ErrorType.ServiceCommandFailed, ['stop', 'start', 'drop:app_new']],
  ] as const)('a failed %s: undone in order, and the error says why', async (activity, call, type, after) => {
    const calls: string[] = [];
    const activities = fakes(calls, {
      async [activity]() {
        calls.push(call);
        throw ApplicationFailure.nonRetryable(`${call} refused`, type);
      },
    });
    const { error } = await run(restoreDatabase, activities, { backup: 'b1', replace: true, into: 'app_new' });
    expect({ type: error!.type, message: error!.message }).toEqual({ type, message: `${call} refused` });
    expect(calls).toEqual(['resolve', 'restore:app_new', 'inspect', ...after]);
  });

  test('cancelled while the services are stopped: they are started again', async () => {
    const calls: string[] = [];
    const activities = fakes(calls, {
      async swapLiveDatabase() {
        calls.push('swap');
        // Waits for the cancellation, as a long swap would.
        const ctx = Context.current();
        for (;;) {
          ctx.heartbeat();
          await new Promise((r) => setTimeout(r, 100));
          if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
        }
      },
    });
    const { error } = await run(restoreDatabase, activities, { backup: 'b1', replace: true, into: 'app_new' }, async (handle) => {
      while (!calls.includes('swap')) await new Promise((r) => setTimeout(r, 50));
      await handle.cancel();
    });
    expect(error).toBeDefined();
    expect(calls.slice(-3)).toEqual(['reopen:app,app_pre_restore', 'start', 'drop:app_new']);
  });

  test.each([
    [{ backup: '' }, 'backup'],
    [{ backup: 'latest', into: 'Bad-Name' }, 'into'],
    [{ backup: 'latest', jobs: 0 }, 'jobs'],
    [{ backup: 'latest', into: 'app', replace: true }, 'into'],
  ])('rejects %j naming input.%s', async (input, field) => {
    const calls: string[] = [];
    const { error } = await run(restoreDatabase, fakes(calls), input);
    expect(error).toMatchObject({ type: ErrorType.InvalidInput, nonRetryable: true, message: expect.stringContaining(`input.${field}`) });
    expect(calls.filter((c) => c.startsWith('restore') || c === 'stop')).toEqual([]);
  });
});

describe('verifyBackup', () => {
  test('a failed restore still drops the scratch database and records a failed report', async () => {
    const calls: string[] = [];
    const activities = fakes(calls, {
      async restoreIntoNewDatabase(input) {
        calls.push(`restore:${input.database}`);
        throw ApplicationFailure.nonRetryable('no whole copy', ErrorType.NoUsableCopy);
      },
    });
    const { error } = await run(verifyBackup, activities, { backup: 'latest' });
    expect(error!.type).toBe(ErrorType.NoUsableCopy);
    expect(calls).toEqual(['resolve', expect.stringMatching(/^restore:backupctl_verify_[0-9a-f]{8}$/), expect.stringMatching(/^drop:backupctl_verify_/), 'report:false']);
  });

  test('count mismatches fail the verification (non-zero exit) after the report is written', async () => {
    const calls: string[] = [];
    const activities = fakes(calls, {
      async inspectRestoredDatabase(input) {
        calls.push('inspect');
        return { database: input.database, rowCounts: {}, countMismatches: ['auth_user: expected 3 rows, found 0'], freshness: {}, checks: [], ok: false };
      },
    });
    const { error } = await run(verifyBackup, activities, { backup: 'latest' });
    expect(error!.type).toBe(ErrorType.VerificationFailed);
    expect(calls.slice(-2)).toEqual([expect.stringMatching(/^drop:/), 'report:false']);
  });

  test('refuses a file path: verification is of catalog backups', async () => {
    const { error } = await run(verifyBackup, fakes([]), { backup: '/tmp/x.backup' });
    expect(error!.type).toBe(ErrorType.InvalidInput);
  });
});

describe('recoveryDrill', () => {
  test('passes with RTO and RPO measured, the health URL checked, the database torn down', async () => {
    const calls: string[] = [];
    const { result } = await run(recoveryDrill, fakes(calls), { backup: 'latest', repository: 's3', healthUrl: 'http://127.0.0.1:1/health' });
    expect(result).toMatchObject({ ok: true, torndown: true, health: { ok: true } });
    expect(result!.rpoSeconds).toBeGreaterThan(3000);
    expect(result!.rtoSeconds).toBeGreaterThanOrEqual(0);
    expect(calls).toEqual(['resolve', expect.stringMatching(/^restore:backupctl_drill_/), 'inspect', 'health', expect.stringMatching(/^drop:/), 'drill-report:true']);
  });

  test('an application archive is refused clearly until file backups exist', async () => {
    const { error } = await run(recoveryDrill, fakes([]), { backup: 'latest', repository: 's3', application: 'latest' });
    expect(error).toMatchObject({ type: ErrorType.InvalidInput, message: expect.stringContaining('input.application') });
  });
});
