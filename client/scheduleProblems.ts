// `backupctl status`'s look at our Temporal Schedules: the monitor's judgement
// (engine/scheduleHealth.ts), described through the CLI's client.
import type { Client } from '@temporalio/client';
import type { Config } from '../common/config.js';
import type { Problem } from '../engine/problem.js';
import { lookAtSchedules } from '../engine/scheduleHealth.js';
import { describeOrUndefined } from './commands/schedules.js';

export function scheduleProblems(client: Client, config: Config): Promise<Problem[]> {
  return lookAtSchedules(config, (scheduleId) => describeOrUndefined(client, scheduleId));
}
