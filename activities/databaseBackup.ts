// Activities of the nightly database backup. They run on the database host's task queue
// (the dump needs the database and the local repository; the verifier reads that repository).
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { Context, log } from '@temporalio/activity';
import {
  COMPRESSIONS,
  ErrorType,
  type BackupManifest,
  type Compression,
  type CopyReport,
  type DatabaseBackupPlan,
  type DumpResult,
  type StoredObject,
} from '../common/types.js';
import type { BaseBackupManifest } from '../common/pitrTypes.js';
import type { Config } from '../common/config.js';
import { TRANSFER_MAX_ATTEMPTS } from '../common/attempts.js';
import { assertClaimed, attemptObjectKey, claimingAttempt, discardUnfinished, inEachRepository, manifestPublished, publishManifest, sweepAttempts } from '../engine/backupClaim.js';
import { type Component } from '../engine/catalog.js';
import { loadRecipient, type Recipient } from '../engine/encryption.js';
import { loadSigner, shortKeyId, signManifest } from '../engine/manifestSignature.js';
import { classifyDatabaseError, errorText, permanent, transient } from '../engine/errors.js';
import { watchProgress } from '../engine/progressWatch.js';
import { connect, openSnapshot, parseDatabaseUrl, spawnArchiveReader, spawnDump, spawnGlobalsDump } from '../engine/postgres.js';
import { streamToRepositories, type PipelineProgress } from '../engine/pipeline.js';
import { pickRepositories } from '../engine/storage/index.js';
import type { Repository } from '../engine/storage/repository.js';
import { checkAndClaim } from '../engine/backupPlan.js';
import './attemptContext.js';

export interface DatabaseBackupDeps {
  config: Config;
  repositories: Repository[];
  binDir?: string;
}

export interface PlanInput {
  backupId: string;
  runId: string;
  /** Named in the claim, for people; absent in runs started before claims existed. */
  workflowId?: string;
  compression?: Compression;
  repositories?: string[];
}

export interface DumpInput {
  backupId: string;
  plan: DatabaseBackupPlan;
}

export interface VerifyInput {
  objects: StoredObject[];
  repositories: string[];
}

export interface DiscardInput {
  backupId: string;
  runId: string;
  repositories: string[];
}

export interface SweepInput {
  component: Component;
  backupId: string;
  runId: string;
  repositories: string[];
  /** The keys the manifest names: never removed. */
  keep: string[];
}

/** Attempts an activity may have made: the retry policy's bound. */
export const MAX_TRANSFER_ATTEMPTS = TRANSFER_MAX_ATTEMPTS;

export const ROLES_OF: Record<Component, StoredObject['role'][]> = { database: ['globals', 'dump'], base: ['base'] };

/** How the dump's readability is proved without the private key (see README, "Verification"). */
export const READABILITY_CHECK = 'pg_restore read the whole plaintext archive while it was streamed (no private key on the backup host)';

