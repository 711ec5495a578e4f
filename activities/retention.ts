// Activities of retention (workflows/applyRetention.ts): decide and record, then prune one
// repository at a time. They run on the database host's task queue: the WAL spool is a folder there.
import { Context } from '@temporalio/activity';
import type { RepositoryRetention, RetentionComponent } from '../common/retentionTypes.js';
import { ErrorType } from '../common/types.js';
import { transient } from '../engine/errors.js';
import { loadSigner, loadVerifier } from '../engine/manifestSignature.js';
import { watchProgress } from '../engine/progressWatch.js';
import { applyReport, buildReport, plannedFor, readReport, recordReport } from '../engine/prune.js';
import { decideRetention } from '../engine/retention.js';
import { ManifestCache } from '../engine/manifestCache.js';
import { readRetentionCatalog } from '../engine/retentionCatalog.js';
import { retentionPolicyOf } from '../engine/retentionPolicy.js';
import { pickRepositories } from '../engine/storage/index.js';
import { spoolRepository } from '../engine/walArchive.js';
import type { DatabaseBackupDeps } from './databaseBackup.js';
import './attemptContext.js';

export interface PlanRetentionInput {
  reportId: string;
  workflowId: string;
  runId: string;
  /** The workflow's clock: the decision is a function of it, never of this host's. */
  now: number;
  dryRun: boolean;
  components?: RetentionComponent[];
  repositories?: string[];
}

export interface PruneRepositoryInput {
  reportId: string;
  repository: string;
  /** The digest planRetention returned; absent only in runs started before it did. */
  reportSha256?: string;
}

export interface RetentionPlan {
  /** Repositories the report was written to: only these may be pruned. */
  recordedIn: string[];
  /** The sha256 of the report as recorded: each prune refuses a report that is not these bytes. */
  reportSha256?: string;
  /** The spool first: another repository lets go of WAL only once the spool no longer holds it. */
  order: string[];
  planned: RepositoryRetention[];
}

/** Listing 200,000 WAL keys or deleting a batch takes seconds; nothing moving for this long is a stall. */
const RETENTION_STALL_MS = 5 * 60_000;

export function createRetentionActivities(deps: DatabaseBackupDeps) {
  const { config } = deps;
  // This worker's manifests read before: the nightly run reads only what changed since.
  const manifestCache = new ManifestCache();

  function spoolName(): string | undefined {
    try {
      return spoolRepository(config, deps.repositories).name;
    } catch {
      return undefined;
    }
  }

  return {
    /**
     * Reads every repository's catalog (one that cannot be listed is reported, nothing of it
     * judged), decides what the policy keeps at the workflow's `now`, and writes the decision as
     * `retention/<reportId>.json` into every repository it can. Deletes nothing. Idempotent: a
     * retry decides again and writes the same key. Heartbeats while it reads. Permanent:
     * UnknownRepository (a --repository not configured).
     */
    async planRetention(input: PlanRetentionInput): Promise<RetentionPlan> {
      const ctx = Context.current();
      if (input.repositories) pickRepositories(deps.repositories, input.repositories, config.host);
      let read = 0;
      const stop = watchProgress({
        counters: () => [read],
        beat: () => ctx.heartbeat({ phase: 'reading', read }),
        stallTimeoutMs: RETENTION_STALL_MS,
        onStall: () => undefined,
      });
      try {
        const spool = spoolName();
        const reading = await readRetentionCatalog(deps.repositories, {
          verifier: await loadVerifier(config),
          allowUnsigned: !config.signing.required,
          spool,
          now: input.now,
          beat: () => read++,
          manifestCache,
          lockDays: Object.fromEntries(Object.entries(config.repositories).flatMap(([name, r]) => (r.type === 's3' && r.objectLock ? [[name, r.objectLock.days]] : []))),
        });
        const policy = retentionPolicyOf(config);
        const decision = decideRetention(reading.catalog, policy, input.now, deps.repositories.map((r) => r.name), { components: input.components, repositories: input.repositories });
        const report = buildReport(
          { reportId: input.reportId, workflowId: input.workflowId, runId: input.runId, dryRun: input.dryRun, timezone: policy.timezone, scope: { components: input.components, repositories: input.repositories } },
          reading,
          decision,
        );
        const reachable = deps.repositories.filter((r) => !reading.unreachable.some((u) => u.repository === r.name));
        const { recordedIn, failed, sha256 } = await recordReport(reachable, report);
        const planned = deps.repositories.map((r) => {
          const plan = plannedFor(report, r.name);
          const notRecorded = failed.find((f) => f.repository === r.name);
          return notRecorded ? { ...plan, failures: [`the decision could not be recorded here, so nothing is deleted here: ${notRecorded.reason}`] } : plan;
        });
        const names = deps.repositories.map((r) => r.name);
        return { recordedIn, reportSha256: sha256, order: spool ? [spool, ...names.filter((n) => n !== spool)] : names, planned };
      } finally {
        stop();
      }
    },

    /**
     * Carries out a recorded decision in one repository (engine/prune.ts): manifests first, then
     * WAL entries, then objects, in batches. Idempotent: a retry reads the same report and
     * deletes what is left. Heartbeats the keys removed; a pass that removes nothing for five
     * minutes fails, retryably. A stale attempt (its workflow closed, or superseded) stops
     * before its next batch. Given `reportSha256` (the decision's), a report rewritten in the
     * repository since is refused. Permanent: ManifestDamaged (the report is not whole, or not
     * the one recorded).
     */
    async pruneRepository(input: PruneRepositoryInput): Promise<RepositoryRetention> {
      const ctx = Context.current();
      const [repository] = pickRepositories(deps.repositories, [input.repository], config.host);
      let removed = 0;
      const abort = new AbortController();
      const onCancel = () => abort.abort(ctx.cancellationSignal.reason);
      ctx.cancellationSignal.addEventListener('abort', onCancel, { once: true });
      const stop = watchProgress({
        counters: () => [removed],
        beat: () => ctx.heartbeat({ phase: 'pruning', repository: repository.name, removed }),
        stallTimeoutMs: RETENTION_STALL_MS,
        onStall: (still) => abort.abort(transient(ErrorType.PipelineStalled, `pruning ${repository.name} removed nothing for ${Math.round(still / 1000)} s (${removed} removed)`)),
      });
      try {
        ctx.heartbeat({ phase: 'reading the report', repository: repository.name });
        const report = await readReport(repository, input.reportId, input.reportSha256);
        return await applyReport(repository, report, { signal: abort.signal, onProgress: (n) => (removed = n), signer: config.signing.privateKeyFile ? await loadSigner(config) : undefined });
      } catch (err) {
        if (abort.signal.aborted) throw abort.signal.reason ?? err;
        throw err;
      } finally {
        stop();
        ctx.cancellationSignal.removeEventListener('abort', onCancel);
      }
    },
  };
}
