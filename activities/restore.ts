// Activities of the way back: restore into a new database, inspect it, swap it into the live
// one's place, and drop scratch databases. They run on the task queue of the host that holds
// the private key (a restoring, verification or drill host).
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Context, log } from '@temporalio/activity';
import { ErrorType } from '../common/types.js';
import type { CatalogSource, DatabaseInspection, FileSource, RestoreSource, RestoredDatabase, SkippedCopy } from '../common/restoreTypes.js';
import type { DatabaseBackupDeps } from './databaseBackup.js';
import { assertAttemptStands } from '../engine/attemptStanding.js';
import { assertPrivateKeyFor } from '../engine/encryption.js';
import { classifyDatabaseError, errorText, isEngineError, permanent } from '../engine/errors.js';
import { progressHeartbeat, type ProgressHeartbeat } from './progressHeartbeat.js';
import { assertRoomFor, makeStagingDir, stageObject, type DecryptKeys } from '../engine/staging.js';
import { inspectDatabase } from '../engine/inspection.js';
import { connect, spawnRestore, type DatabaseTarget } from '../engine/postgres.js';
import { loadFile, resolveCatalogBackup, resolveFile, shownPath } from '../engine/restoreSource.js';
import { loadVerifier } from '../engine/manifestSignature.js';
import { expectedSource } from '../engine/sourceMatch.js';
import {
  assertStillOwned,
  assertTargetIsOurs,
  createRestoreDatabase,
  databaseComment,
  dropRestoreDatabase,
  inDatabase,
  liveDatabaseName as configuredLiveDatabase,
  madeBy,
  markOwnedDatabase,
  restoreServer,
  withServer,
  type Maker,
} from '../engine/restoreTarget.js';
import { ensureRolesOf } from '../engine/roles.js';
import { swapIntoLive, type SwapInput } from '../engine/swap.js';
import { runServiceCommands } from '../engine/services.js';
import { pickRepositories } from '../engine/storage/index.js';
import type { Repository } from '../engine/storage/repository.js';
import './attemptContext.js';

export interface ResolveInput {
  backup: string;
  /** Only these repositories, in this order (the drill: the offsite one); default all configured. */
  repositories?: string[];
  /**
   * Admit a backup whose manifest is not signed (made before backups were signed), and seed-made
   * files, which have no manifest at all. A wrongly signed manifest is never admitted.
   */
  allowUnsigned?: boolean;
}

export interface Resolved {
  source: RestoreSource;
  /** The live database's name on this host's restore server. */
  liveDatabase: string;
}

export interface RestoreIntoInput {
  workflowId: string;
  source: RestoreSource;
  database: string;
  jobs?: number;
}

export interface InspectInput {
  database: string;
  expectedRowCounts: Record<string, number>;
  amcheck: boolean;
}

export type { SwapInput } from '../engine/swap.js';