export function createDatabaseBackupActivities(deps: DatabaseBackupDeps) {
  const { config } = deps;
  const target = () => parseDatabaseUrl(config.database.url, config.database.passwordFile);

  const pick = (names: string[] | undefined) => pickRepositories(deps.repositories, names, config.host);

  return {
    /**
     * Checks everything a backup needs before anything is written: the database answers with
     * these credentials, the public key can encrypt, the signing key signs (signing.privateKeyFile,
     * unless signing.required is false), every repository is reachable and
     * writable, and no other run already completed a backup under this id. Then claims the id
     * for this run in every repository (the only write; this run's own claim counts as
     * ours, so a retry is harmless). Permanent: UnknownDatabase, AuthenticationFailed,
     * PublicKeyMissing, InvalidPublicKey, InvalidConfig (signing key), BucketMissing,
     * StorageAccessDenied, UnknownRepository, BackupAlreadyExists. Transient: DatabaseUnreachable, StorageUnreachable.
     */
    async planDatabaseBackup(input: PlanInput): Promise<DatabaseBackupPlan> {
      const repositories = pick(input.repositories);
      const db = target();
      const client = await connect(db);
      let serverVersion: string;
      try {
        serverVersion = (await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0].v;
      } catch (err) {
        throw classifyDatabaseError(err, `querying ${db.database}`);
      } finally {
        await client.end().catch(() => undefined);
      }
      const { encryptionFingerprint } = await checkAndClaim(
        config,
        repositories,
        'database',
        input.backupId,
        { workflowId: input.workflowId ?? Context.current().info.workflowExecution?.workflowId ?? '', runId: input.runId },
        (repository, runId) => `backup ${input.backupId} already exists in repository ${repository} (made by run ${runId}); start the backup with a new workflow id`,
      );
      return {
        database: db.database,
        serverVersion,
        repositories: repositories.map((r) => ({ name: r.name, kind: r.kind })),
        keyTables: config.database.keyTables,
        compression: input.compression ?? config.compression.algorithm,
        encryptionFingerprint,
      };
    },

    /**
     * Dumps the globals and the database in one snapshot, streaming each through compression
     * and encryption into every repository at once, and counts the key tables in the same
     * snapshot. Writes only after proving this run holds the backup id, and only into this
     * attempt's own folder: a retry writes a folder of its own, and an attempt that wakes up
     * after being superseded can neither overwrite nor delete what another wrote. It deletes
     * nothing (the workflow's compensation and sweep do). Heartbeats { phase, role,
     * plainBytes, storedBytes } every second; a heartbeat answered "not found" (superseded)
     * cancels it, which stops every stage.
     */
    async dumpDatabaseToRepositories(input: DumpInput): Promise<DumpResult> {
      const ctx = Context.current();
      const repositories = pick(input.plan.repositories.map((r) => r.name));
      const db = target();
      const compression = { ...config.compression, algorithm: input.plan.compression };
      const abort = new AbortController();
      const onCancel = () => abort.abort();
      ctx.cancellationSignal.addEventListener('abort', onCancel, { once: true });

      let recipient: Recipient | undefined;
      let snapshot: Awaited<ReturnType<typeof openSnapshot>> | undefined;
      const { runId, attempt } = claimingAttempt();
      try {
        await assertClaimed(repositories, 'database', input.backupId, runId);
        recipient = await loadRecipient(config.encryption.publicKeyFile);
        if (recipient.fingerprint !== input.plan.encryptionFingerprint) {
          throw permanent(ErrorType.InvalidPublicKey, `the public key changed since the backup was planned (${input.plan.encryptionFingerprint} -> ${recipient.fingerprint})`);
        }
        snapshot = await openSnapshot(db, input.plan.keyTables);
        ctx.heartbeat({ phase: 'snapshot', snapshotTakenAt: snapshot.takenAt });

        const globalsKey = attemptObjectKey('database', input.backupId, runId, attempt, 'globals', compression.algorithm);
        const dumpKey = attemptObjectKey('database', input.backupId, runId, attempt, 'dump', compression.algorithm);
        // One pass after the other. Run side by side they would save about 0.1 s, but a failure
        // in one (a full disk) then has to stop the other mid-flight; sequential is simpler to
        // make certain.
        const globals = await streamToRepositories({
          producer: spawnGlobalsDump(db, deps.binDir, config.database.includeRolePasswords, abort.signal),
          classifyProducerError: (err) => classifyDatabaseError(err, 'dumping the globals (roles, tablespaces)'),
          compression,
          recipient,
          repositories,
          key: globalsKey,
          abort,
        });
        const dump = await streamToRepositories({
          producer: spawnDump(db, deps.binDir, snapshot.snapshotId, abort.signal),
          classifyProducerError: (err) => classifyDatabaseError(err, `dumping database ${db.database}`),
          reader: {
            process: spawnArchiveReader(deps.binDir, abort.signal),
            failure: (err) => permanent(ErrorType.DumpUnreadable, `the dump does not read back with pg_restore: ${errorText(err)}`),
          },
          compression,
          recipient,
          repositories,
          key: dumpKey,
          abort,
          onProgress: (p: PipelineProgress) => ctx.heartbeat({ phase: 'dumping', role: 'dump', ...p }),
        });

        const warnings = snapshot.missingTables.map((t) => `key table ${t} does not exist in ${db.database}; no row count recorded`);
        warnings.forEach((w) => log.warn(w, { backupId: input.backupId }));
        return {
          objects: [
            { role: 'globals', key: globalsKey, ...globals },
            { role: 'dump', key: dumpKey, ...dump },
          ],
          rowCounts: snapshot.rowCounts,
          warnings,
          readabilityCheck: READABILITY_CHECK,
          source: {
            database: db.database,
            systemIdentifier: snapshot.systemIdentifier,
            owner: snapshot.owner,
            serverVersion: snapshot.serverVersion,
            lsn: snapshot.lsn,
            snapshotTakenAt: snapshot.takenAt,
            databaseBytes: snapshot.databaseBytes,
          },
        };
      } catch (err) {
        abort.abort();
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? err;
        throw err;
      } finally {
        ctx.cancellationSignal.removeEventListener('abort', onCancel);
        await snapshot?.close();
        await recipient?.dispose();
      }
    },

    /**
     * Reads every copy back: size from the repository's listing, then every byte through
     * sha256, compared with what the pipeline hashed on the way in. Read-only, so idempotent.
     * Permanent: CopyMissing, ChecksumMismatch. Heartbeats bytes read while they move; reads
     * that stand still for the stall timeout fail (PipelineStalled, retryable).
     */
    async verifyBackupCopies(input: VerifyInput): Promise<CopyReport[]> {
      const ctx = Context.current();
      const repositories = pick(input.repositories);
      let bytesRead = 0;
      const reading = new AbortController();
      const onCancel = () => reading.abort(ctx.cancellationSignal.reason);
      ctx.cancellationSignal.addEventListener('abort', onCancel, { once: true });
      const stopWatch = watchProgress({
        counters: () => [bytesRead],
        beat: () => ctx.heartbeat({ phase: 'verifying', bytesRead }),
        onStall: (still) =>
          reading.abort(transient(ErrorType.PipelineStalled, `reading the copies back moved no byte for ${Math.round(still / 1000)} s (${bytesRead} bytes read)`)),
      });
      try {
        const reports = await Promise.all(
          repositories.flatMap((repository) =>
            input.objects.map(async (object): Promise<CopyReport> => {
              const info = await repository.stat(object.key);
              if (!info) throw permanent(ErrorType.CopyMissing, `repository ${repository.name} has no ${object.key} right after writing it`);
              if (info.bytes !== object.bytes) {
                throw permanent(ErrorType.ChecksumMismatch, `repository ${repository.name}: ${object.key} has ${info.bytes} bytes, expected ${object.bytes}`);
              }
              const hash = createHash('sha256');
              await pipeline(
                await repository.get(object.key, { signal: reading.signal }),
                new Writable({
                  write(chunk: Buffer, _enc, done) {
                    hash.update(chunk);
                    bytesRead += chunk.length;
                    done();
                  },
                }),
                { signal: reading.signal },
              );
              const sha256 = hash.digest('hex');
              if (sha256 !== object.sha256) {
                throw permanent(ErrorType.ChecksumMismatch, `repository ${repository.name}: ${object.key} reads back as sha256 ${sha256}, expected ${object.sha256}`);
              }
              return { repository: repository.name, key: object.key, bytes: info.bytes, sha256, verified: true };
            }),
          ),
        );
        return reports;
      } catch (err) {
        if (reading.signal.aborted) throw reading.signal.reason ?? err;
        throw err;
      } finally {
        stopWatch();
        ctx.cancellationSignal.removeEventListener('abort', onCancel);
      }
    },

    /**
     * Signs the manifest with this host's signing key (signing.privateKeyFile) and writes it
     * into every repository: the commit step that makes the backup count. Only the run
     * holding the backup id's claim commits (BackupOwnershipLost otherwise). Idempotent:
     * Ed25519 signatures are deterministic, so a retry writes the same bytes under the same
     * key. Permanent: InvalidConfig (no or a bad signing key), BackupOwnershipLost.
     */
    async writeBackupManifest(manifest: BackupManifest | BaseBackupManifest): Promise<void> {
      const repositories = pick(manifest.copies.map((c) => c.repository).filter((v, i, a) => a.indexOf(v) === i));
      const signer = await loadSigner(config);
      if (!signer) log.warn('the manifest is NOT signed (signing.required is false): restores refuse it unless run with --allow-unsigned', { backupId: manifest.backupId });
      await publishManifest(repositories, signer ? signManifest(manifest, signer) : manifest);
      log.info('backup manifest written', { backupId: manifest.backupId, repositories: repositories.map((r) => r.name), signingKey: signer ? shortKeyId(signer.keyId) : null });
    },

    /**
     * Removes what a failed run of this backup wrote, so nothing half-made lingers: nothing at
     * all when a manifest of the backup was published in any repository (it names the copies
     * in the others too), and only this run's attempt folders where it holds the claim; then
     * gives the claim back. Idempotent.
     */
    async discardBackupObjects(input: DiscardInput): Promise<number> {
      const repositories = pick(input.repositories);
      if (await manifestPublished(repositories, 'database', input.backupId)) {
        log.warn('a manifest of the backup was published: nothing is discarded', { backupId: input.backupId });
        return 0;
      }
      return inEachRepository(repositories, (repository) => discardUnfinished(repository, 'database', input.backupId, input.runId, ROLES_OF.database, COMPRESSIONS, MAX_TRANSFER_ATTEMPTS));
    },

    /**
     * After the manifest: removes what other attempts of the backup left (a crashed attempt's
     * partial objects, a superseded attempt's whole ones), keeping every key the manifest
     * names. Only the claim's holder sweeps. Idempotent.
     */
    async sweepBackupAttempts(input: SweepInput): Promise<number> {
      const removed = await inEachRepository(pick(input.repositories), (repository) =>
        sweepAttempts(repository, input.component, input.backupId, input.runId, input.keep, ROLES_OF[input.component], COMPRESSIONS, MAX_TRANSFER_ATTEMPTS),
      );
      if (removed) log.info('removed the objects of superseded attempts', { backupId: input.backupId, removed });
      return removed;
    },
  };
}

export type DatabaseBackupActivities = ReturnType<typeof createDatabaseBackupActivities>;
