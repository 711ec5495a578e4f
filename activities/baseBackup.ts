// Activities of the physical base backup: pg_basebackup as one tar, through the same pipeline
// as the logical dump (zstd, OpenPGP, sha256, every repository at once). With the WAL archive
// it is what point-in-time recovery starts from.
import { Context, log } from '@temporalio/activity';
import { COMPRESSIONS, ErrorType, type Compression } from '../common/types.js';
import type { BaseBackupFacts, BaseBackupPlan } from '../common/pitrTypes.js';
import { assertClaimed, attemptObjectKey, claimingAttempt, discardUnfinished, inEachRepository, manifestPublished } from '../engine/backupClaim.js';
import { replicationTarget } from '../engine/archiveCheck.js';
import { MAX_TRANSFER_ATTEMPTS, ROLES_OF, type DatabaseBackupDeps } from './databaseBackup.js';
import { loadRecipient, type Recipient } from '../engine/encryption.js';
import { classifyDatabaseError, permanent } from '../engine/errors.js';
import { streamToRepositories, type PipelineProgress } from '../engine/pipeline.js';
import { connect, parseBaseBackupLog, spawnBaseBackup } from '../engine/postgres.js';
import { pickRepositories } from '../engine/storage/index.js';
import { checkAndClaim } from '../engine/backupPlan.js';
import './attemptContext.js';

export interface BasePlanInput {
  backupId: string;
  runId: string;
  workflowId?: string;
  compression?: Compression;
  repositories?: string[];
}

export interface BaseStreamInput {
  backupId: string;
  plan: BaseBackupPlan;
}

/** wal_segment_size as pg_settings gives it: bytes since PostgreSQL 11 (a power of two, 1 MiB to 1 GiB); anything else is not recorded. */
function segmentBytes(setting: string | null): { walSegmentBytes?: number } {
  const bytes = Number(setting);
  return Number.isInteger(bytes) && bytes >= 1 << 20 && bytes <= 1 << 30 && (bytes & (bytes - 1)) === 0 ? { walSegmentBytes: bytes } : {};
}

