// The input checks of every workflow the CLI starts, in one place both import: each workflow
// runs its check first thing, and the CLI runs the very same function before it starts one,
// so bad input is refused before a workflow (and its history) exists. Pure and deterministic.
export { validateInput as validateDatabaseBackupInput } from './backupDatabase.js';
export { validateInput as validateBaseBackupInput } from './backupBase.js';
export { validateInput as validateRestoreDatabaseInput } from './restoreDatabase.js';
export { validateInput as validateVerifyBackupInput } from './verifyBackup.js';
export { validateInput as validateRecoveryDrillInput } from './recoveryDrill.js';
export { validateInput as validatePointInTimeRecoveryInput } from './pointInTimeRecovery.js';
export { validateInput as validateSweepLeftoversInput } from './sweepLeftovers.js';
export { targetFormProblem } from './recoveryTargets.js';
export { validateInput as validateApplyRetentionInput } from './applyRetention.js';