export function createRestoreActivities(deps: DatabaseBackupDeps) {
  const { config } = deps;
  const server = () => restoreServer(config);

  const repositoriesNamed = (names: string[] | undefined) => pickRepositories(deps.repositories, names, config.host);

  /**
   * Heartbeats only on progress: bytes moved, or (where no bytes are counted: pg_restore's
   * post-data, inspection) one of this attempt's own sessions on the database doing work, not
   * waiting on its client or a lock. A stalled stage sends nothing, and the heartbeat timeout
   * ends it; a stranger's busy session on the same database proves nothing.
   */
  function heartbeatOnProgress(details: () => Record<string, unknown>, target?: DatabaseTarget): ProgressHeartbeat {
    const beat = progressHeartbeat(details);
    if (target) beat.setProbe(ownSessionsBusy(target));
    return beat;
  }

  /**
   * A probe: is one of this attempt's sessions on the target's database working? Its sessions
   * carry the attempt's tag AND log in as the restore role: the tag alone is no proof, since
   * pg_stat_activity shows every session's application_name to every role, and a stranger may
   * take it for a session of its own.
   */
  function ownSessionsBusy(target: DatabaseTarget): () => Promise<boolean> {
    return () =>
      withServer(server(), async (client) => {
        const { rows } = await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 AND usename = current_user AND state = 'active' AND pid <> pg_backend_pid()
             AND coalesce(wait_event_type, '') NOT IN ('Client', 'Lock')`,
          [target.database, target.applicationName],
        );
        return rows[0].n > 0;
      });
  }

  /**
   * The database on the restore server, its sessions tagged with this activity attempt (a
   * digest of run, activity and attempt: no name or data of the backup).
   */
  function attemptTarget(database: string): DatabaseTarget {
    const { workflowExecution, activityId, attempt } = Context.current().info;
    const tag = createHash('sha256').update(`${workflowExecution?.runId}/${activityId}/${attempt}`).digest('hex').slice(0, 16);
    return { ...inDatabase(server(), database), applicationName: `backupctl-${tag}` };
  }

  /** The run and attempt asking: what proves a database is ours (never the workflow id alone). */
  function currentMaker(): Maker {
    const { workflowExecution, attempt } = Context.current().info;
    if (!workflowExecution) throw permanent(ErrorType.InvalidInput, 'restore activities run only inside a workflow: the run id proves what they made');
    return { workflowId: workflowExecution.workflowId, runId: workflowExecution.runId, attempt };
  }

  /** Roles from the globals object, created where missing; the first whole copy is used. */
  async function ensureRoles(source: CatalogSource, repositories: Repository[], signal: AbortSignal): Promise<{ created: string[]; skipped: SkippedCopy[] }> {
    const roles = await ensureRolesOf(server(), source, repositories, decryptKeys(), signal);
    if (roles.created.length) log.info('created roles from the backup globals', { roles: roles.created });
    return roles;
  }

  function decryptKeys(): DecryptKeys {
    return { privateKeyHome: config.encryption.privateKeyHome!, passphraseFile: config.encryption.passphraseFile };
  }

  async function restoreCatalogBackup(input: RestoreIntoInput & { source: CatalogSource }, signal: AbortSignal): Promise<RestoredDatabase> {
    const { source } = input;
    await assertPrivateKeyFor(config.encryption, source.recipientFingerprint, config.host);
    const repositories = repositoriesNamed(source.repositories);
    const dump = source.objects.find((o) => o.role === 'dump');
    if (!dump) throw permanent(ErrorType.InvalidInput, `backup ${source.backupId} has no dump object`);
    const maker = currentMaker();
    const live = liveDatabaseName();
    // Before anything is fetched: a name that is taken fails at once.
    await withServer(server(), (client) => assertTargetIsOurs(client, input.database, maker, live));

    const dir = await makeStagingDir(config.restore.workDir, dump.plainBytes);
    const admin = server();
    const target = attemptTarget(input.database);
    try {
      await assertRoomFor(dir, dump.plainBytes);
      // The owners must exist before the first table arrives.
      const roles = await ensureRoles(source, repositories, signal);
      const archive = path.join(dir, 'dump.pgcustom');
      let staged = 0;
      const started = Date.now();
      const beat = heartbeatOnProgress(() => ({ phase: 'restoring', database: input.database, staged, totalBytes: dump.bytes }));
      let read;
      try {
        // The name is this attempt's from the start: a stale attempt that starts later finds
        // the marker and refuses (AttemptSuperseded), and one that started earlier loses it.
        await withServer(admin, (client) => createRestoreDatabase(client, input.database, source.owner, maker, live));
        // The archive is staged whole, and loaded only once its stored bytes' sha256 matched
        // the (signed) manifest: pg_restore runs the archive's SQL as a superuser, and a copy
        // planted in a repository (anyone can encrypt to the public key) must not run a single
        // statement. So no SQL of the archive runs before the copy is proven.
        read = await stageObject({
          object: dump,
          repositories,
          compression: source.compression,
          keys: decryptKeys(),
          file: archive,
          signal,
          onBytes: (n) => beat.moved(n),
          onStaged: (n) => (staged = n),
        });
        read.skipped.forEach((s) => log.warn('copy skipped', { ...s }));
        // Schema, data, then indexes and constraints, in parallel from the staged archive. No
        // bytes move here: the server's work on the database is the progress.
        beat.setProbe(ownSessionsBusy(target));
        await withServer(admin, (client) => assertStillOwned(client, input.database, maker));
        await spawnRestore(target, deps.binDir, archive, jobsOf(input), signal);
      } catch (err) {
        throw await afterFailedRestore(err, input.database, maker, signal);
      } finally {
        beat.stop();
      }
      await markRestored(input.database, maker, `restored from backup ${source.backupId}`);
      return {
        database: input.database,
        copy: { repository: read.repository, key: read.key },
        skipped: [...(source.skipped ?? []), ...read.skipped, ...roles.skipped],
        ...(source.warnings?.length ? { warnings: source.warnings } : {}),
        createdRoles: roles.created,
        plainBytes: staged,
        restoreSeconds: (Date.now() - started) / 1000,
      };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async function restoreFile(input: RestoreIntoInput & { source: FileSource }, signal: AbortSignal): Promise<RestoredDatabase> {
    const { source } = input;
    const maker = currentMaker();
    const liveOwner = await withServer(server(), async (client) => {
      await assertTargetIsOurs(client, input.database, maker, liveDatabaseName());
      return (await databaseComment(client, liveDatabaseName())).owner ?? undefined;
    });
    const seconds = await runIntoNewDatabase(input, maker, liveOwner, async (target) => {
      await loadFile(source, target, deps.binDir, jobsOf(input), signal);
    });
    return { database: input.database, copy: { path: source.path }, skipped: [], createdRoles: [], plainBytes: source.bytes, restoreSeconds: seconds };
  }

  /** A seed-made file: checked as hostile input, then admitted only when unsigned sources are. */
  async function resolveSeedFile(filePath: string, allowUnsigned: boolean): Promise<FileSource> {
    const source = await resolveFile(filePath);
    if (!allowUnsigned) {
      throw permanent(
        ErrorType.UnsignedBackup,
        `restore source ${shownPath(filePath)} is a file with no signed manifest: nothing proves who made it, and restoring runs its SQL as a superuser; if you know where it came from, run again with --allow-unsigned`,
      );
    }
    log.warn('restoring an unsigned seed-made file', { path: shownPath(filePath) });
    return source;
  }

  function jobsOf(input: RestoreIntoInput): number {
    return input.jobs ?? config.restore.jobs;
  }

  function liveDatabaseName(): string {
    return configuredLiveDatabase(config);
  }

  /**
   * After a failed restore the database goes if this very attempt still owns it, cancelled or
   * not: the cancel may reach an attempt only after its workflow has closed (it hears of it on
   * a heartbeat, and waits on a lock send none), and then nobody else would drop what it made.
   * A superseded attempt touches nothing: the newer attempt owns the name.
   */
  async function afterFailedRestore(err: unknown, database: string, maker: Maker, signal: AbortSignal): Promise<unknown> {
    if (isEngineError(err) && err.type === ErrorType.AttemptSuperseded) return err;
    await dropOwnAttempt(database, maker);
    if (signal.aborted) return signal.reason ?? err;
    return classifyRestoreError(err, database);
  }

  /** Drops the database if this very attempt made it; a failure to drop is logged, not thrown. */
  async function dropOwnAttempt(database: string, maker: Maker): Promise<void> {
    // Looked at first without the name's lock (a stranger may hold it): a database that is
    // not this attempt's is never touched, so only ours waits for the lock.
    const mine = await withServer(server(), async (client) => {
      const made = madeBy((await databaseComment(client, database)).comment);
      return made?.runId === maker.runId && made.attempt === maker.attempt;
    }).catch(() => true);
    if (!mine) return;
    await withServer(server(), (client) => dropRestoreDatabase(client, database, maker, liveDatabaseName(), { onlyAttempt: true, evenIfCancelled: true })).catch((err) =>
      log.warn('restore database of a failed attempt not dropped', { database, error: errorText(err) }),
    );
  }

  /**
   * Marks the database restored, if this attempt still stands (attemptStanding.ts): a restore
   * that finished while its cancel was on the way, or after its workflow closed, drops what it
   * made and fails instead.
   */
  async function markRestored(database: string, maker: Maker, state: string): Promise<void> {
    try {
      await assertAttemptStands(`restoring into ${database}`);
    } catch (err) {
      await dropOwnAttempt(database, maker);
      throw err;
    }
    await withServer(server(), (client) => markOwnedDatabase(client, database, maker, state));
  }

  /**
   * Creates the database (dropping one an earlier attempt of this workflow left), runs the
   * restoring process into it, and marks it restored. On failure the database is dropped.
   */
  async function runIntoNewDatabase(
    input: RestoreIntoInput,
    maker: Maker,
    owner: string | undefined,
    start: (target: DatabaseTarget) => Promise<unknown>,
  ): Promise<number> {
    const admin = server();
    await withServer(admin, (client) => createRestoreDatabase(client, input.database, owner, maker, liveDatabaseName()));
    const started = Date.now();
    const target = attemptTarget(input.database);
    const beat = heartbeatOnProgress(() => ({ phase: 'restoring', database: input.database }), target);
    try {
      await start(target);
    } catch (err) {
      throw await afterFailedRestore(err, input.database, maker, Context.current().cancellationSignal);
    } finally {
      beat.stop();
    }
    const label = input.source.kind === 'backup' ? `backup ${input.source.backupId}` : `file ${input.source.path}`;
    await markRestored(input.database, maker, `restored from ${label}`);
    return (Date.now() - started) / 1000;
  }

  return {
    /**
     * Finds what to restore: a catalog backup (id or `latest`, from the named repositories in
     * order) whose manifest is signed by a key in signing.publicKeyFiles, or a seed-made file on
     * this host. Unsigned backups and files only with `allowUnsigned`. Read-only. Permanent:
     * BackupNotFound, InvalidInput (malformed reference or path), UnknownRepository,
     * ManifestDamaged (every manifest copy damaged), UnsignedBackup, BadSignature (no copy
     * signed by a trusted key), InvalidConfig (a signing key file), SourceMismatch (an explicit
     * id of another database). Skipped manifest copies are reported in the source's `skipped`,
     * identity doubts and an admitted unsigned backup in `warnings`.
     */
    async resolveRestoreSource(input: ResolveInput): Promise<Resolved> {
      const allowUnsigned = input.allowUnsigned === true;
      const source = input.backup.startsWith('/')
        ? await resolveSeedFile(input.backup, allowUnsigned)
        : await resolveCatalogBackup(input.backup, repositoriesNamed(input.repositories), await expectedSource(config), { verifier: await loadVerifier(config), allowUnsigned });
      if (source.kind === 'backup') {
        source.skipped?.forEach((s) => log.warn('manifest copy skipped', { ...s }));
        source.warnings?.forEach((warning) => log.warn('backup source not fully checked', { backupId: source.backupId, warning }));
      }
      if (source.kind === 'backup' && input.repositories) source.repositories = source.repositories.filter((r) => input.repositories!.includes(r));
      return { source, liveDatabase: liveDatabaseName() };
    },

    /**
     * Restores into a NEW database on this host's restore server: for a catalog backup, the
     * first whole copy (size and sha256 against the manifest; missing or corrupt copies are
     * skipped and reported) is decrypted and decompressed into a private staging file, roles
     * missing on the server are created from the globals, then `pg_restore -j N
     * --exit-on-error`: no statement of a copy runs before its stored bytes proved whole. Seed files go through pg_restore or psql with ON_ERROR_STOP. Idempotent:
     * a database left by an earlier attempt of the same RUN (its marker names the run id and
     * attempt) is dropped and made again; one made by a newer attempt means this attempt is
     * stale (AttemptSuperseded: it stops and touches nothing); any other database of that
     * name, and the live database's name, is TargetDatabaseExists. The staging folder is this
     * attempt's own, removed on every path. Heartbeats only on progress (bytes moved, or the
     * server working on the database), so a stalled pipeline times out; cancellation ends
     * every stage at once. Permanent: PrivateKeyMissing, NoUsableCopy, DiskFull,
     * TargetDatabaseExists, AttemptSuperseded, RestoreFailed.
     */
    async restoreIntoNewDatabase(input: RestoreIntoInput): Promise<RestoredDatabase> {
      const signal = Context.current().cancellationSignal;
      const restored =
        input.source.kind === 'backup'
          ? await restoreCatalogBackup({ ...input, source: input.source }, signal)
          : await restoreFile({ ...input, source: input.source }, signal);
      log.info('restored into a new database', { database: restored.database, copy: restored.copy, skipped: restored.skipped.length });
      return restored;
    },

    /**
     * Counts, freshness, SQL checks and (for scratch databases) pg_amcheck. Read-only apart
     * from amcheck's extension. Heartbeats while the server works on the database.
     */
    async inspectRestoredDatabase(input: InspectInput): Promise<DatabaseInspection> {
      const target = attemptTarget(input.database);
      const beat = heartbeatOnProgress(() => ({ phase: 'inspecting', database: input.database }), target);
      const client = await connect(target);
      try {
        return await inspectDatabase(client, target, {
          expectedRowCounts: input.expectedRowCounts,
          checks: config.restore.checks,
          freshness: config.restore.freshness,
          amcheck: input.amcheck ? { binDir: deps.binDir, signal: Context.current().cancellationSignal } : undefined,
        });
      } catch (err) {
        throw classifyDatabaseError(err, `inspecting ${input.database}`);
      } finally {
        beat.stop();
        await client.end().catch(() => undefined);
      }
    },

    /**
     * Drops a database this workflow RUN made (scratch, or a restore that failed): the run id in
     * its marker proves it, never the workflow id alone, which is reused. Idempotent; never
     * drops another's. Permanent: LiveDatabaseProtected (the configured live database's name).
     */
    async dropRestoredDatabase(input: { database: string; workflowId: string }): Promise<boolean> {
      return withServer(server(), (client) => dropRestoreDatabase(client, input.database, currentMaker(), liveDatabaseName()));
    },

    /** Stops the application's services (configured commands). Retry-safe. */
    async stopApplicationServices(): Promise<string[]> {
      return runServiceCommands(config, 'stop', Context.current().cancellationSignal);
    },

    /** Starts the application's services. Retry-safe; runs on every path after a stop. */
    async startApplicationServices(): Promise<string[]> {
      return runServiceCommands(config, 'start');
    },

    /**
     * Puts the restored database in the live one's place (engine/swap.ts: one transaction,
     * only what this run restored, idempotent, connections given back on every path), and
     * only into the configured live database. DatabaseUnreachable is retryable; SwapFailed not.
     */
    async swapLiveDatabase(input: SwapInput): Promise<{ live: string; keptAs: string; sessionsEnded: number }> {
      // Only into the configured live database: checked before anything is touched.
      if (input.live !== liveDatabaseName()) {
        throw permanent(ErrorType.SwapFailed, `cannot swap: "${input.live}" is not the configured live database "${liveDatabaseName()}"`);
      }
      return swapIntoLive(server(), input, currentMaker(), log);
    },
  };
}

/**
 * A failed pg_restore or psql: a lost connection is worth a retry, a full disk is DiskFull,
 * anything else (a failing statement, a missing role) would fail again: RestoreFailed.
 */
function classifyRestoreError(err: unknown, database: string) {
  if (isEngineError(err)) return err;
  const failure = classifyDatabaseError(err, `restoring into ${database}`);
  if (failure.type === ErrorType.DatabaseUnreachable || failure.type === ErrorType.DiskFull) return failure;
  return permanent(ErrorType.RestoreFailed, failure.message);
}

export type RestoreActivities = ReturnType<typeof createRestoreActivities>;
