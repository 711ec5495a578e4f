// Every activity the worker registers, built over its dependencies so that tests can inject
// fakes and the worker injects real configuration and repositories.
import { createBaseBackupActivities } from './baseBackup.js';
import { createCopyAuditActivities } from './copyAudit.js';
import { createDatabaseBackupActivities } from './databaseBackup.js';
import { withFailures } from './failures.js';
import { createLiveAccessActivities } from './liveAccess.js';
import { createMonitorActivities, type MonitorDeps } from './monitor.js';
import { createPitrActivities, type PitrDeps } from './pitr.js';
import { createReportActivities } from './reports.js';
import { createRestoreActivities } from './restore.js';
import { createRetentionActivities } from './retention.js';
import { createSweepActivities } from './sweep.js';
import { createWalShippingActivities } from './walShipping.js';
import './attemptContext.js';

export type ActivityDeps = PitrDeps & MonitorDeps;

export function createActivities(deps: ActivityDeps) {
  return withFailures({
    ...createDatabaseBackupActivities(deps),
    ...createBaseBackupActivities(deps),
    ...createRestoreActivities(deps),
    ...createLiveAccessActivities(deps),
    ...createReportActivities(deps),
    ...createCopyAuditActivities(deps),
    ...createWalShippingActivities(deps),
    ...createPitrActivities(deps),
    ...createSweepActivities(deps),
    ...createRetentionActivities(deps),
    ...createMonitorActivities(deps),
  });
}

export type Activities = ReturnType<typeof createActivities>;
