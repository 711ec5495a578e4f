// The monitor on real components: a Temporal dev server, PostgreSQL, SeaweedFS, real backups,
// a real SMTP server (aiosmtpd, with AUTH, behind a proxy that can cut it off) and a real HTTP
// receiver taking a json and a slack webhook. The monitor looks every 2 s and for failed runs
// every second, so every problem is seen many times over: each event must reach each channel
// exactly once. No secret and no row of data may leave in any alert.
import { randomBytes } from 'node:crypto';
import { openRepositories } from '../engine/storage/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { restoreDatabase } from '../workflows/index.js';
import { APP_PASSWORD, APP_USER } from './fixtures/backupEnv.js';
import { startMonitorStack, type MonitorStack } from './fixtures/monitorStack.js';
import { SecretSearch } from './fixtures/secretSearch.js';

const HOST = 'mon';
/** A row of the application's data: it must never leave in an alert. */
const ROW_VALUE = `rowvalue${randomBytes(12).toString('hex')}`;

let stack: MonitorStack;
let firstBackupId: string;

beforeAll(async () => {
  stack = await startMonitorStack({
    host: HOST,
    workflowId: 'monitor-test',
    intervalSeconds: 2,
    failedRunsSeconds: 1,
    webUiUrl: 'http://temporal-ui.test:8233/',
    recordHistoryAs: 'monitor',
    extraSeed: async (db) => {
      await db.query('CREATE TABLE monitor_canary (secret text)');
      await db.query('INSERT INTO monitor_canary VALUES ($1)', [ROW_VALUE]);
      await db.query(`ALTER TABLE monitor_canary OWNER TO ${APP_USER}`);
    },
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const told = () => stack.told();
const count = (key: string | RegExp, event: string) => stack.count(key, event);
const until = (what: string, ok: () => Promise<boolean>, timeoutMs?: number) => stack.until(what, ok, timeoutMs);
const state = () => stack.state();
const everywhere = (key: string | RegExp, event: string) => stack.everywhere(key, event);
const moreLooks = (n: number) => stack.moreLooks(n);
const backup = (workflowId: string) => stack.backup(workflowId);

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
  const s3 = openRepositories(stack.config).find((r) => r.name === 's3')!;
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
  const run = await stack.env.temporal.client.workflow.start(restoreDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue(HOST), backup: 'latest', jobs: 0 }] });
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
  await stack.smtpProxy.cut();
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

  await stack.smtpProxy.restore();
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
      ['smtp password', stack.secrets.smtpPassword],
      ['webhook bearer', stack.secrets.bearer],
      ['slack URL token', stack.secrets.slackToken],
      ['URL path token', stack.secrets.pathToken],
      ['URL query token', stack.secrets.queryToken],
      ['database password', APP_PASSWORD],
      ['a row of data', ROW_VALUE],
    ].map(([name, value]) => ({ name, value, parts: [] })),
  );
  // Positive control: the receiver did get the bearer token, in a header.
  expect(search.wouldFind(stack.hooks.map((h) => h.headers.authorization).join('\n'))).toContain('webhook bearer/raw');
  const all = await told();
  expect(all.length).toBeGreaterThanOrEqual(15);
  all.forEach((t, i) => search.search(t.channel, `alert ${i} (${t.key} ${t.event})`, t.raw));
  search.search('query', 'monitor state', JSON.stringify(await state()));
  expect(search.hits).toEqual([]);
});
