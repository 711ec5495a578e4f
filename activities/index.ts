// Every activity the worker registers, built over its dependencies so that tests can inject
// fakes and the worker injects real configuration and repositories.
import { createBaseBackupActivities } from './baseBackup.js';
import { createDatabaseBackupActivities, type DatabaseBackupDeps } from './databaseBackup.js';
import { createReportActivities } from './reports.js';
import { createRestoreActivities } from './restore.js';

export type ActivityDeps = DatabaseBackupDeps;

export function createActivities(deps: ActivityDeps) {
  return {
    ...createDatabaseBackupActivities(deps),
    ...createBaseBackupActivities(deps),
    ...createRestoreActivities(deps),
    ...createReportActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
