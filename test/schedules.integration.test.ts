// `schedules apply` against a real Temporal dev server: it makes every schedule the
// configuration implies and starts WAL shipping; a second run changes nothing and says so
// (the server's normalized specs compared with the configuration's cron lines); what the
// configuration drops is deleted, but only if backupctl made it; schedules made before the
// ownership memo are adopted. pause, unpause and trigger wrap the API, and refuse a name that is
// no schedule. No worker runs: nothing here needs a workflow to do anything.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client, ScheduleNotFoundError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import YAML from 'yaml';
import { validateConfig, type Config } from '../common/config.js';
import { applySchedules, applyWalShipping, MANAGED_MEMO, runApplySchedules, wantedSchedules } from '../client/commands/schedules.js';
import { scheduleProblems } from '../client/scheduleProblems.js';
import { temporalDataConverter } from '../workers/dataConverter.js';
import { startTemporal } from './fixtures/temporal.js';

const CLI = path.resolve('bin/backupctl.js');
const ALL = ['backup-database-nightly', 'verify-backup-weekly', 'recovery-drill-monthly', 'backup-base-weekly', 'apply-retention-daily'];
let dir: string;
let temporal: TestWorkflowEnvironment;
let client: Client;
let raw: Record<string, any>;
let configFile: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-schedules-'));
  temporal = await startTemporal();
  client = temporal.client;
  raw = {
    host: 'sched-db',
    temporal: { address: temporal.address, namespace: 'default' },
    database: { url: 'postgres://app@127.0.0.1:1/app_db' },
    baseBackup: { url: 'postgres://replicator@127.0.0.1:1/app_db' },
    repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') }, nas: { type: 'filesystem', path: path.join(dir, 'nas') } },
    encryption: { publicKeyFile: path.join(dir, 'public.asc') },
    wal: { spool: 'local' },
    drill: { host: 'sched-drill', repository: 'nas' },
    // Spellings the server stores otherwise (names, ranges, steps, a zone): "unchanged" must see through them.
    schedules: {
      database: { cron: '*/15 2-4 * * MON-FRI', timezone: 'Europe/Berlin' },
      drill: { cron: '0 4 1-7 JAN-DEC/3 0' },
    },
    logLevel: 'warn',
  };
  configFile = path.join(dir, 'config.yaml');
  writeFileSync(configFile, YAML.stringify(raw));
});

afterAll(async () => {
  await temporal?.teardown();
  rmSync(dir, { recursive: true, force: true });
});

const config = (patch: (r: Record<string, any>) => void = () => undefined): Config => {
  const copy = structuredClone(raw);
  patch(copy);
  return validateConfig(copy, 'test');
};
const actions = (applied: { scheduleId: string; action: string }[]) => Object.fromEntries(applied.map((a) => [a.scheduleId, a.action]));
const describe_ = (id: string) => client.schedule.getHandle(id).describe();
const run = (args: string[]) => execa('node', [CLI, '--config', configFile, ...args], { reject: false });

