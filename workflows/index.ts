// Every workflow the worker registers.
export { backupDatabase } from './backupDatabase.js';
