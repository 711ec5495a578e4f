// `backupctl schedules apply | list | pause | unpause | trigger`: everything recurring the
// configuration implies, as Temporal Schedules (and the WAL shipping workflow, which runs
// rather than recurs). Unlike cron, a schedule remembers: a run missed while the server or the
// workers were down is taken when they return (catch-up window), and a run still going when the
// next is due is not doubled.
//
// `apply` owns what it made: every schedule it creates carries MANAGED_MEMO, and a schedule with
// that memo the configuration no longer implies is deleted; one without it is never touched.
// The four ids made before the memo existed are adopted (see adoptable()).
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleDescription, type ScheduleOptions } from '@temporalio/client';
import { METADATA_ENCODING_KEY, type Payload } from '@temporalio/common';
import { applyRetention, backupBase, backupDatabase, recoveryDrill, verifyBackup } from '../../workflows/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../../common/types.js';
import type { ApplyRetentionInput } from '../../common/retentionTypes.js';
import { databaseHost, verificationHost, type Config } from '../../common/config.js';
import {
  BASE_SCHEDULE_ID,
  DATABASE_SCHEDULE_ID,
  MANAGED_BY,
  DRILL_SCHEDULE_ID,
  RETENTION_SCHEDULE_ID,
  VERIFICATION_SCHEDULE_ID,
  plannedSchedules,
  type Cadence,
  type ScheduleName,
} from '../../common/schedulePlan.js';
import { walArchivingWanted } from '../../common/pitrPreconditions.js';
import { drillInput } from './drill.js';
import { ensureWalShipping } from './wal.js';
import { ensureMonitor } from './monitor.js';
import { specMatchesCron } from '../scheduleSpec.js';
import { KEY_ID_METADATA } from '../../workers/payloadCodec.js';
import { InputRefused } from '../workflowRun.js';
import type { Printer } from '../output.js';

export { DATABASE_SCHEDULE_ID, VERIFICATION_SCHEDULE_ID, DRILL_SCHEDULE_ID, BASE_SCHEDULE_ID, RETENTION_SCHEDULE_ID };

/** The mark of a schedule `apply` made: set at creation (Temporal cannot change a schedule's memo later). */
export const MANAGED_MEMO = { managedBy: MANAGED_BY } as const;

const CATCHUP_WINDOW_MS = 24 * 60 * 60 * 1000;
const PAUSED_NOTE = 'paused in configuration';
const UNPAUSED_NOTE = 'unpaused by the configuration (schedules apply)';

/** One schedule the configuration may imply: its options when it does, else why not. */
export interface WantedSchedule {
  scheduleId: string;
  workflowType: string;
  cadence: Cadence;
  options?: ScheduleOptions;
  reason?: string;
}

function wanted(scheduleId: string, cadence: Cadence, workflowType: string, args: unknown[]): WantedSchedule {
  return {
    scheduleId,
    workflowType,
    cadence,
    options: {
      scheduleId,
      spec: { cronExpressions: [cadence.cron], timezone: cadence.timezone },
      // Temporal appends the scheduled time: backup-database-nightly-2026-11-26T02:00:00Z.
      action: { type: 'startWorkflow', workflowType, workflowId: scheduleId, taskQueue: SHARED_TASK_QUEUE, args },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW_MS, pauseOnFailure: false },
      state: { paused: cadence.paused, note: cadence.paused ? PAUSED_NOTE : undefined },
      memo: { ...MANAGED_MEMO },
    },
  };
}

const notImplied = (scheduleId: string, cadence: Cadence, workflowType: string, reason: string): WantedSchedule => ({ scheduleId, workflowType, cadence, reason });

/** Every schedule the configuration may imply (common/schedulePlan.ts), in the order `apply` reports them. */
export function wantedSchedules(config: Config): WantedSchedule[] {
  const database = { hostTaskQueue: hostTaskQueue(databaseHost(config)) };
  const retention: ApplyRetentionInput = { hostTaskQueue: hostTaskQueue(databaseHost(config)) };
  const workflows: Record<ScheduleName, { workflowType: string; args: () => unknown[] }> = {
    database: { workflowType: backupDatabase.name, args: () => [database] },
    // Sunday 03:00 by default: the newest backup restored into scratch on the verification host.
    verification: { workflowType: verifyBackup.name, args: () => [{ hostTaskQueue: hostTaskQueue(verificationHost(config)), backup: 'latest' }] },
    // The first of the month by default, on the drill host.
    drill: { workflowType: recoveryDrill.name, args: () => [drillInput(config)] },
    // Sunday 01:00 by default: the start of every point-in-time recovery.
    base: { workflowType: backupBase.name, args: () => [database] },
    retention: { workflowType: applyRetention.name, args: () => [retention] },
  };
  return plannedSchedules(config).map(({ scheduleId, name, cadence, reason }) => {
    const { workflowType, args } = workflows[name];
    return reason ? notImplied(scheduleId, cadence, workflowType, reason) : wanted(scheduleId, cadence, workflowType, args());
  });
}

