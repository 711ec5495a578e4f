// The monitor through a crash of its worker: `backupctl worker` in its own process, SIGKILLed
// while deliverAlerts is sending (one webhook answers slowly, so the kill lands mid-delivery),
// then a new worker. The monitor goes on; what each receiver got is counted. Delivery is one
// activity per alert and channel, so the retry after the kill sends again only to the channel
// whose send was cut off (it took the request and never answered: at-least-once there), never
// to the channels that had the alert.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import YAML from 'yaml';
import type { MonitorState } from '../common/monitorTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { backupDatabase, monitor, restoreDatabase } from '../workflows/index.js';
import { monitorQuery } from '../workflows/messages.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { alertSubject } from './fixtures/mailHeaders.js';
import { startSmtpServer, type SmtpServer } from './fixtures/smtpServer.js';
import { workerProcesses } from './fixtures/workerProcess.js';

const HOST = 'moncrash';
const workers = workerProcesses();
let env: BackupEnv;
let smtp: SmtpServer;
let receiver: http.Server;
let configFile: string;
let handle: WorkflowHandle<typeof monitor>;
/** While set, the `slow` webhook takes a request and does not answer. */
let slow = false;
const hooks: { hook: string; key: string; event: string; at: number }[] = [];
const slowArrived: string[] = [];

beforeAll(async () => {
  env = await startBackupEnv({ users: 3, sessionsPerUser: 1, activitiesPerSession: 1 });
  smtp = await startSmtpServer();
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const hook = (req.url ?? '').split('/')[1];
      const alert = JSON.parse(body);
      hooks.push({ hook, key: alert.key, event: alert.event, at: Date.now() });
      if (hook === 'slow' && slow) {
        slowArrived.push(alert.key);
        return; // taken, never answered: the sender waits until its timeout or its death
      }
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const config = env.config(HOST, (raw) => {
    raw.alerts = {
      reminderMinutes: 600,
      email: { host: smtp.host, port: smtp.port, from: 'backup@example.com', to: ['ops@example.com'] },
      webhooks: [
        { name: 'ops', url: `${base}/ops/alert`, format: 'json' },
        { name: 'slow', url: `${base}/slow/alert`, format: 'json' },
      ],
    };
  });
  configFile = path.join(env.dir, `${HOST}.yaml`);
  writeFileSync(configFile, YAML.stringify(config));
}, 120_000);

afterAll(async () => {
  await handle?.terminate('test over').catch(() => undefined);
  workers.killAll();
  receiver?.closeAllConnections();
  await new Promise((resolve) => (receiver ? receiver.close(resolve) : resolve(undefined)));
  await smtp?.stop();
  await env?.stop();
});

type Counts = { email: number; ops: number; slow: number };
async function count(key: string, event: string): Promise<Counts> {
  const counts: Counts = { email: 0, ops: 0, slow: 0 };
  for (const mail of await smtp.messages()) {
    const subject = alertSubject(mail.data);
    if (subject?.key === key && subject.event === event) counts.email++;
  }
  for (const h of hooks) if (h.key === key && h.event === event) counts[h.hook as 'ops' | 'slow']++;
  return counts;
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; hooks: ${JSON.stringify(hooks.map((h) => `${h.hook} ${h.event} ${h.key}`))}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const state = (): Promise<MonitorState> => handle.query(monitorQuery);
const all = (c: Counts) => c.email >= 1 && c.ops >= 1 && c.slow >= 1;

test('SIGKILL of the worker while deliverAlerts sends: a new worker goes on; only the send that was cut off is made again', async () => {
  const first = workers.spawn(configFile);
  handle = await env.temporal.client.workflow.start(monitor, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId: 'monitor-crash',
    args: [{ hostTaskQueue: hostTaskQueue(HOST), intervalSeconds: 2, failedRunsSeconds: 1 }],
  });
  await until('database.none and objectives.rpo told everywhere', async () => all(await count('database.none', 'opened')) && all(await count('objectives.rpo', 'opened')), 90_000);
  // Nothing left to send before the slow webhook turns slow.
  const settled = (await state()).looks;
  await until('two more looks', async () => (await state()).looks >= settled + 2, 30_000);
  expect((await state()).undelivered).toEqual([]);

  // A failed run: its alert goes out to the email and ops at once; slow takes it and hangs.
  slow = true;
  const key = 'run.failed:monitor-crash-bad';
  const bad = await env.temporal.client.workflow.start(restoreDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'monitor-crash-bad', args: [{ hostTaskQueue: hostTaskQueue(HOST), backup: 'latest', jobs: 0 }] });
  await expect(bad.result()).rejects.toThrow();
  await until('the slow webhook to take the failed-run alert', async () => slowArrived.includes(key), 30_000);
  const looksAtKill = (await state()).looks;
  const atKill = await count(key, 'failed-run');
  workers.kill(first);
  await first;
  slow = false;
  void workers.spawn(configFile);

  // The delivery is retried once its heartbeat timeout (monitorStep: 30 seconds) has passed.
  await until('the retried delivery to complete', async () => ((await state().catch(() => undefined))?.looks ?? 0) >= looksAtKill + 3, 200_000);
  const history = await handle.fetchHistory();
  const retried = history.events!.filter((e) => e.activityTaskStartedEventAttributes && (e.activityTaskStartedEventAttributes.attempt ?? 1) > 1);
  // The monitor goes on after the kill: a backup resolves database.none, told once.
  await env.temporal.client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'monitor-crash-backup', args: [{ hostTaskQueue: hostTaskQueue(HOST) }] });
  await until('database.none resolved everywhere', async () => all(await count('database.none', 'resolved')), 30_000);
  const after = await count(key, 'failed-run');
  // What happened, for the report.
  console.log(JSON.stringify({ atKill, after, retriedActivities: retried.length }));

  expect(atKill).toEqual({ email: 1, ops: 1, slow: 1 });
  expect(retried.length).toBeGreaterThanOrEqual(1);
  expect(await count('database.none', 'opened')).toEqual({ email: 1, ops: 1, slow: 1 });
  expect(await count('database.none', 'resolved')).toEqual({ email: 1, ops: 1, slow: 1 });
  // The channels that had the alert do not get it again; the one cut off mid-send does (at least once).
  expect(after).toEqual({ email: 1, ops: 1, slow: 2 });
}, 300_000);
