// The monitor's orchestration over hours, on Temporal's time-skipping test server with fake
// activities: a problem that lasts three hours is told once when it opens, reminded at
// alerts.reminderMinutes, told once when resolved; a look that cannot be made opens
// monitor.blind once and leaves the other problems open (nothing is known of them).
import { ApplicationFailure } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../activities/index.js';
import { projectTool } from '../client/dev/tools.js';
import type { Alert } from '../common/alertTypes.js';
import type { DeliveryOutcome, IntegrityCursor, MonitorFindings, MonitorLookInput } from '../common/monitorTypes.js';
import { workflowBundle } from '../workers/worker.js';
import { monitor } from '../workflows/index.js';
import { monitorQuery } from '../workflows/messages.js';

const MINUTE = 60_000;
let env: TestWorkflowEnvironment;
let counter = 0;

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: projectTool('temporal-test-server') } } });
});

afterAll(async () => {
  await env?.teardown();
});

interface Look {
  /** Server time of the look (its activity's scheduled time: the skipped clock, not the wall's). */
  at: number;
  input: MonitorLookInput | undefined;
}

/**
 * Runs a monitor whose looks answer `findings(look, index)` (or throw), for `forMs` of server
 * time; every delivered alert is recorded, every channel takes it.
 */
async function run(findings: (look: Look, index: number) => MonitorFindings['problems'], forMs: number, intervalSeconds = 900, integrity?: (look: Look, index: number) => IntegrityCursor) {
  const n = ++counter;
  const delivered: Alert[] = [];
  const looks: Look[] = [];
  const activities = {
    async monitorChecks(input?: MonitorLookInput): Promise<MonitorFindings> {
      const look = { at: Context.current().info.currentAttemptScheduledTimestampMs, input };
      looks.push(look);
      const problems = findings(look, looks.length - 1);
      return { host: 'pg', reminderMinutes: 60, problems, ...(integrity ? { integrity: integrity(look, looks.length - 1) } : {}) };
    },
    async failedRunsSince() {
      return [];
    },
    async alertChannels() {
      return ['fake'];
    },
    async deliverAlerts(input: { alerts: { alert: Alert; only?: string[] }[] }): Promise<DeliveryOutcome[]> {
      delivered.push(...input.alerts.map((a) => a.alert));
      return input.alerts.map(({ alert }) => ({ alert, results: [{ channel: 'fake', ok: true, retryable: false }] }));
    },
  } as Partial<Activities> as Activities;
  const shared = await Worker.create({ connection: env.nativeConnection, taskQueue: `monitor-shared-${n}`, workflowBundle: await workflowBundle(), activities });
  const host = await Worker.create({ connection: env.nativeConnection, taskQueue: `monitor-host-${n}`, activities });
  return shared.runUntil(
    host.runUntil(async () => {
      const handle = await env.client.workflow.start(monitor, {
        taskQueue: `monitor-shared-${n}`,
        workflowId: `wf-monitor-${n}`,
        args: [{ hostTaskQueue: `monitor-host-${n}`, intervalSeconds, failedRunsSeconds: intervalSeconds }],
      });
      await env.sleep(forMs);
      const state = await handle.query(monitorQuery);
      await handle.terminate('test over');
      return { delivered, looks, state };
    }),
  );
}

const events = (alerts: Alert[], key: string) => alerts.filter((a) => a.key === key).map((a) => a.event);

test('a problem that lasts 3 hours, reminderMinutes 60: opened, reminded twice (at 1 h and 2 h), resolved once', async () => {
  let first: number | undefined;
  const { delivered, looks, state } = await run((look) => {
    first ??= look.at;
    return look.at - first < 180 * MINUTE ? [{ key: 'database.stale', message: `the newest database backup is ${(look.at - first) / MINUTE} minutes old` }] : [];
  }, 240 * MINUTE);
  // Looks every 15 minutes: 0 ... 225 (a little later each time: a tick is its work plus 15 min).
  expect(looks.length).toBeGreaterThanOrEqual(15);
  // The look at 3 h (a few ms past it) no longer sees the problem, so the reminder that would
  // be due then is never told: 2 reminders, not 3.
  expect(events(delivered, 'database.stale')).toEqual(['opened', 'reminder', 'reminder', 'resolved']);
  const reminders = delivered.filter((a) => a.event === 'reminder').map((a) => Date.parse(a.at) - first!);
  expect(reminders.map((ms) => Math.round(ms / MINUTE))).toEqual([60, 120]);
  expect(delivered.filter((a) => a.event === 'reminder').every((a) => a.openedAt === delivered[0].at)).toBe(true);
  expect(state.open).toEqual({});
  expect(state.undelivered).toEqual([]);
});