/**
 * The ids backupctl used before schedules carried MANAGED_MEMO, with the workflow each starts.
 * Such a schedule is ours when it starts that workflow: nothing else made a schedule of that id
 * starting our workflow. It is adopted by being made again with the memo (Temporal cannot add a
 * memo to a schedule), so from then on one rule (the memo) says what is ours; what is lost is
 * only its list of recent runs (the runs themselves stay in the history). One of these ids
 * starting some other workflow is someone else's, and left alone.
 */
const PRE_MEMO_IDS: Record<string, string> = {
  [DATABASE_SCHEDULE_ID]: backupDatabase.name,
  [VERIFICATION_SCHEDULE_ID]: verifyBackup.name,
  [DRILL_SCHEDULE_ID]: recoveryDrill.name,
  [BASE_SCHEDULE_ID]: backupBase.name,
};

const isManaged = (memo: Record<string, unknown> | undefined) => memo?.managedBy === MANAGED_MEMO.managedBy;

function adoptable(scheduleId: string, description: ScheduleDescription): boolean {
  return !isManaged(description.memo) && PRE_MEMO_IDS[scheduleId] !== undefined && description.action.workflowType === PRE_MEMO_IDS[scheduleId];
}

export interface AppliedSchedule {
  scheduleId: string;
  action: 'created' | 'updated' | 'unchanged' | 'adopted' | 'deleted' | 'skipped' | 'conflict';
  reason?: string;
  /** For 'updated': what differed from the configuration. */
  changes?: string[];
}

export interface WalShippingApplied {
  workflowId?: string;
  action: 'started' | 'already running' | 'skipped';
  reason?: string;
}

/** JSON with sorted keys: the same value gives the same text, whatever order its keys came in. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) : v,
  );
}

const metadataText = (bytes: Uint8Array | null | undefined) => (bytes ? Buffer.from(bytes).toString('utf8') : '');

/** How a payload is sealed: its encoding, and the key it is encrypted with (none when plain). */
function sealOf(payload: Payload | undefined): string {
  return `${metadataText(payload?.metadata?.[METADATA_ENCODING_KEY])} ${metadataText(payload?.metadata?.[KEY_ID_METADATA])}`;
}

/**
 * How this client writes payloads now: plain JSON, or encrypted with the first payload key. A
 * schedule stores its workflow's input as written when it was applied, so turning payload
 * encryption on, or rotating its key, must rewrite it (README, "Payload encryption"), though the
 * decoded input is equal.
 */
export async function currentSeal(client: Client): Promise<string> {
  let payloads: Payload[] = [{ metadata: { [METADATA_ENCODING_KEY]: Buffer.from('json/plain') }, data: Buffer.from('null') }];
  for (const codec of client.options.loadedDataConverter.payloadCodecs) payloads = await codec.encode(payloads);
  return sealOf(payloads[0]);
}

/** What of `described` differs from `want` in what we set: the times, the workflow and its input (and its sealing), the policies, paused. */
export function differences(described: ScheduleDescription, want: WantedSchedule, seal: string): string[] {
  const options = want.options!;
  const action = options.action as { workflowId: string; taskQueue: string; args: unknown[] };
  const changes: string[] = [];
  if (!specMatchesCron(described.spec, want.cadence.cron, want.cadence.timezone)) changes.push(`spec (now: ${want.cadence.cron} ${want.cadence.timezone})`);
  const a = described.action;
  if (a.type !== 'startWorkflow' || a.workflowType !== want.workflowType || a.workflowId !== action.workflowId || a.taskQueue !== action.taskQueue) changes.push('workflow');
  // Both through JSON: an undefined field is absent on the server's side too.
  else if (canonical(a.args ?? []) !== canonical(JSON.parse(JSON.stringify(action.args)))) changes.push('workflow input');
  else if (sealOf(described.raw.schedule?.action?.startWorkflow?.input?.payloads?.[0] as Payload | undefined) !== seal) changes.push('workflow input encryption');
  const p = described.policies;
  if (p.overlap !== ScheduleOverlapPolicy.SKIP || p.catchupWindow !== CATCHUP_WINDOW_MS || p.pauseOnFailure !== false) changes.push('policies');
  if (described.state.paused !== want.cadence.paused) changes.push(want.cadence.paused ? 'paused' : 'unpaused');
  return changes;
}

