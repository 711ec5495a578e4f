// `backupctl schedules apply | list`: the seed's cron lines as Temporal Schedules. Unlike cron,
// a schedule remembers: a run missed while the server or the workers were down is taken when
// they return (catch-up window), and a run still going when the next is due is not doubled.
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import { backupDatabase } from '../../workflows/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../../workflows/types.js';
import { databaseHost, type Config } from '../../workers/config.js';
import type { Printer } from '../output.js';

export const DATABASE_SCHEDULE_ID = 'backup-database-nightly';

export function databaseSchedule(config: Config): ScheduleOptions {
  const { cron, timezone, paused } = config.schedules.database;
  return {
    scheduleId: DATABASE_SCHEDULE_ID,
    spec: { cronExpressions: [cron], timezone },
    action: {
      type: 'startWorkflow',
      workflowType: backupDatabase,
      // Temporal appends the scheduled time: backup-database-nightly-2026-11-26T02:00:00Z.
      workflowId: DATABASE_SCHEDULE_ID,
      taskQueue: SHARED_TASK_QUEUE,
      args: [{ hostTaskQueue: hostTaskQueue(databaseHost(config)) }],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 day', pauseOnFailure: false },
    state: { paused, note: paused ? 'paused in configuration' : undefined },
  };
}

/** Creates each schedule, or brings an existing one in line with the configuration. */
export async function applySchedules(client: Client, config: Config): Promise<{ scheduleId: string; action: 'created' | 'updated' }[]> {
  const wanted = databaseSchedule(config);
  const handle = client.schedule.getHandle(wanted.scheduleId);
  try {
    await handle.describe();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
    await client.schedule.create(wanted);
    return [{ scheduleId: wanted.scheduleId, action: 'created' }];
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
  return [{ scheduleId: wanted.scheduleId, action: 'updated' }];
}

export async function runApplySchedules(client: Client, config: Config, out: Printer): Promise<number> {
  const applied = await applySchedules(client, config);
  out.result({ schedules: applied }, () => applied.map((s) => `${s.action} schedule ${s.scheduleId}`).join('\n'));
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