async function exists(id: string): Promise<boolean> {
  try {
    await describe_(id);
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}

/** A schedule someone else made: no memo. */
async function foreign(scheduleId: string, workflowType: string) {
  await client.schedule.create({
    scheduleId,
    spec: { cronExpressions: ['0 0 * * *'] },
    action: { type: 'startWorkflow', workflowType, workflowId: scheduleId, taskQueue: 'elsewhere', args: [] },
  });
}

test('apply creates every schedule with the memo, and starts WAL shipping; a second apply changes nothing and says so', async () => {
  expect(actions(await applySchedules(client, config()))).toEqual(Object.fromEntries(ALL.map((id) => [id, 'created'])));
  for (const id of ALL) expect({ id, memo: (await describe_(id)).memo }).toEqual({ id, memo: MANAGED_MEMO });
  const retention = await describe_('apply-retention-daily');
  expect(retention.action).toMatchObject({ workflowType: 'applyRetention', workflowId: 'apply-retention-daily', taskQueue: 'backup', args: [{ hostTaskQueue: 'backup@sched-db' }] });
  expect(retention.info.nextActionTimes[0].getUTCHours()).toBe(5);
  expect(retention.info.nextActionTimes[0].getUTCMinutes()).toBe(30);
  expect(await applyWalShipping(client, config())).toEqual({ workflowId: 'wal-shipping-sched-db', action: 'started' });
  expect((await client.workflow.getHandle('wal-shipping-sched-db').describe()).status.name).toBe('RUNNING');

  const before = await Promise.all(ALL.map(describe_));
  expect(actions(await applySchedules(client, config()))).toEqual(Object.fromEntries(ALL.map((id) => [id, 'unchanged'])));
  expect(await applyWalShipping(client, config())).toEqual({ workflowId: 'wal-shipping-sched-db', action: 'already running' });
  // Nothing was written: the server's update time of each schedule is as before.
  const after = await Promise.all(ALL.map(describe_));
  expect(after.map((d) => d.info.lastUpdatedAt?.getTime())).toEqual(before.map((d) => d.info.lastUpdatedAt?.getTime()));
});

test('a changed cadence is updated, alone, and then unchanged; paused in the configuration pauses', async () => {
  const changed = config((r) => {
    r.schedules.database.cron = '*/15 2-5 * * MON-FRI';
    r.schedules.verification = { paused: true };
  });
  const applied = await applySchedules(client, changed);
  expect(actions(applied)).toEqual({ ...Object.fromEntries(ALL.map((id) => [id, 'unchanged'])), 'backup-database-nightly': 'updated', 'verify-backup-weekly': 'updated' });
  expect(applied.find((a) => a.scheduleId === 'backup-database-nightly')!.changes).toEqual([expect.stringContaining('spec')]);
  expect(applied.find((a) => a.scheduleId === 'verify-backup-weekly')!.changes).toEqual(['paused']);
  const updated = await describe_('verify-backup-weekly');
  expect(updated.state).toMatchObject({ paused: true, note: 'paused in configuration' });
  expect(updated.info.lastUpdatedAt).toBeInstanceOf(Date);
  expect(actions(await applySchedules(client, changed))).toEqual(Object.fromEntries(ALL.map((id) => [id, 'unchanged'])));
  expect((await describe_('verify-backup-weekly')).info.lastUpdatedAt).toEqual(updated.info.lastUpdatedAt);
  // And back.
  expect(actions(await applySchedules(client, config()))['verify-backup-weekly']).toBe('updated');
  expect((await describe_('verify-backup-weekly')).state.paused).toBe(false);
  expect(actions(await applySchedules(client, config()))).toEqual(Object.fromEntries(ALL.map((id) => [id, 'unchanged'])));
});

test('what the configuration drops is deleted; a schedule without the memo is never touched', async () => {
  await foreign('someone-elses-backup', 'backupDatabase');
  const withoutDrill = config((r) => delete r.drill);
  const applied = await applySchedules(client, withoutDrill);
  expect(actions(applied)).toEqual({ ...Object.fromEntries(ALL.map((id) => [id, 'unchanged'])), 'recovery-drill-monthly': 'deleted' });
  expect(applied.find((a) => a.scheduleId === 'recovery-drill-monthly')!.reason).toContain('drill.host');
  expect(await exists('recovery-drill-monthly')).toBe(false);
  expect(await exists('someone-elses-backup')).toBe(true);
  // Deleted once: then it is only skipped.
  expect(actions(await applySchedules(client, withoutDrill))['recovery-drill-monthly']).toBe('skipped');
  const withoutBase = config((r) => delete r.baseBackup);
  expect(actions(await applySchedules(client, withoutBase))).toMatchObject({ 'backup-base-weekly': 'deleted', 'recovery-drill-monthly': 'created' });
  expect(await exists('backup-base-weekly')).toBe(false);
  expect(actions(await applySchedules(client, config()))).toEqual({ ...Object.fromEntries(ALL.map((id) => [id, 'unchanged'])), 'backup-base-weekly': 'created' });
  expect((await describe_('someone-elses-backup')).memo ?? {}).toEqual({});
});

test('one of our ids held by a schedule not ours is a conflict: left alone, exit 1', async () => {
  await client.schedule.getHandle('backup-base-weekly').delete();
  await foreign('backup-base-weekly', 'somebodysWorkflow');
  let printed: any;
  let human = '';
  const code = await runApplySchedules(client, config(), { json: false, result: (value, text) => ((printed = value), (human = text())) });
  expect(code).toBe(1);
  expect(human).toContain('conflict schedule backup-base-weekly');
  // The monitor always runs: the first apply starts it.
  expect(printed.monitor).toEqual({ workflowId: 'monitor-sched-db', action: 'started' });
  expect(human).toContain('monitor: started monitor-sched-db');
  expect(printed.schedules.find((s: { scheduleId: string }) => s.scheduleId === 'backup-base-weekly')).toEqual({
    scheduleId: 'backup-base-weekly',
    action: 'conflict',
    reason: expect.stringContaining('not made by backupctl'),
  });
  expect((await describe_('backup-base-weekly')).action.workflowType).toBe('somebodysWorkflow');
  // The monitor and status say so too: a schedule acting on time is no sign of ours acting.
  const told = await scheduleProblems(client, config());
  expect(told.map((p) => p.key)).toContain('schedule.foreign:backup-base-weekly');
  expect(told.find((p) => p.key === 'schedule.foreign:backup-base-weekly')!.message).toContain('somebodysWorkflow');
  // Where the configuration wants no base backups, it is in nobody's way: skipped, still left alone.
  const notWanted = (await applySchedules(client, config((r) => delete r.baseBackup))).find((a) => a.scheduleId === 'backup-base-weekly');
  expect(notWanted).toEqual({ scheduleId: 'backup-base-weekly', action: 'skipped', reason: expect.stringContaining('not made by backupctl: left alone') });
  expect((await describe_('backup-base-weekly')).action.workflowType).toBe('somebodysWorkflow');
  await client.schedule.getHandle('backup-base-weekly').delete();
  expect(actions(await applySchedules(client, config()))['backup-base-weekly']).toBe('created');
});

test('a schedule made before the memo (our id, our workflow) is adopted; a memo-carrying stray is deleted', async () => {
  await client.schedule.getHandle('recovery-drill-monthly').delete();
  // As the earlier backupctl made it: same id and workflow, no memo.
  await client.schedule.create({ ...wantedSchedules(config()).find((w) => w.scheduleId === 'recovery-drill-monthly')!.options!, memo: undefined });
  expect((await describe_('recovery-drill-monthly')).memo ?? {}).toEqual({});
  await client.schedule.create({ ...wantedSchedules(config())[0].options!, scheduleId: 'backup-database-renamed', memo: { ...MANAGED_MEMO } });
  // The list (visibility) lags a create; apply finds strays through it.
  for (let i = 0; i < 100; i++) {
    const ids: string[] = [];
    for await (const s of client.schedule.list()) ids.push(s.scheduleId);
    if (ids.includes('backup-database-renamed')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const applied = actions(await applySchedules(client, config()));
  expect(applied).toMatchObject({ 'recovery-drill-monthly': 'adopted', 'backup-database-renamed': 'deleted' });
  expect((await describe_('recovery-drill-monthly')).memo).toEqual(MANAGED_MEMO);
  expect(await exists('backup-database-renamed')).toBe(false);
  expect(await exists('someone-elses-backup')).toBe(true);
  expect(actions(await applySchedules(client, config()))).toEqual(Object.fromEntries(ALL.map((id) => [id, 'unchanged'])));
});

test('the CLI: apply says unchanged and already running; pause, unpause, trigger; an unknown name fails naming the schedules', async () => {
  const apply = await run(['schedules', 'apply', '--json']);
  expect(apply.stderr).toBe('');
  expect(apply.exitCode).toBe(0);
  expect(JSON.parse(apply.stdout)).toEqual({
    schedules: ALL.map((scheduleId) => ({ scheduleId, action: 'unchanged' })),
    walShipping: { workflowId: 'wal-shipping-sched-db', action: 'already running' },
    monitor: { workflowId: 'monitor-sched-db', action: 'already running' },
  });

  const pause = await run(['schedules', 'pause', 'backup-database-nightly', '--note', 'database migration tonight']);
  expect(pause.exitCode).toBe(0);
  expect(pause.stdout).toContain('paused schedule backup-database-nightly');
  expect((await describe_('backup-database-nightly')).state).toEqual({ paused: true, note: 'database migration tonight' });
  const unpause = await run(['schedules', 'unpause', 'backup-database-nightly', '--json']);
  expect(JSON.parse(unpause.stdout)).toEqual({ scheduleId: 'backup-database-nightly', paused: false });
  expect((await describe_('backup-database-nightly')).state.paused).toBe(false);

  const trigger = await run(['schedules', 'trigger', 'apply-retention-daily', '--json']);
  expect(trigger.exitCode).toBe(0);
  expect(JSON.parse(trigger.stdout)).toMatchObject({ scheduleId: 'apply-retention-daily', triggered: true, overlap: 'SKIP' });
  let started: string | undefined;
  for (let i = 0; i < 100 && !started; i++) {
    started = (await describe_('apply-retention-daily')).info.recentActions[0]?.action.workflow.workflowId;
    if (!started) await new Promise((r) => setTimeout(r, 100));
  }
  expect(started).toMatch(/^apply-retention-daily-/);
  const workflow = await client.workflow.getHandle(started!).describe();
  expect({ type: workflow.type, taskQueue: workflow.taskQueue }).toEqual({ type: 'applyRetention', taskQueue: 'backup' });
  await client.workflow.getHandle(started!).terminate('test done: no worker here');

  const verbs = ['pause', 'unpause', 'trigger'];
  const unknown = await Promise.all(verbs.map((verb) => run(['schedules', verb, 'backup-nightly'])));
  verbs.forEach((verb, i) => {
    expect({ verb, exitCode: unknown[i].exitCode }).toEqual({ verb, exitCode: 2 });
    expect(unknown[i].stderr).toContain('no schedule is named "backup-nightly"');
    expect(unknown[i].stderr).toContain('backup-database-nightly');
    expect(unknown[i].stderr).toContain('someone-elses-backup');
  });
});

// Last: a client without the keys cannot read the schedules afterwards (as in production).
test('turning payload encryption on, or rotating its key, rewrites the stored workflow inputs; then unchanged again', async () => {
  const key = () => randomBytes(32).toString('base64');
  const [k1, k2] = [`k1:${key()}`, `k2:${key()}`];
  const encrypted = config((r) => (r.temporal.payloadEncryption = { enabled: true }));
  const clientWith = (keys: string) =>
    new Client({ connection: temporal.connection, namespace: 'default', dataConverter: temporalDataConverter(encrypted, { BACKUPCTL_PAYLOAD_KEYS: keys }) });
  const on = await applySchedules(clientWith(k1), encrypted);
  expect(actions(on)).toEqual(Object.fromEntries(ALL.map((id) => [id, 'updated'])));
  expect(on.every((a) => a.changes?.join() === 'workflow input encryption')).toBe(true);
  const stored = (await clientWith(k1).schedule.getHandle('apply-retention-daily').describe()).raw.schedule!.action!.startWorkflow!.input!.payloads![0];
  expect(Buffer.from(stored.metadata!.encoding!).toString()).toBe('binary/encrypted');
  expect(actions(await applySchedules(clientWith(k1), encrypted))).toEqual(Object.fromEntries(ALL.map((id) => [id, 'unchanged'])));
  // k2 first: it encrypts from now on.
  expect(actions(await applySchedules(clientWith(`${k2},${k1}`), encrypted))).toEqual(Object.fromEntries(ALL.map((id) => [id, 'updated'])));
  expect(actions(await applySchedules(clientWith(`${k2},${k1}`), encrypted))).toEqual(Object.fromEntries(ALL.map((id) => [id, 'unchanged'])));
});
