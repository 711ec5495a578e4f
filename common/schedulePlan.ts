// Which of our Temporal Schedules the configuration implies, by id: what `schedules apply`
// makes (client/commands/schedules.ts adds the workflow and its input) and what the monitor and
// `backupctl status` expect to find (engine/scheduleHealth.ts).
import { drillRepository, type Config } from './config.js';

export const DATABASE_SCHEDULE_ID = 'backup-database-nightly';
export const VERIFICATION_SCHEDULE_ID = 'verify-backup-weekly';
export const DRILL_SCHEDULE_ID = 'recovery-drill-monthly';
export const BASE_SCHEDULE_ID = 'backup-base-weekly';
export const RETENTION_SCHEDULE_ID = 'apply-retention-daily';

/** The memo a schedule `apply` made carries (set at creation: Temporal cannot change a schedule's memo later). */
export const MANAGED_BY = 'backupctl';

/** The workflow each of our schedules starts: one of our id without our memo that starts it is ours from before the memo. */
export const SCHEDULED_WORKFLOWS: Record<string, string> = {
  [DATABASE_SCHEDULE_ID]: 'backupDatabase',
  [VERIFICATION_SCHEDULE_ID]: 'verifyBackup',
  [DRILL_SCHEDULE_ID]: 'recoveryDrill',
  [BASE_SCHEDULE_ID]: 'backupBase',
  [RETENTION_SCHEDULE_ID]: 'applyRetention',
};

export type ScheduleName = keyof Config['schedules'];
export type Cadence = Config['schedules'][ScheduleName];

/** One schedule the configuration may imply: `reason` says why it does not, when it does not. */
export interface PlannedSchedule {
  scheduleId: string;
  name: ScheduleName;
  cadence: Cadence;
  reason?: string;
}

/** Every schedule the configuration may imply, in the order `apply` reports them. */
export function plannedSchedules(config: Config): PlannedSchedule[] {
  const s = config.schedules;
  const plan = (scheduleId: string, name: ScheduleName, reason?: string): PlannedSchedule => ({ scheduleId, name, cadence: s[name], ...(reason ? { reason } : {}) });
  return [
    plan(DATABASE_SCHEDULE_ID, 'database'),
    plan(VERIFICATION_SCHEDULE_ID, 'verification'),
    plan(DRILL_SCHEDULE_ID, 'drill', config.drill.host && drillRepository(config) ? undefined : 'drill.host is not configured (and an S3 repository or drill.repository is needed)'),
    plan(BASE_SCHEDULE_ID, 'base', config.baseBackup.url ? undefined : 'baseBackup.url (a replication role) is not configured'),
    plan(RETENTION_SCHEDULE_ID, 'retention'),
  ];
}