test('a look that fails opens monitor.blind once and keeps the other problems open; two good looks in a row resolve blind only', async () => {
  const { delivered, looks, state } = await run((_, i) => {
    if (i === 1 || i === 2) throw ApplicationFailure.nonRetryable('the repositories cannot be read: EACCES', 'StorageAccessDenied');
    return [{ key: 'database.copy-missing', message: 'the newest backup is missing from: s3' }];
  }, 65 * MINUTE);
  // Looks at 0, 15 (fails), 30 (fails), 45, 60 min: blind resolved at 60 (missed by 45 and 60);
  // copy-missing, open all along, is reminded of at 60.
  expect(looks.length).toBe(5);
  expect(events(delivered, 'database.copy-missing')).toEqual(['opened', 'reminder']);
  expect(events(delivered, 'monitor.blind')).toEqual(['opened', 'resolved']);
  const blind = delivered.find((a) => a.key === 'monitor.blind')!;
  expect(blind).toMatchObject({ severity: 'critical' });
  expect(blind.text).toContain('the repositories cannot be read: EACCES');
  expect(Object.keys(state.open)).toEqual(['database.copy-missing']);
  expect(state.lastLookError).toBeUndefined();
});

test('the integrity sample\'s cursor: each look is given the one the last good look returned, with the interval; a failed look keeps it', async () => {
  const cursorOf = (i: number): IntegrityCursor => ({ sampledThrough: new Date(Date.UTC(2026, 10, 1, 0, i)).toISOString(), recheck: [`integrity.corrupt:nas:database/b/dump-${i}`] });
  const { looks, state } = await run(
    (_, i) => {
      if (i === 2) throw ApplicationFailure.nonRetryable('the repositories cannot be read: EACCES', 'StorageAccessDenied');
      return [];
    },
    50 * MINUTE,
    900,
    (_, i) => cursorOf(i),
  );
  expect(looks.length).toBe(4);
  expect(looks.map((l) => l.input)).toEqual([{ intervalSeconds: 900 }, { intervalSeconds: 900, integrity: cursorOf(0) }, { intervalSeconds: 900, integrity: cursorOf(1) }, { intervalSeconds: 900, integrity: cursorOf(1) }]);
  expect(state.integrity).toEqual(cursorOf(3));
});

test('while a waiting alert is being sent again, the query still shows it waiting (not an empty list)', async () => {
  const n = ++counter;
  let calls = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const activities = {
    async monitorChecks(): Promise<MonitorFindings> {
      return { host: 'pg', reminderMinutes: 60, problems: [{ key: 'database.none', message: 'there is no complete database backup' }] };
    },
    async failedRunsSince() {
      return [];
    },
    async alertChannels() {
      return ['email (smtp)'];
    },
    async deliverAlerts(input: { alerts: { alert: Alert; only?: string[] }[] }): Promise<DeliveryOutcome[]> {
      calls++;
      if (calls === 1) return input.alerts.map(({ alert }) => ({ alert, results: [{ channel: 'email (smtp)', ok: false, retryable: true, error: 'connect ECONNREFUSED' }] }));
      await gate;
      return input.alerts.map(({ alert }) => ({ alert, results: [{ channel: 'email (smtp)', ok: true, retryable: false }] }));
    },
  } as Partial<Activities> as Activities;
  const shared = await Worker.create({ connection: env.nativeConnection, taskQueue: `monitor-shared-${n}`, workflowBundle: await workflowBundle(), activities });
  const host = await Worker.create({ connection: env.nativeConnection, taskQueue: `monitor-host-${n}`, activities });
  await shared.runUntil(
    host.runUntil(async () => {
      // Real seconds here: nothing waits on a result, so the test server does not skip time.
      const handle = await env.client.workflow.start(monitor, { taskQueue: `monitor-shared-${n}`, workflowId: `wf-monitor-${n}`, args: [{ hostTaskQueue: `monitor-host-${n}`, intervalSeconds: 1, failedRunsSeconds: 1 }] });
      const deadline = Date.now() + 20_000;
      while (calls < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(calls).toBe(2);
      const during = await handle.query(monitorQuery);
      release();
      await handle.terminate('test over');
      expect(during.channels['email (smtp)']).toMatchObject({ ok: false });
      expect(during.undelivered.map((u) => [u.alert.key, u.only])).toEqual([['database.none', ['email (smtp)']]]);
    }),
  );
});
