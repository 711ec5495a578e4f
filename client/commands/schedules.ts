// `backupctl schedules apply | list`: the seed's cron lines as Temporal Schedules. Unlike cron,
// a schedule remembers: a run missed while the server or the workers were down is taken when
// they return (catch-up window), and a run still going when the next is due is not doubled.
// The cadences: the nightly backup, the weekly base backup, verification, the monthly drill.
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import { backupBase, backupDatabase, recoveryDrill, verifyBackup } from '../../workflows/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../../common/types.js';
import { databaseHost, drillRepository, verificationHost, type Config } from '../../common/config.js';
import { drillInput } from './drill.js';
import type { Printer } from '../output.js';

export const DATABASE_SCHEDULE_ID = 'backup-database-nightly';
export const VERIFICATION_SCHEDULE_ID = 'verify-backup-weekly';
export const DRILL_SCHEDULE_ID = 'recovery-drill-monthly';
export const BASE_SCHEDULE_ID = 'backup-base-weekly';

type Cadence = Config['schedules']['database'];

function scheduleOf(scheduleId: string, cadence: Cadence, action: ScheduleOptions['action']): ScheduleOptions {
  return {
    scheduleId,
    spec: { cronExpressions: [cadence.cron], timezone: cadence.timezone },
    action,
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 day', pauseOnFailure: false },
    state: { paused: cadence.paused, note: cadence.paused ? 'paused in configuration' : undefined },
  };
}

export function databaseSchedule(config: Config): ScheduleOptions {
  return scheduleOf(DATABASE_SCHEDULE_ID, config.schedules.database, {
    type: 'startWorkflow',
    workflowType: backupDatabase,
    // Temporal appends the scheduled time: backup-database-nightly-2026-11-26T02:00:00Z.
    workflowId: DATABASE_SCHEDULE_ID,
    taskQueue: SHARED_TASK_QUEUE,
    args: [{ hostTaskQueue: hostTaskQueue(databaseHost(config)) }],
  });
}

/** Sunday 01:00 by default; only when a replication connection is configured. */
export function baseSchedule(config: Config): ScheduleOptions | undefined {
  if (!config.baseBackup.url) return undefined;
  return scheduleOf(BASE_SCHEDULE_ID, config.schedules.base, {
    type: 'startWorkflow',
    workflowType: backupBase,
    workflowId: BASE_SCHEDULE_ID,
    taskQueue: SHARED_TASK_QUEUE,
    args: [{ hostTaskQueue: hostTaskQueue(databaseHost(config)) }],
  });
}

/** Sunday 03:00 by default: the newest backup restored into scratch on the verification host. */
export function verificationSchedule(config: Config): ScheduleOptions {
  return scheduleOf(VERIFICATION_SCHEDULE_ID, config.schedules.verification, {
    type: 'startWorkflow',
    workflowType: verifyBackup,
    workflowId: VERIFICATION_SCHEDULE_ID,
    taskQueue: SHARED_TASK_QUEUE,
    args: [{ hostTaskQueue: hostTaskQueue(verificationHost(config)), backup: 'latest' }],
  });
}

/** The first of the month by default, on the drill host; only when one is configured. */
export function drillSchedule(config: Config): ScheduleOptions | undefined {
  if (!config.drill.host || !drillRepository(config)) return undefined;
  return scheduleOf(DRILL_SCHEDULE_ID, config.schedules.drill, {
    type: 'startWorkflow',
    workflowType: recoveryDrill,
    workflowId: DRILL_SCHEDULE_ID,
    taskQueue: SHARED_TASK_QUEUE,
    args: [drillInput(config)],
  });
}

export interface AppliedSchedule {
  scheduleId: string;
  action: 'created' | 'updated' | 'skipped';
  reason?: string;
}

/** Creates each schedule, or brings an existing one in line with the configuration. */
export async function applySchedules(client: Client, config: Config): Promise<AppliedSchedule[]> {
  const applied: AppliedSchedule[] = [];
  for (const wanted of [databaseSchedule(config), verificationSchedule(config)]) applied.push(await applySchedule(client, wanted));
  const drill = drillSchedule(config);
  if (drill) applied.push(await applySchedule(client, drill));
  else applied.push({ scheduleId: DRILL_SCHEDULE_ID, action: 'skipped', reason: 'drill.host is not configured (and an S3 repository or drill.repository is needed)' });
  const base = baseSchedule(config);
  if (base) applied.push(await applySchedule(client, base));
  else applied.push({ scheduleId: BASE_SCHEDULE_ID, action: 'skipped', reason: 'baseBackup.url (a replication role) is not configured' });
  return applied;
}

async function applySchedule(client: Client, wanted: ScheduleOptions): Promise<AppliedSchedule> {
  const handle = client.schedule.getHandle(wanted.scheduleId);
  try {
    await handle.describe();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
    await client.schedule.create(wanted);
    return { scheduleId: wanted.scheduleId, action: 'created' };
  }
  await handle.update((current) => ({
    ...current,
    spec: wanted.spec,
    action: wanted.action,
    policies: { ...current.policies, ...wanted.policies },
    state: { ...current.state, paused: wanted.state!.paused! },
  }));
  if (wanted.state?.paused) await handle.pause('paused in configuration');
  else await handle.unpause('applied from configuration');
  return { scheduleId: wanted.scheduleId, action: 'updated' };
}

export async function runApplySchedules(client: Client, config: Config, out: Printer): Promise<number> {
  const applied = await applySchedules(client, config);
  out.result({ schedules: applied }, () => applied.map((s) => `${s.action} schedule ${s.scheduleId}${s.reason ? ` (${s.reason})` : ''}`).join('\n'));
  return 0;
}

export async function runListSchedules(client: Client, out: Printer): Promise<number> {
  const schedules: { scheduleId: string; paused: boolean; nextRuns: string[]; recentRuns: { scheduledAt: string; workflowId: string }[] }[] = [];
  for await (const summary of client.schedule.list()) {
    const description = await client.schedule.getHandle(summary.scheduleId).describe();
    schedules.push({
      scheduleId: summary.scheduleId,
      paused: description.state.paused,
      nextRuns: description.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
      recentRuns: description.info.recentActions.slice(-3).map((a) => ({ scheduledAt: a.scheduledAt.toISOString(), workflowId: a.action.workflow.workflowId })),
    });
  }
  out.result({ schedules }, () =>
    schedules.map((s) => `${s.scheduleId}${s.paused ? ' (paused)' : ''}  next: ${s.nextRuns[0] ?? '-'}`).join('\n') || 'no schedules',
  );
  return 0;
}
