// The live database's access, given back after a swap that failed: the swap sets
// ALLOW_CONNECTIONS false on the live database, and that outlives the session that set it. The
// swap itself gives it back on every path it can, but when the server stays away longer than
// all of its retries, only the workflow's compensation is left to do it, once the server is
// back; without it the application would find its database refusing every connection,
// long after the restore had failed.
import { log } from '@temporalio/activity';
import { ErrorType } from '../common/types.js';
import type { Config } from '../common/config.js';
import { permanent } from '../engine/errors.js';
import { currentAttempt } from '../engine/attemptStanding.js';
import { liveDatabaseName, restoreServer } from '../engine/restoreTarget.js';
import { reopenAfterFailedSwap } from '../engine/swap.js';
import './attemptContext.js';

export function createLiveAccessActivities(deps: { config: Config }) {
  const { config } = deps;
  return {
    /**
     * Lets the live database accept connections again, whatever the swap left, and the name
     * the swap kept the old one as when this run's swap went through (never another's
     * database under that name); names that already do are left alone. Retryable while the
     * server is away (DatabaseUnreachable). Returns what it reopened.
     */
    async allowLiveDatabaseConnections(input: { live: string; keepAs: string }): Promise<string[]> {
      const live = liveDatabaseName(config);
      if (input.live !== live) throw permanent(ErrorType.SwapFailed, `cannot reopen: "${input.live}" is not the configured live database "${live}"`);
      const reopened = await reopenAfterFailedSwap(restoreServer(config), input, currentAttempt()?.runId || undefined);
      if (reopened.length) log.warn('databases accept connections again after a failed swap', { databases: reopened });
      return reopened;
    },
  };
}
