// Activities of the way back: restore into a new database, inspect it, swap it into the live
// one's place, and drop scratch databases. They run on the task queue of the host that holds
// the private key (a restoring, verification or drill host).
import { constants, createWriteStream } from 'node:fs';
import { mkdir, open, rm, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { text } from 'node:stream/consumers';
import { createGunzip } from 'node:zlib';
import { Context, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../workflows/types.js';
import type { CatalogSource, DatabaseInspection, FileSource, RestoreSource, RestoredDatabase, SkippedCopy } from '../workflows/restoreTypes.js';
import type { DatabaseBackupDeps } from './databaseBackup.js';
import { readFirstGoodCopy } from './copySelection.js';
import { assertPrivateKeyFor } from './encryption.js';
import { classifyDatabaseError, classifyFilesystemError, errorText, permanent } from './errors.js';
import { inspectDatabase } from './inspection.js';
import { connect, parseDatabaseUrl, spawnRestore, spawnSqlScript, spawnStreamingRestore, toolPath, type DatabaseTarget } from './postgres.js';
import { assertRestrictingPsql, fileRestoreFailure, resolveCatalogBackup, resolveFile, restrictedScript } from './restoreSource.js';
import { expectedSource } from './sourceMatch.js';
import {
  assertTargetIsOurs,
  createRestoreDatabase,
  databaseComment,
  dropRestoreDatabase,
  inDatabase,
  markDatabase,
  markerFor,
  quoteIdent,
  restoreServer,
  terminateSessions,
  withServer,
} from './restoreTarget.js';
import { createMissingRoles, parseGlobals } from './roles.js';
import { runServiceCommands } from './services.js';
import { pickRepositories } from './storage/index.js';
import type { Repository } from './storage/repository.js';

export interface ResolveInput {
  backup: string;
  /** Only these repositories, in this order (the drill: the offsite one); default all configured. */
  repositories?: string[];
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

export interface SwapInput {
  live: string;
  replacement: string;
  keepAs: string;
}

export function createRestoreActivities(deps: DatabaseBackupDeps) {
  const { config } = deps;
  const server = () => restoreServer(config);

  const repositoriesNamed = (names: string[] | undefined) => pickRepositories(deps.repositories, names, config.host);

  /** Heartbeats { phase, ...details } every second until stopped. */
  function ticker(details: () => Record<string, unknown>) {
    const ctx = Context.current();
    const started = Date.now();
    const timer = setInterval(() => ctx.heartbeat({ ...details(), seconds: Math.round((Date.now() - started) / 1000) }), 1000);
    return () => clearInterval(timer);
  }

  async function stagingDir(workflowId: string, database: string, bytes: number): Promise<string> {
    const dir = path.join(config.restore.workDir ?? (await defaultStagingRoot(bytes)), `backupctl-restore-${workflowId.replace(/[^A-Za-z0-9._-]+/g, '-')}-${database}`);
    // Left by an attempt that died: start clean.
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true, mode: 0o700 }).catch((err) => {
      throw classifyFilesystemError(err, `creating the staging folder ${dir}`);
    });
    return dir;
  }

  async function assertRoomFor(dir: string, bytes: number): Promise<void> {
    const fs = await statfs(dir);
    const free = fs.bavail * fs.bsize;
    // A little headroom: the filesystem's own blocks, and other writers.
    if (free < bytes * 1.02 + 16 * 1024 * 1024) {
      throw permanent(ErrorType.DiskFull, `restore.workDir ${path.dirname(dir)} has ${free} bytes free; staging the archive needs ${bytes} (set restore.workDir to a larger disk)`);
    }
  }

  /** Roles from the globals object, created where missing; the first whole copy is used. */
  async function ensureRoles(source: CatalogSource, repositories: Repository[], signal: AbortSignal): Promise<{ created: string[]; skipped: SkippedCopy[] }> {
    const globals = source.objects.find((o) => o.role === 'globals');
    if (!globals) return { created: [], skipped: [] };
    const read = await readFirstGoodCopy({
      object: globals,
      repositories,
      compression: source.compression,
      privateKeyHome: config.encryption.privateKeyHome!,
      signal,
      consume: (plain) => text(plain),
      consumerFailure: (err) => classifyFilesystemError(err, 'reading the globals'),
    });
    const created = await withServer(server(), (client) => createMissingRoles(client, parseGlobals(read.value)));
    if (created.length) log.info('created roles from the backup globals', { roles: created });
    return { created, skipped: read.skipped };
  }

  async function restoreCatalogBackup(input: RestoreIntoInput & { source: CatalogSource }, signal: AbortSignal): Promise<RestoredDatabase> {
    const { source } = input;
    await assertPrivateKeyFor(config.encryption.privateKeyHome, source.recipientFingerprint, config.host);
    const repositories = repositoriesNamed(source.repositories);
    const dump = source.objects.find((o) => o.role === 'dump');
    if (!dump) throw permanent(ErrorType.InvalidInput, `backup ${source.backupId} has no dump object`);
    // Before anything is fetched: a name that is taken fails at once.
    await withServer(server(), (client) => assertTargetIsOurs(client, input.database, input.workflowId));

    const dir = await stagingDir(input.workflowId, input.database, dump.plainBytes);
    const admin = server();
    const target = inDatabase(admin, input.database);
    try {
      await assertRoomFor(dir, dump.plainBytes);
      // The owners must exist before the first table arrives.
      const roles = await ensureRoles(source, repositories, signal);
      const archive = path.join(dir, 'dump.pgcustom');
      let staged = 0;
      const started = Date.now();
      const stop = ticker(() => ({ phase: 'restoring', database: input.database, bytes: staged }));
      let read;
      try {
        // One pass over the copy: schema and data load into the database while the archive is
        // staged, so fetching and decrypting overlap the load instead of preceding it.
        read = await readFirstGoodCopy({
          object: dump,
          repositories,
          compression: source.compression,
          privateKeyHome: config.encryption.privateKeyHome!,
          signal,
          consume: async (plain) => {
            staged = 0;
            // A fresh database for every copy tried: what a corrupt copy loaded is thrown away.
            await withServer(admin, (client) => createRestoreDatabase(client, input.database, source.owner, input.workflowId));
            plain.on('data', (chunk: Buffer) => (staged += chunk.length));
            const load = spawnStreamingRestore(target, deps.binDir, signal);
            load.stdin!.on('error', () => undefined);
            plain.pipe(load.stdin!);
            try {
              await Promise.all([pipeline(plain, createWriteStream(archive, { mode: 0o600 })), load]);
            } catch (err) {
              load.kill();
              throw err;
            }
          },
          consumerFailure: (err) =>
            typeof (err as NodeJS.ErrnoException).code === 'string' && (err as { exitCode?: number }).exitCode === undefined
              ? classifyFilesystemError(err, `staging the archive in ${dir}`)
              : classifyRestoreError(err, input.database),
        });
        read.skipped.forEach((s) => log.warn('copy skipped', { ...s }));
        // Indexes, constraints, triggers: in parallel, from the staged archive.
        await spawnRestore(target, deps.binDir, archive, jobsOf(input), signal, ['post-data']);
      } catch (err) {
        await withServer(admin, (client) => dropRestoreDatabase(client, input.database, input.workflowId)).catch(() => undefined);
        if (signal.aborted) throw err;
        throw classifyRestoreError(err, input.database);
      } finally {
        stop();
      }
      await withServer(admin, (client) => markDatabase(client, input.database, markerFor(input.workflowId, `restored from backup ${source.backupId}`)));
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
    const liveOwner = await withServer(server(), async (client) => {
      await assertTargetIsOurs(client, input.database, input.workflowId);
      return (await databaseComment(client, liveDatabaseName())).owner ?? undefined;
    });
    const seconds = await runIntoNewDatabase(input, liveOwner, async (target) => {
      // Checked again just before it is read: the file may have been swapped since it was resolved.
      await resolveFile(source.path);
      try {
        if (source.format === 'custom') {
          await spawnRestore(target, deps.binDir, source.path, jobsOf(input), signal);
          return;
        }
        await assertRestrictingPsql(toolPath(deps.binDir, 'psql'));
        const file = (await open(source.path, constants.O_RDONLY | constants.O_NOFOLLOW)).createReadStream();
        const psql = spawnSqlScript(target, deps.binDir, undefined, signal);
        let sql: Readable = file;
        let gzipError: Error | undefined;
        if (source.format === 'sql.gz') {
          // A truncated .sql.gz must not end as a clean EOF: psql would commit what it read.
          // A gzip error kills psql, so its single transaction rolls back.
          const gunzip = createGunzip();
          gunzip.on('error', (err) => {
            gzipError = err;
            psql.kill();
          });
          sql = file.pipe(gunzip);
        }
        const feed = pipeline(restrictedScript(sql), psql.stdin!).catch(() => undefined);
        const [applied] = await Promise.allSettled([psql, feed]);
        file.destroy();
        if (gzipError) throw permanent(ErrorType.InvalidInput, `${source.path} is not a whole gzip file: ${gzipError.message}; nothing was committed`);
        if (applied.status === 'rejected') throw applied.reason;
      } catch (err) {
        throw fileRestoreFailure(err, source.path, input.database, source.format === 'custom' ? 0 : 1);
      }
    });
    return { database: input.database, copy: { path: source.path }, skipped: [], createdRoles: [], plainBytes: source.bytes, restoreSeconds: seconds };
  }

  function jobsOf(input: RestoreIntoInput): number {
    return input.jobs ?? config.restore.jobs;
  }

  function liveDatabaseName(): string {
    return parseDatabaseUrl(config.database.url, config.database.passwordFile).database;
  }

  /**
   * Creates the database (dropping one an earlier attempt of this workflow left), runs the
   * restoring process into it, and marks it restored. On failure the database is dropped.
   */
  async function runIntoNewDatabase(
    input: RestoreIntoInput,
    owner: string | undefined,
    start: (target: DatabaseTarget) => Promise<unknown>,
  ): Promise<number> {
    const admin = server();
    await withServer(admin, (client) => createRestoreDatabase(client, input.database, owner, input.workflowId));
    const started = Date.now();
    const stop = ticker(() => ({ phase: 'restoring', database: input.database }));
    try {
      await start(inDatabase(admin, input.database));
    } catch (err) {
      await withServer(admin, (client) => dropRestoreDatabase(client, input.database, input.workflowId)).catch(() => undefined);
      if (Context.current().cancellationSignal.aborted) throw err;
      throw classifyRestoreError(err, input.database);
    } finally {
      stop();
    }
    const label = input.source.kind === 'backup' ? `backup ${input.source.backupId}` : `file ${input.source.path}`;
    await withServer(admin, (client) => markDatabase(client, input.database, markerFor(input.workflowId, `restored from ${label}`)));
    return (Date.now() - started) / 1000;
  }

  return {
    /**
     * Finds what to restore: a catalog backup (id or `latest`, from the named repositories in
     * order) or a seed-made file on this host. Read-only. Permanent: BackupNotFound,
     * InvalidInput (malformed reference or path), UnknownRepository, ManifestDamaged (every
     * manifest copy damaged), SourceMismatch (an explicit id of another database). Damaged
     * manifest copies are reported in the source's `skipped`, identity doubts in `warnings`.
     */
    async resolveRestoreSource(input: ResolveInput): Promise<Resolved> {
      const source = input.backup.startsWith('/')
        ? await resolveFile(input.backup)
        : await resolveCatalogBackup(input.backup, repositoriesNamed(input.repositories), await expectedSource(config));
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
     * --exit-on-error`. Seed files go through pg_restore or psql with ON_ERROR_STOP. Idempotent:
     * a database left by an earlier attempt of the same workflow is dropped and made again;
     * any other database of that name is TargetDatabaseExists. Heartbeats every second.
     * Permanent: PrivateKeyMissing, NoUsableCopy, DiskFull, TargetDatabaseExists, RestoreFailed.
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

    /** Counts, freshness, SQL checks and (for scratch databases) pg_amcheck. Read-only apart from amcheck's extension. Heartbeats. */
    async inspectRestoredDatabase(input: InspectInput): Promise<DatabaseInspection> {
      const target = inDatabase(server(), input.database);
      const stop = ticker(() => ({ phase: 'inspecting', database: input.database }));
      const client = await connect(target);
      try {
        return await inspectDatabase(client, target, {
          expectedRowCounts: input.expectedRowCounts,
          checks: config.restore.checks,
          amcheck: input.amcheck ? { binDir: deps.binDir, signal: Context.current().cancellationSignal } : undefined,
        });
      } catch (err) {
        throw classifyDatabaseError(err, `inspecting ${input.database}`);
      } finally {
        stop();
        await client.end().catch(() => undefined);
      }
    },

    /** Drops a database this workflow made (scratch, or a restore that failed). Idempotent; never drops another's. */
    async dropRestoredDatabase(input: { database: string; workflowId: string }): Promise<boolean> {
      return withServer(server(), (client) => dropRestoreDatabase(client, input.database, input.workflowId));
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
     * Puts the restored database in the live one's place: no new connections to the live
     * database, its sessions ended, then both renames in ONE transaction (live -> keepAs,
     * replacement -> live), so there is never a moment without a live database. Idempotent:
     * a swap already done is recognised and reported. Permanent: SwapFailed.
     */
    async swapLiveDatabase(input: SwapInput): Promise<{ live: string; keptAs: string; sessionsEnded: number }> {
      return withServer(server(), async (client) => {
        const live = await databaseComment(client, input.live);
        const replacement = await databaseComment(client, input.replacement);
        const kept = await databaseComment(client, input.keepAs);
        if (kept.exists && live.exists && !replacement.exists) return { live: input.live, keptAs: input.keepAs, sessionsEnded: 0 };
        if (!live.exists || !replacement.exists || kept.exists) {
          throw permanent(
            ErrorType.SwapFailed,
            `cannot swap: live "${input.live}" ${live.exists ? 'exists' : 'is missing'}, restored "${input.replacement}" ${replacement.exists ? 'exists' : 'is missing'}, "${input.keepAs}" ${kept.exists ? 'already exists' : 'is free'}`,
          );
        }
        await client.query(`ALTER DATABASE ${quoteIdent(input.live)} WITH ALLOW_CONNECTIONS false`);
        try {
          const ended = (await terminateSessions(client, input.live)) + (await terminateSessions(client, input.replacement));
          await client.query('BEGIN');
          await client.query(`ALTER DATABASE ${quoteIdent(input.live)} RENAME TO ${quoteIdent(input.keepAs)}`);
          await client.query(`ALTER DATABASE ${quoteIdent(input.replacement)} RENAME TO ${quoteIdent(input.live)}`);
          await client.query('COMMIT');
          log.info('live database swapped', { live: input.live, keptAs: input.keepAs, sessionsEnded: ended });
          return { live: input.live, keptAs: input.keepAs, sessionsEnded: ended };
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err instanceof ApplicationFailure ? err : permanent(ErrorType.SwapFailed, `swapping ${input.replacement} into ${input.live}: ${errorText(err)}`);
        } finally {
          // Whichever name it has now, the old database stays usable for inspection.
          for (const name of [input.keepAs, input.live]) {
            await client.query(`ALTER DATABASE ${quoteIdent(name)} WITH ALLOW_CONNECTIONS true`).catch(() => undefined);
          }
        }
      });
    },
  };
}

/**
 * Where the decrypted archive is staged when restore.workDir is not set: memory (/dev/shm)
 * when it fits with room to spare, so the plaintext never reaches a persistent disk and its
 * write-back does not compete with pg_restore's own writes; else the temp folder.
 */
async function defaultStagingRoot(bytes: number): Promise<string> {
  const shm = '/dev/shm';
  try {
    const fs = await statfs(shm);
    if (fs.bavail * fs.bsize > bytes * 2 + 512 * 1024 * 1024) return shm;
  } catch {
    // no /dev/shm here
  }
  return os.tmpdir();
}

/**
 * A failed pg_restore or psql: a lost connection is worth a retry, a full disk is DiskFull,
 * anything else (a failing statement, a missing role) would fail again: RestoreFailed.
 */
function classifyRestoreError(err: unknown, database: string) {
  if (err instanceof ApplicationFailure) return err;
  const failure = classifyDatabaseError(err, `restoring into ${database}`);
  if (failure.type === ErrorType.DatabaseUnreachable || failure.type === ErrorType.DiskFull) return failure;
  return permanent(ErrorType.RestoreFailed, failure.message);
}

export type RestoreActivities = ReturnType<typeof createRestoreActivities>;
