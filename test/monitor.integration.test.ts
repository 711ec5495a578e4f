// The monitor on real components: a Temporal dev server, PostgreSQL, SeaweedFS, real backups,
// a real SMTP server (aiosmtpd, with AUTH, behind a proxy that can cut it off) and a real HTTP
// receiver taking a json and a slack webhook. The monitor looks every 2 s and for failed runs
// every second, so every problem is seen many times over: each event must reach each channel
// exactly once. No secret and no row of data may leave in any alert.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { execa } from 'execa';
import pino from 'pino';
import { projectTool } from '../client/dev/tools.js';
import type { Config } from '../common/config.js';
import type { MonitorState } from '../common/monitorTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { openRepositories } from '../engine/storage/index.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupDatabase, monitor, restoreDatabase } from '../workflows/index.js';
import { monitorQuery } from '../workflows/messages.js';
import { APP_PASSWORD, APP_USER, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { alertSubject } from './fixtures/mailHeaders.js';
import { SecretSearch } from './fixtures/secretSearch.js';
import { startSmtpServer, type SmtpServer } from './fixtures/smtpServer.js';
import { startTcpProxy, type TcpProxy } from './fixtures/tcpProxy.js';

const HOST = 'mon';
const WEB_UI = 'http://temporal-ui.test:8233/';
const token = (label: string) => `${label}${randomBytes(12).toString('hex')}`;
const SMTP_PASSWORD = token('smtppw');
const BEARER = token('bearer');
const SLACK_TOKEN = token('slack');
const PATH_TOKEN = token('path');
const QUERY_TOKEN = token('query');
/** A row of the application's data: it must never leave in an alert. */
const ROW_VALUE = token('rowvalue');

let env: BackupEnv;
let smtp: SmtpServer;
let smtpProxy: TcpProxy;
let receiver: http.Server;
let worker: RunningWorker;
let config: Config;
let handle: WorkflowHandle<typeof monitor>;
let firstBackupId: string;
const hooks: { url: string; headers: http.IncomingHttpHeaders; body: string }[] = [];

type Channel = 'email' | 'ops' | 'slack';
interface Told {
  channel: Channel;
  severity: string;
  event: string;
  key: string;
  raw: string;
}

beforeAll(async () => {
  env = await startBackupEnv({ users: 3, sessionsPerUser: 1, activitiesPerSession: 1 }, async (db) => {
    await db.query('CREATE TABLE monitor_canary (secret text)');
    await db.query('INSERT INTO monitor_canary VALUES ($1)', [ROW_VALUE]);
    await db.query(`ALTER TABLE monitor_canary OWNER TO ${APP_USER}`);
  });
  smtp = await startSmtpServer({ user: 'backup', password: SMTP_PASSWORD });
  smtpProxy = await startTcpProxy(smtp.port);
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      hooks.push({ url: req.url ?? '', headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const headersFile = path.join(env.dir, 'hook-headers');
  writeFileSync(headersFile, `Authorization: Bearer ${BEARER}\n`, { mode: 0o600 });
  config = env.config(HOST, (raw) => {
    raw.temporal.webUiUrl = WEB_UI;
    raw.alerts = {
      reminderMinutes: 60,
      email: { host: '127.0.0.1', port: smtpProxy.port, user: 'backup', passwordFile: smtp.passwordFile, from: 'backupctl <backup@example.com>', to: ['ops@example.com'] },
      webhooks: [
        { name: 'ops', url: `${base}/ok/${PATH_TOKEN}/alert?token=${QUERY_TOKEN}`, format: 'json', headersFile },
        { name: 'slack', url: `${base}/ok/services/T0/B0/${SLACK_TOKEN}`, format: 'slack' },
      ],
    };
  });
  worker = await startWorker(config, pino({ level: process.env.TEST_LOG ? 'info' : 'silent' }), { bundleInProcess: true });
  handle = await env.temporal.client.workflow.start(monitor, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId: 'monitor-test',
    args: [{ hostTaskQueue: hostTaskQueue(HOST), intervalSeconds: 2, failedRunsSeconds: 1 }],
  });
}, 120_000);

afterAll(async () => {
  if (handle) {
    if (process.env.RECORD_HISTORIES) {
      const json = (await execa(projectTool('temporal'), ['workflow', 'show', '--workflow-id', 'monitor-test', '--output', 'json', '--address', env.temporal.address])).stdout;
      writeFileSync('test/histories/monitor.json', json);
    }
    await handle.terminate('test over').catch(() => undefined);
  }
  await worker?.shutdown();
  receiver?.closeAllConnections();
  await new Promise((resolve) => (receiver ? receiver.close(resolve) : resolve(undefined)));
  await smtpProxy?.stop();
  await smtp?.stop();
  await env?.stop();
});

/** Every alert every channel received, in order. */
async function told(): Promise<Told[]> {
  const out: Told[] = [];
  for (const mail of await smtp.messages()) {
    const subject = alertSubject(mail.data);
    if (!subject) throw new Error(`an email without the subject expected:\n${mail.data}`);
    out.push({ channel: 'email', ...subject, raw: mail.data });
  }
  for (const hook of hooks) {
    if (hook.url.includes(PATH_TOKEN)) {
      const alert = JSON.parse(hook.body);
      out.push({ channel: 'ops', severity: alert.severity, event: alert.event, key: alert.key, raw: hook.body });
    } else {
      const m = (JSON.parse(hook.body).text as string).match(/\[(\w+) ([a-z-]+)\] (\S+) on /);
      if (!m) throw new Error(`a slack body without the text expected: ${hook.body}`);
      out.push({ channel: 'slack', severity: m[1].toLowerCase(), event: m[2], key: m[3], raw: hook.body });
    }
  }
  return out;
}

/** How many times each channel got this event of this key. */
async function count(key: string | RegExp, event: string): Promise<Record<Channel, number>> {
  const counts: Record<Channel, number> = { email: 0, ops: 0, slack: 0 };
  for (const t of await told()) if ((typeof key === 'string' ? t.key === key : key.test(t.key)) && t.event === event) counts[t.channel]++;
  return counts;
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; told: ${JSON.stringify((await told()).map(({ channel, event, key }) => `${channel} ${event} ${key}`))}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const state = (): Promise<MonitorState> => handle.query(monitorQuery);
const everywhere = async (key: string | RegExp, event: string) => Object.values(await count(key, event)).every((n) => n >= 1);
/** Lets the monitor look `n` more times (each look would tell a duplicate, if it told one). */
async function moreLooks(n: number) {
  const looks = (await state()).looks;
  await until(`${n} more looks`, async () => (await state()).looks >= looks + n);
}

async function backup(workflowId: string): Promise<string> {
  const result = await env.temporal.client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue(HOST) }] });
  return result.backupId;
}