export function createBaseBackupActivities(deps: DatabaseBackupDeps) {
  const { config } = deps;
  const pick = (names: string[] | undefined) => pickRepositories(deps.repositories, names, config.host);

  return {
    /**
     * Checks before anything is written: the server answers, its WAL level allows physical
     * backups, the role may replicate, the public key encrypts, the signing key signs, every
     * repository is writable, no other run owns this backup id; then claims the id for this run
     * (the only write). Permanent: PermissionDenied (no REPLICATION, wal_level minimal), the
     * key errors (InvalidConfig for the signing key), storage and BackupAlreadyExists errors.
     */
    async planBaseBackup(input: BasePlanInput): Promise<BaseBackupPlan> {
      const repositories = pick(input.repositories);
      const target = replicationTarget(config);
      const client = await connect(target);
      let facts: { version: string; num: string; sysid: string; wal_level: string; may_replicate: boolean; segment_bytes: string };
      try {
        facts = (
          await client.query(`SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS num,
                                     (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
                                     current_setting('wal_level') AS wal_level,
                                     (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS segment_bytes,
                                     (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS may_replicate`)
        ).rows[0];
      } catch (err) {
        throw classifyDatabaseError(err, 'reading the server facts for a base backup');
      } finally {
        await client.end().catch(() => undefined);
      }
      if (facts.wal_level === 'minimal') {
        throw permanent(ErrorType.PermissionDenied, 'wal_level is minimal: base backups and WAL archiving need wal_level = replica (postgresql.conf, then restart)');
      }
      if (!facts.may_replicate) {
        throw permanent(ErrorType.PermissionDenied, `role ${target.user ?? '(default)'} has no REPLICATION privilege: set baseBackup.url to a replication role (ALTER ROLE ... REPLICATION)`);
      }
      const { encryptionFingerprint } = await checkAndClaim(
        config,
        repositories,
        'base',
        input.backupId,
        { workflowId: input.workflowId ?? Context.current().info.workflowExecution?.workflowId ?? '', runId: input.runId },
        (repository, runId) => `base backup ${input.backupId} already exists in repository ${repository} (made by run ${runId})`,
      );
      return {
        server: { version: facts.version, versionNum: Number(facts.num), systemIdentifier: facts.sysid, ...segmentBytes(facts.segment_bytes) },
        repositories: repositories.map((r) => ({ name: r.name, kind: r.kind })),
        compression: input.compression ?? config.compression.algorithm,
        encryptionFingerprint,
        checkpoint: config.baseBackup.checkpoint,
      };
    },

    /**
     * Streams pg_basebackup's tar into every repository and returns the WAL range it covers.
     * Writes only while this run holds the id, into this attempt's own folder, and deletes
     * nothing: a superseded attempt cannot overwrite or remove the winner's object (see
     * backupClaim.ts). Heartbeats { phase, plainBytes, storedBytes } every second.
     */
    async baseBackupToRepositories(input: BaseStreamInput): Promise<{ object: { key: string; bytes: number; sha256: string; plainBytes: number }; backup: BaseBackupFacts }> {
      const ctx = Context.current();
      const repositories = pick(input.plan.repositories.map((r) => r.name));
      const target = replicationTarget(config);
      const compression = { ...config.compression, algorithm: input.plan.compression };
      const abort = new AbortController();
      const onCancel = () => abort.abort();
      ctx.cancellationSignal.addEventListener('abort', onCancel, { once: true });
      const { runId, attempt } = claimingAttempt();
      const key = attemptObjectKey('base', input.backupId, runId, attempt, 'base', compression.algorithm);
      let recipient: Recipient | undefined;
      try {
        await assertClaimed(repositories, 'base', input.backupId, runId);
        recipient = await loadRecipient(config.encryption.publicKeyFile);
        if (recipient.fingerprint !== input.plan.encryptionFingerprint) {
          throw permanent(ErrorType.InvalidPublicKey, `the public key changed since the backup was planned (${input.plan.encryptionFingerprint} -> ${recipient.fingerprint})`);
        }
        const startedAt = new Date().toISOString();
        const producer = spawnBaseBackup(target, deps.binDir, input.backupId, input.plan.checkpoint, abort.signal);
        const stored = await streamToRepositories({
          producer,
          classifyProducerError: (err) => classifyDatabaseError(err, 'pg_basebackup'),
          compression,
          recipient,
          repositories,
          key,
          abort,
          onProgress: (p: PipelineProgress) => ctx.heartbeat({ phase: 'base-backup', ...p }),
        });
        const { stderr } = await producer;
        const range = parseBaseBackupLog(String(stderr));
        if (!range) throw permanent(ErrorType.DumpFailed, `pg_basebackup did not report its WAL range: ${String(stderr).slice(0, 500)}`);
        const backup: BaseBackupFacts = { ...range, startedAt, stoppedAt: new Date().toISOString(), includesBackupManifest: input.plan.server.versionNum >= 130000 };
        log.info('base backup stored', { backupId: input.backupId, ...range });
        return { object: { key, ...stored }, backup };
      } catch (err) {
        abort.abort();
        if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? err;
        throw err;
      } finally {
        ctx.cancellationSignal.removeEventListener('abort', onCancel);
        await recipient?.dispose();
      }
    },

    /** Removes what a failed base backup run wrote where it holds the claim and no manifest exists; gives the claim back. Idempotent. */
    async discardBaseBackupObjects(input: { backupId: string; runId: string; repositories: string[] }): Promise<void> {
      const repositories = pick(input.repositories);
      if (await manifestPublished(repositories, 'base', input.backupId)) return;
      await inEachRepository(repositories, (repository) => discardUnfinished(repository, 'base', input.backupId, input.runId, ROLES_OF.base, COMPRESSIONS, MAX_TRANSFER_ATTEMPTS));
    },
  };
}