/** The schedule of that id described; undefined when there is none. */
export async function describeOrUndefined(client: Client, scheduleId: string): Promise<ScheduleDescription | undefined> {
  try {
    return await client.schedule.getHandle(scheduleId).describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return undefined;
    throw err;
  }
}

async function applyOne(client: Client, want: WantedSchedule, seal: string): Promise<AppliedSchedule> {
  const { scheduleId } = want;
  const handle = client.schedule.getHandle(scheduleId);
  const described = await describeOrUndefined(client, scheduleId);
  if (!described) {
    if (!want.options) return { scheduleId, action: 'skipped', reason: want.reason };
    await client.schedule.create(want.options);
    return { scheduleId, action: 'created' };
  }
  if (!isManaged(described.memo) && !adoptable(scheduleId, described)) {
    // Not wanted here: someone else's schedule under this id is in nobody's way.
    if (!want.options) return { scheduleId, action: 'skipped', reason: `${want.reason}; the schedule of this id was not made by backupctl: left alone` };
    return {
      scheduleId,
      action: 'conflict',
      reason: `a schedule not made by backupctl (no managedBy memo; it starts ${described.action.workflowType}) has this id: left alone; delete or rename it, then apply again`,
    };
  }
  if (!want.options) {
    await handle.delete();
    return { scheduleId, action: 'deleted', reason: want.reason };
  }
  if (!isManaged(described.memo)) {
    await handle.delete();
    await client.schedule.create(want.options);
    return { scheduleId, action: 'adopted', reason: 'made before backupctl marked its schedules: made again with the mark' };
  }
  const changes = differences(described, want, seal);
  if (changes.length === 0) return { scheduleId, action: 'unchanged' };
  const options = want.options;
  const pausing = described.state.paused !== want.cadence.paused;
  // The update carries the note too: the server applies the update and the pause below in
  // either order, and an update with the old note applied last erased the pause's (seen in CI).
  const note = pausing ? (want.cadence.paused ? PAUSED_NOTE : UNPAUSED_NOTE) : undefined;
  await handle.update((current) => ({ ...current, spec: options.spec, action: options.action, policies: options.policies, state: { ...current.state, paused: want.cadence.paused, ...(note ? { note } : {}) } }));
  // The update keeps the paused state as it was; pausing is its own call, with its note.
  if (pausing) {
    if (want.cadence.paused) await handle.pause(PAUSED_NOTE);
    else await handle.unpause(UNPAUSED_NOTE);
  }
  return { scheduleId, action: 'updated', changes };
}

/** Schedules carrying our memo under ids no configuration implies now (an id renamed, say). */
async function strays(client: Client, known: Set<string>): Promise<string[]> {
  const ids: string[] = [];
  for await (const summary of client.schedule.list()) if (!known.has(summary.scheduleId) && isManaged(summary.memo)) ids.push(summary.scheduleId);
  return ids;
}

/** Brings every schedule in line with the configuration; a second run changes nothing. */
export async function applySchedules(client: Client, config: Config): Promise<AppliedSchedule[]> {
  const wants = wantedSchedules(config);
  const applied: AppliedSchedule[] = [];
  const seal = await currentSeal(client);
  for (const want of wants) applied.push(await applyOne(client, want, seal));
  for (const scheduleId of await strays(client, new Set(wants.map((w) => w.scheduleId)))) {
    // Described, not trusted from the list: the list is eventually consistent.
    const described = await describeOrUndefined(client, scheduleId);
    if (!described || !isManaged(described.memo)) continue;
    await client.schedule.getHandle(scheduleId).delete();
    applied.push({ scheduleId, action: 'deleted', reason: 'made by backupctl, and not implied by this configuration' });
  }
  return applied;
}

/** The WAL shipping workflow runs while WAL is archived (walArchivingWanted); one running unwanted is left alone. */
export async function applyWalShipping(client: Client, config: Config): Promise<WalShippingApplied> {
  if (!walArchivingWanted(config)) return { action: 'skipped', reason: 'wal.spool is not set: this host archives no WAL' };
  const { workflowId, started } = await ensureWalShipping(client, config);
  return { workflowId, action: started ? 'started' : 'already running' };
}