test('no backup yet: database.none and objectives.rpo opened once on every channel; a real backup resolves each once', async () => {
  await until('database.none and objectives.rpo opened', async () => (await everywhere('database.none', 'opened')) && (await everywhere('objectives.rpo', 'opened')));
  await moreLooks(3);
  for (const key of ['database.none', 'objectives.rpo']) expect(await count(key, 'opened')).toEqual({ email: 1, ops: 1, slack: 1 });
  expect((await told()).find((t) => t.key === 'database.none')).toMatchObject({ severity: 'critical' });

  firstBackupId = await backup('monitor-backup-1');
  await until('database.none and objectives.rpo resolved', async () => (await everywhere('database.none', 'resolved')) && (await everywhere('objectives.rpo', 'resolved')));
  await moreLooks(3);
  for (const key of ['database.none', 'objectives.rpo']) {
    expect(await count(key, 'opened')).toEqual({ email: 1, ops: 1, slack: 1 });
    expect(await count(key, 'resolved')).toEqual({ email: 1, ops: 1, slack: 1 });
  }
  expect((await state()).open['database.none']).toBeUndefined();
  // Whatever else this host lacks (a drill, a verification) is told once too, never again.
  const opened = (await told()).filter((t) => t.event === 'opened');
  const perKey = new Map<string, number>();
  opened.forEach((t) => perKey.set(`${t.channel} ${t.key}`, (perKey.get(`${t.channel} ${t.key}`) ?? 0) + 1));
  expect([...perKey.entries()].filter(([, n]) => n !== 1)).toEqual([]);
}, 60_000);

test('a copy missing from S3: database.copy-missing opened once; another backup brings it back and resolves it once', async () => {
  const s3 = openRepositories(config).find((r) => r.name === 's3')!;
  const objects = await s3.list(`database/${firstBackupId}/`);
  expect(objects.length).toBeGreaterThan(1);
  for (const o of objects) await s3.remove(o.key);
  await until('copy-missing opened', () => everywhere('database.copy-missing', 'opened'));
  await moreLooks(3);
  expect(await count('database.copy-missing', 'opened')).toEqual({ email: 1, ops: 1, slack: 1 });
  const alert = JSON.parse((await told()).find((t) => t.channel === 'ops' && t.key === 'database.copy-missing')!.raw);
  expect(alert.title).toContain('missing from: s3');

  await backup('monitor-backup-2');
  await until('copy-missing resolved', () => everywhere('database.copy-missing', 'resolved'));
  await moreLooks(3);
  expect(await count('database.copy-missing', 'opened')).toEqual({ email: 1, ops: 1, slack: 1 });
  expect(await count('database.copy-missing', 'resolved')).toEqual({ email: 1, ops: 1, slack: 1 });
}, 60_000);

