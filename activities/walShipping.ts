// Activities of the WAL shipping workflow: copy what the spool has and another repository lacks.
import { Context } from '@temporalio/activity';
import type { WalShipResult } from '../common/pitrTypes.js';
import type { DatabaseBackupDeps } from './databaseBackup.js';
import { ErrorType } from '../common/types.js';
import { transient } from '../engine/errors.js';
import { loadSigner } from '../engine/manifestSignature.js';
import { watchProgress } from '../engine/progressWatch.js';
import { pickRepositories } from '../engine/storage/index.js';
import { archiveLag, shipSegments, spoolRepository } from '../engine/walArchive.js';
import './attemptContext.js';

/** Listing a long archive or uploading one segment to a slow store takes seconds, not minutes. */
const SHIPPING_STALL_MS = 5 * 60_000;

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
     * its entry, signed with this host's signing key, is written there (the spool's entries are
     * unsigned: wal-push runs as the database server's OS user, without the key). Idempotent: a retry ships what is still missing. Heartbeats
     * the count shipped. A superseded attempt (its heartbeat finds it cancelled or gone) stops
     * writing at once, and never overwrites what a newer attempt shipped.
     */
    async shipWalTo(input: { repository: string }): Promise<WalShipResult> {
      const ctx = Context.current();
      const spool = spoolRepository(config, deps.repositories);
      const [target] = pickRepositories(deps.repositories, [input.repository], config.host);
      const signer = await loadSigner(config);
      let count = 0;
      const stop = new AbortController();
      const onCancel = () => stop.abort(ctx.cancellationSignal.reason);
      ctx.cancellationSignal.addEventListener('abort', onCancel, { once: true });
      // Heartbeats while segments go out; a pass that ships none for the stall timeout (a
      // listing or an upload that never returns) stops, and its heartbeats with it.
      const stopWatch = watchProgress({
        counters: () => [count],
        beat: () => ctx.heartbeat({ shipped: count }),
        stallTimeoutMs: SHIPPING_STALL_MS,
        onStall: (still) => stop.abort(transient(ErrorType.PipelineStalled, `shipping WAL to ${target.name} moved no segment for ${Math.round(still / 1000)} s (${count} shipped)`)),
      });
      try {
        ctx.heartbeat({ shipped: 0 });
        const shipped = await shipSegments(spool, target, { signal: stop.signal, onProgress: (n) => (count = n), signer });
        const lag = await archiveLag(spool, target);
        return { repository: target.name, shipped: shipped.length, newestSegment: lag.newestSegment, behind: lag.behind.length };
      } catch (err) {
        if (stop.signal.aborted) throw stop.signal.reason ?? err;
        throw err;
      } finally {
        stopWatch();
        ctx.cancellationSignal.removeEventListener('abort', onCancel);
      }
    },
  };
}
