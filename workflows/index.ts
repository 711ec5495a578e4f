// Every workflow the worker registers.
export { backupDatabase } from './backupDatabase.js';
export { restoreDatabase } from './restoreDatabase.js';
export { verifyBackup } from './verifyBackup.js';
export { recoveryDrill } from './recoveryDrill.js';
export { backupBase } from './backupBase.js';
export { shipWal } from './shipWal.js';
export { pointInTimeRecovery } from './pointInTimeRecovery.js';