async function failRestore(workflowId: string) {
  const run = await env.temporal.client.workflow.start(restoreDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue(HOST), backup: 'latest', jobs: 0 }] });
  await expect(run.result()).rejects.toThrow();
  return run.firstExecutionRunId;
}

test('a failed run of ours: one failed-run alert per channel, with its error type, message and a Web UI link', async () => {
  const runId = await failRestore('monitor-restore-bad');
  const key = 'run.failed:monitor-restore-bad';
  await until('the failed run told', () => everywhere(key, 'failed-run'));
  // The failed runs are listed every second, ten minutes back: the run is seen again and again.
  await moreLooks(3);
  expect(await count(key, 'failed-run')).toEqual({ email: 1, ops: 1, slack: 1 });
  const alert = JSON.parse((await told()).find((t) => t.channel === 'ops' && t.key === key)!.raw);
  const link = `http://temporal-ui.test:8233/namespaces/default/workflows/monitor-restore-bad/${runId}/history`;
  expect(alert).toMatchObject({ event: 'failed-run', severity: 'critical', link });
  expect(alert.title).toContain('restoreDatabase monitor-restore-bad failed: InvalidInput: input.jobs is 0; expected a whole number from 1 to 64');
  const mail = (await told()).find((t) => t.channel === 'email' && t.key === key)!;
  const body = mail.raw.replace(/\r\n/g, '\n').replace(/=\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  expect(body).toContain(`Link:     ${link}`);
  expect(body).toContain('InvalidInput: input.jobs is 0; expected a whole number from 1 to 64');
  expect((await told()).find((t) => t.channel === 'slack' && t.key === key)!.raw).toContain(link);
}, 60_000);

test('SMTP unreachable: the webhooks still deliver, the query shows the email channel failing; back again, the waiting alert is emailed once', async () => {
  await smtpProxy.cut();
  const key = 'run.failed:monitor-restore-while-smtp-down';
  await failRestore('monitor-restore-while-smtp-down');
  await until('the webhooks to deliver', async () => {
    const c = await count(key, 'failed-run');
    return c.ops === 1 && c.slack === 1;
  });
  await moreLooks(3);
  const down = await state();
  const email = Object.entries(down.channels).find(([name]) => name.startsWith('email'))!;
  expect(email[1]).toMatchObject({ ok: false });
  expect(email[1].error).toMatch(/ECONNREFUSED|refused/);
  // At any moment, a delivery under way or not, the alert waits for the email channel alone.
  expect(down.undelivered.map((u) => [u.alert.key, u.only])).toEqual([[key, [email[0]]]]);
  expect(await count(key, 'failed-run')).toEqual({ email: 0, ops: 1, slack: 1 });

  await smtpProxy.restore();
  await until('the email to arrive', async () => (await count(key, 'failed-run')).email === 1);
  await moreLooks(3);
  expect(await count(key, 'failed-run')).toEqual({ email: 1, ops: 1, slack: 1 });
  const up = await state();
  expect(up.undelivered).toEqual([]);
  expect(up.channels[email[0]]).toMatchObject({ ok: true });
}, 60_000);

test('no secret and no row of data in any alert, nor in the monitor\'s state', async () => {
  const search = new SecretSearch(
    [
      ['smtp password', SMTP_PASSWORD],
      ['webhook bearer', BEARER],
      ['slack URL token', SLACK_TOKEN],
      ['URL path token', PATH_TOKEN],
      ['URL query token', QUERY_TOKEN],
      ['database password', APP_PASSWORD],
      ['a row of data', ROW_VALUE],
    ].map(([name, value]) => ({ name, value, parts: [] })),
  );
  // Positive control: the receiver did get the bearer token, in a header.
  expect(search.wouldFind(hooks.map((h) => h.headers.authorization).join('\n'))).toContain('webhook bearer/raw');
  const all = await told();
  expect(all.length).toBeGreaterThanOrEqual(15);
  all.forEach((t, i) => search.search(t.channel, `alert ${i} (${t.key} ${t.event})`, t.raw));
  search.search('query', 'monitor state', JSON.stringify(await state()));
  expect(search.hits).toEqual([]);
});