/** The monitor always runs: it is what tells people. */
export async function applyMonitor(client: Client, config: Config): Promise<{ workflowId: string; action: 'started' | 'already running' }> {
  const { workflowId, started } = await ensureMonitor(client, config);
  return { workflowId, action: started ? 'started' : 'already running' };
}

export async function runApplySchedules(client: Client, config: Config, out: Printer): Promise<number> {
  const schedules = await applySchedules(client, config);
  const walShipping = await applyWalShipping(client, config);
  const monitor = await applyMonitor(client, config);
  const conflicts = schedules.filter((s) => s.action === 'conflict');
  out.result({ schedules, walShipping, monitor }, () =>
    [
      ...schedules.map((s) => `${s.action} schedule ${s.scheduleId}${s.changes ? ` (${s.changes.join(', ')})` : ''}${s.reason ? ` (${s.reason})` : ''}`),
      `WAL shipping: ${walShipping.action}${walShipping.workflowId ? ` ${walShipping.workflowId}` : ''}${walShipping.reason ? ` (${walShipping.reason})` : ''}`,
      `monitor: ${monitor.action} ${monitor.workflowId}`,
    ].join('\n'),
  );
  return conflicts.length > 0 ? 1 : 0;
}

export async function runListSchedules(client: Client, out: Printer): Promise<number> {
  const schedules: { scheduleId: string; managed: boolean; paused: boolean; note?: string; nextRuns: string[]; recentRuns: { scheduledAt: string; workflowId: string }[] }[] = [];
  for await (const summary of client.schedule.list()) {
    const description = await client.schedule.getHandle(summary.scheduleId).describe();
    schedules.push({
      scheduleId: summary.scheduleId,
      managed: isManaged(description.memo),
      paused: description.state.paused,
      note: description.state.note || undefined,
      nextRuns: description.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
      recentRuns: description.info.recentActions.slice(-3).map((a) => ({ scheduledAt: a.scheduledAt.toISOString(), workflowId: a.action.workflow.workflowId })),
    });
  }
  out.result({ schedules }, () =>
    schedules.map((s) => `${s.scheduleId}${s.paused ? ` (paused${s.note ? `: ${s.note}` : ''})` : ''}  next: ${s.nextRuns[0] ?? '-'}`).join('\n') || 'no schedules',
  );
  return 0;
}

/** The schedule of that name, described; a name that is none is refused, naming the ones there are. */
async function existingSchedule(client: Client, name: string) {
  const description = await describeOrUndefined(client, name);
  if (description) return { handle: client.schedule.getHandle(name), description };
  const names: string[] = [];
  for await (const summary of client.schedule.list()) names.push(summary.scheduleId);
  throw new InputRefused(`no schedule is named "${name}"; the schedules are: ${names.sort().join(', ') || '(none)'}`);
}

export async function runPauseSchedule(client: Client, name: string, note: string | undefined, out: Printer): Promise<number> {
  const { handle, description } = await existingSchedule(client, name);
  const text = note ?? 'paused with backupctl schedules pause';
  await handle.pause(text);
  // The configuration still says paused: false; `schedules apply` would unpause it.
  const managed = isManaged(description.memo);
  out.result({ scheduleId: name, paused: true, note: text, managed }, () =>
    `paused schedule ${name}${managed ? ' (until unpaused, or until schedules apply when the configuration does not say paused: true)' : ''}`,
  );
  return 0;
}

export async function runUnpauseSchedule(client: Client, name: string, out: Printer): Promise<number> {
  const { handle } = await existingSchedule(client, name);
  await handle.unpause('unpaused with backupctl schedules unpause');
  out.result({ scheduleId: name, paused: false }, () => `unpaused schedule ${name}`);
  return 0;
}

/** One run now, under the schedule's own overlap policy: with SKIP, nothing while a run of it is going. */
export async function runTriggerSchedule(client: Client, name: string, out: Printer): Promise<number> {
  const { handle, description } = await existingSchedule(client, name);
  await handle.trigger(description.policies.overlap);
  const running = description.info.runningActions.map((a) => a.workflow.workflowId);
  out.result({ scheduleId: name, triggered: true, overlap: description.policies.overlap, running }, () =>
    `triggered schedule ${name}${running.length > 0 && description.policies.overlap === ScheduleOverlapPolicy.SKIP ? ` (a run is going, ${running.join(', ')}: this one is skipped)` : ''}`,
  );
  return 0;
}
