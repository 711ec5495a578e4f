// Activities of the WAL shipping workflow: copy what the spool has and another repository lacks.
import { Context } from '@temporalio/activity';
import type { WalShipResult } from '../workflows/pitrTypes.js';
import type { DatabaseBackupDeps } from './databaseBackup.js';
import { pickRepositories } from './storage/index.js';
import { archiveLag, shipSegments, spoolRepository } from './walArchive.js';

export function createWalShippingActivities(deps: DatabaseBackupDeps) {
  const { config } = deps;
  return {
    /** The spool and the repositories WAL is shipped to (every other configured one). Read-only. */
    async walShippingTargets(): Promise<{ spool: string; targets: string[] }> {
      const spool = spoolRepository(config, deps.repositories);
      return { spool: spool.name, targets: deps.repositories.filter((r) => r !== spool).map((r) => r.name) };
    },

    /**
     * Ships every archived segment the repository lacks, oldest first, each verified before
     * its entry is written there. Idempotent: a retry ships what is still missing. Heartbeats
     * the count shipped. A superseded attempt (its heartbeat finds it cancelled or gone) stops
     * writing at once, and never overwrites what a newer attempt shipped.
     */
    async shipWalTo(input: { repository: string }): Promise<WalShipResult> {
      const ctx = Context.current();
      const spool = spoolRepository(config, deps.repositories);
      const [target] = pickRepositories(deps.repositories, [input.repository], config.host);
      let count = 0;
      // Listing a long archive or uploading one segment can outlast a heartbeat interval.
      const ticker = setInterval(() => ctx.heartbeat({ shipped: count }), 5000);
      try {
        ctx.heartbeat({ shipped: 0 });
        const shipped = await shipSegments(spool, target, { signal: ctx.cancellationSignal, onProgress: (n) => (count = n) });
        const lag = await archiveLag(spool, target);
        return { repository: target.name, shipped: shipped.length, newestSegment: lag.newestSegment, behind: lag.behind.length };
      } finally {
        clearInterval(ticker);
      }
    },
  };
}
