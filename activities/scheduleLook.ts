// The monitor's look at our Temporal Schedules (engine/scheduleHealth.ts judges): described
// through the activity's own client, read-only. Called from monitorChecks, not an activity of
// its own: the monitor's history is unchanged.
import { ScheduleNotFoundError, type Client } from '@temporalio/client';
import type { Config } from '../common/config.js';
import { redact } from '../common/redact.js';
import { errorText } from '../engine/errors.js';
import type { Problem } from '../engine/problem.js';
import { lookAtSchedules } from '../engine/scheduleHealth.js';

export async function scheduleProblems(client: () => Client, config: Config): Promise<Problem[]> {
  let temporal: Client;
  try {
    temporal = client();
  } catch (err) {
    // A worker made without a client (none in production) cannot look: said, not thrown.
    return [{ key: 'schedules.unreadable', message: `the schedules cannot be described from here: ${redact(errorText(err))}` }];
  }
  return lookAtSchedules(config, (scheduleId) =>
    temporal.schedule
      .getHandle(scheduleId)
      .describe()
      .catch((err) => {
        if (err instanceof ScheduleNotFoundError) return undefined;
        throw err;
      }),
  );
}
