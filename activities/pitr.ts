// Activities of point-in-time recovery: the recoverable window, a new data directory from the
// chosen base backup, recovery started and watched until promotion, then a look inside.
import { lstat, mkdir, readdir, rename, rm, rmdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Context, log } from '@temporalio/activity';
import { CLI_PATH } from '../common/runtime.js';
import { ErrorType } from '../common/types.js';
import type { BaseBackupManifest, RecoverableWindow, RecoveryCluster, RecoveryTarget } from '../common/pitrTypes.js';
import type { DatabaseBackupDeps } from './databaseBackup.js';
import { readFirstGoodCopy } from '../engine/copySelection.js';
import { loadVerifier } from '../engine/manifestSignature.js';
import { actWhileStanding, assertAttemptStands, staleAttempt } from '../engine/attemptStanding.js';
import { assertPrivateKeyFor } from '../engine/encryption.js';
import { classifyFilesystemError, errorText, permanent } from '../engine/errors.js';
import { runCommand, spawnStreaming } from '../engine/exec.js';
import { inspectDatabase } from '../engine/inspection.js';
import { serverOwner } from '../engine/localCluster.js';
import { connect, countRows, parseDatabaseUrl, tablesToCount, type DatabaseTarget } from '../engine/postgres.js';
import { claimDataDirectory, configureRecovery, fetchQueueDirOf, handOver, prefetchDirOf, startCluster, stopCluster, waitUntilPromoted } from '../engine/recoveryCluster.js';
import { restoreServer } from '../engine/restoreTarget.js';
import { expectedSource } from '../engine/sourceMatch.js';
import { walTrustOf } from '../engine/walArchive.js';
import { progressHeartbeat } from './progressHeartbeat.js';
import { PREFETCH_SEGMENTS, prefetchWal, type Prefetched } from '../engine/walPrefetch.js';
import { setFetchAheadStart } from '../engine/walFetcher.js';
import { findBaseBackup as findBaseBackupIn, recoverableWindow } from '../engine/recoverableWindow.js';
import './attemptContext.js';
import { postgresCommandWord } from '../common/postgresCommand.js';

export interface PrepareInput {
  workflowId: string;
  baseBackupId: string;
  /** Admit a base backup whose manifest is not signed (made before backups were signed). */
  allowUnsigned?: boolean;
  target: RecoveryTarget;
  dataDir?: string;
  port?: number;
}

export interface PitrDeps extends DatabaseBackupDeps {
  /** The worker's own configuration file, for the default restore_command. */
  configFile?: string;
}

const WAL_FETCH_ASYNC = path.join(path.dirname(CLI_PATH), 'wal-fetch-async');

/** A path as one word of restore_command (a path like `x;touch y` stays a path). */
export const commandWord = postgresCommandWord;

export function createPitrActivities(deps: PitrDeps) {
  const { config } = deps;

  /**
   * The recovered server's restore_command; with allowUnsigned, its wal-fetch admits unsigned WAL
   * entries too. By default bin/wal-fetch-async with this attempt's queue folder: a fetcher
   * decrypts ahead of replay, in parallel, and each call only copies (pitr.restoreCommand, when
   * set, is used as it is).
   */
  function restoreCommand(allowUnsigned: boolean, queue: string): string {
    const fetchWords = allowUnsigned ? 'wal-fetch --allow-unsigned %f %p' : 'wal-fetch %f %p';
    if (config.pitr.restoreCommand) {
      if (!allowUnsigned) return config.pitr.restoreCommand;
      if (!/ wal-fetch %f %p$/.test(config.pitr.restoreCommand)) {
        throw permanent(ErrorType.InvalidInput, `allowUnsigned: pitr.restoreCommand does not end in "wal-fetch %f %p", so --allow-unsigned cannot be handed to it; recover without allowUnsigned, or end the command so`);
      }
      return config.pitr.restoreCommand.replace(/ wal-fetch %f %p$/, ` ${fetchWords}`);
    }
    if (!deps.configFile) {
      throw permanent(ErrorType.InvalidConfig, 'pitr.restoreCommand is not set and the worker was started without a configuration file to hand to wal-fetch');
    }
    // The node this worker runs: PostgreSQL's PATH may have none.
    const node = `BACKUPCTL_NODE=${commandWord(process.execPath)}`;
    return `${node} ${commandWord(WAL_FETCH_ASYNC)} ${commandWord(queue)} ${commandWord(path.resolve(deps.configFile))} ${allowUnsigned ? '--allow-unsigned ' : ''}%f %p`;
  }

  function recoveredTarget(port: number, database = parseDatabaseUrl(config.database.url, config.database.passwordFile).database): DatabaseTarget {
    return { ...restoreServer(config), host: '127.0.0.1', port, database };
  }

  async function findBaseBackup(backupId: string, allowUnsigned: boolean): Promise<{ manifest: BaseBackupManifest; holders: string[] }> {
    return findBaseBackupIn(deps.repositories, backupId, { verifier: await loadVerifier(config), allowUnsigned }, await expectedSource(config), log);
  }

  return {
    /**
     * The base backups in every repository whose manifest is signed by a trusted key (or, with
     * `allowUnsigned`, not signed at all), and the newest archived WAL segment: what targets a
     * recovery can reach now. Read-only. Permanent SourceMismatch when the configured cluster
     * is unknown and base backups of several clusters are there; InvalidConfig for a signing key file.
     */
    async describeRecoverableWindow(input?: { allowUnsigned?: boolean }): Promise<RecoverableWindow> {
      return recoverableWindow(config, deps.repositories, await loadVerifier(config), await expectedSource(config), input?.allowUnsigned === true, log);
    },

    /**
     * Makes the new data directory from the base backup (first whole copy, decrypted and
     * unpacked), writes restore_command, the target and recovery.signal. Idempotent: a retry
     * empties what an earlier attempt of this run made (proven by its run id in the private
     * folder beside the data directory). Permanent: InvalidInput (directory not ours), AttemptSuperseded,
     * BackupNotFound, UnsignedBackup, BadSignature (no manifest copy signed by a trusted key),
     * NoUsableCopy, PrivateKeyMissing.
     */
    async prepareRecoveryCluster(input: PrepareInput): Promise<RecoveryCluster> {
      const ctx = Context.current();
      const { manifest, holders } = await findBaseBackup(input.baseBackupId, input.allowUnsigned === true);
      await assertPrivateKeyFor(config.encryption, manifest.encryption.recipientFingerprint, config.host);
      const runId = ctx.info.workflowExecution?.runId;
      if (!runId) throw permanent(ErrorType.InvalidInput, 'prepareRecoveryCluster: no workflow run to own the recovery folders (activities run only inside a workflow)');
      // By default a fresh folder of this run: a workflow id may be reused, a run id is not.
      const dataDir = input.dataDir ?? path.join(config.restore.workDir ?? os.tmpdir(), `backupctl-pitr-${input.workflowId.replace(/[^A-Za-z0-9._-]+/g, '-')}-${runId.slice(0, 8)}`, 'data');
      const port = await claimDataDirectory(dataDir, { runId, workflowId: input.workflowId }, input.port, deps.binDir);
      const object = manifest.objects.find((o) => o.role === 'base')!;
      // This attempt's own folders: the base backup is unpacked, the WAL fetched ahead and the
      // recovery configured there, and moved into place in one step, only while this attempt
      // still stands. An attempt frozen mid-unpack (a paused VM, SIGSTOP) whose place a newer
      // attempt took, and whose run may have started and promoted the recovered server since,
      // so writes nothing into the server's folder: no file of another moment, no recovery.signal.
      // (Inside the data directory, so the move is a rename on one filesystem even when the
      // data directory is a mount point; a retry's claim empties what a dead attempt left.)
      const unpackDir = path.join(dataDir, `.backupctl-unpack-${ctx.info.attempt}`);
      const prefetchDir = prefetchDirOf(dataDir);
      const stagedPrefetch = `${prefetchDir}.attempt-${ctx.info.attempt}`;
      // Beats while the unpacked bytes grow: an unpack that stalls times out and is retried.
      const unpacking = progressHeartbeat(() => ({ phase: 'unpacking' }));
      let prefetched: Prefetched;
      try {
        await rm(unpackDir, { recursive: true, force: true });
        await mkdir(unpackDir, { mode: 0o700 });
        await readFirstGoodCopy({
          object,
          repositories: deps.repositories.filter((r) => holders.includes(r.name)),
          compression: manifest.compression,
          privateKeyHome: config.encryption.privateKeyHome!,
          passphraseFile: config.encryption.passphraseFile,
          signal: ctx.cancellationSignal,
          consume: async (plain) => {
            // Nothing of a copy that proved corrupt (or planted) stays for the next copy to land on.
            for (const entry of await readdir(unpackDir)) await rm(path.join(unpackDir, entry), { recursive: true, force: true });
            plain.on('data', (chunk: Buffer) => unpacking.moved(chunk.length));
            const tar = spawnStreaming('tar', ['-x', '-C', unpackDir, '--no-same-owner'], { stdin: 'pipe', signal: ctx.cancellationSignal });
            await Promise.all([pipeline(plain, tar.stdin!), tar]);
          },
          consumerFailure: (err) => classifyFilesystemError(err, `unpacking the base backup into ${dataDir}`),
        });
        unpacking.stop();
        const walTrust = walTrustOf(config, await loadVerifier(config), input.allowUnsigned === true);
        // With the asynchronous restore_command, only what covers its fetcher's start: the fetcher
        // goes on from there, ahead of replay, while replay runs.
        const limit = config.pitr.restoreCommand ? PREFETCH_SEGMENTS.oneAtATime : PREFETCH_SEGMENTS.beforeFetcher;
        prefetched = await prefetchWal(config, deps.repositories, walTrust, stagedPrefetch, manifest.backup.timeline, manifest.backup.startLsn, () => ctx.heartbeat({ phase: 'prefetching-wal' }), limit);
        const owner = serverOwner();
        if (process.getuid?.() === 0) {
          await runCommand('chown', ['-R', `${owner.spawn.uid}:${owner.spawn.gid}`, unpackDir]);
          // The server only reads the WAL fetched ahead: root's, its group may read. (Owned by the
          // server's OS user, a folder root later renames and removes could be swapped mid-walk.)
          await runCommand('chgrp', ['-R', String(owner.spawn.gid), stagedPrefetch]);
          await runCommand('chmod', ['-R', 'g+rX', stagedPrefetch]);
        }
        // The target lies inside the window, so every segment replay needs was archived before
        // the fetch-ahead began: when all of them were fetched, a file not there does not exist,
        // and restore_command can say so at once. Otherwise the rest come through wal-fetch.
        // (Time and LSN targets were checked against the window; xid and restore point ones were not.)
        const windowChecked = input.target.kind === 'time' || input.target.kind === 'lsn';
        const fetched = `${commandWord(prefetchDir + '/')}%f`;
        // The queue of the asynchronous restore_command: written by the server's OS user (the
        // fetcher runs as it), apart from the fetched-ahead folder root keeps.
        // Made only where that command runs (not with pitr.restoreCommand, nor when everything was fetched ahead).
        const queue = fetchQueueDirOf(dataDir, ctx.info.attempt);
        const fallback = !(prefetched.complete && windowChecked);
        if (fallback && !config.pitr.restoreCommand) {
          await mkdir(queue, { mode: 0o700 });
          if (prefetched.next) await setFetchAheadStart(queue, prefetched.next);
          if (process.getuid?.() === 0) await runCommand('chown', ['-R', `${owner.spawn.uid}:${owner.spawn.gid}`, queue]);
        }
        const command = fallback ? `cp ${fetched} %p 2>/dev/null || ${restoreCommand(input.allowUnsigned === true, queue)}` : `cp ${fetched} %p`;
        await configureRecovery(unpackDir, { versionNum: manifest.server.versionNum, restoreCommand: command, target: input.target, port });
        await assertAttemptStands(`moving the unpacked base backup into ${dataDir}`);
        // Nothing is removed or replaced here: this attempt's claim left no wal-prefetch and an
        // empty data directory, so anything there now is a newer attempt's, whose server may run
        // from it (this attempt froze after its check). A rename replaces a file and an empty
        // folder without a word: every target is checked absent first, and the first one found
        // ends this attempt before anything of the newer attempt's is touched.
        const moveIn = async (from: string, to: string) => {
          if (await lstat(to).then(() => true, () => false)) throw staleAttempt(`moving the unpacked base backup into ${dataDir}`, `${to} is there already, made by a newer attempt`);
          await rename(from, to);
        };
        await moveIn(stagedPrefetch, prefetchDir);
        for (const entry of await readdir(unpackDir)) await moveIn(path.join(unpackDir, entry), path.join(dataDir, entry));
        await rmdir(unpackDir);
        await handOver(dataDir);
      } catch (err) {
        // Only this attempt's own folders: whatever stands in the data directory is the newer attempt's.
        await rm(unpackDir, { recursive: true, force: true }).catch(() => undefined);
        await rm(stagedPrefetch, { recursive: true, force: true }).catch(() => undefined);
        throw err;
      } finally {
        unpacking.stop();
      }
      log.info('WAL fetched ahead', { ...prefetched });
      log.info('recovery cluster prepared', { dataDir, port, baseBackup: input.baseBackupId });
      return { dataDir, port, host: '127.0.0.1' };
    },

    /**
     * Starts the recovered cluster if it is not running. Idempotent. A stale attempt (its
     * workflow closed while it was frozen) starts nothing, and stops what it started if the
     * workflow closed meanwhile: no server is left running that nobody will stop.
     */
    async startRecoveryCluster(input: RecoveryCluster): Promise<void> {
      await actWhileStanding(
        `starting the recovery cluster in ${input.dataDir}`,
        () => startCluster(input.dataDir, deps.binDir, {}),
        () => stopCluster(input.dataDir, deps.binDir),
      );
    },

    /**
     * Polls until the cluster has reached its target and promoted (pg_is_in_recovery() false),
     * heartbeating the replay position. Permanent: RecoveryFailed when the server stops (the
     * target was not in the archive, a segment is missing), with the end of its log.
     */
    async waitForPromotion(input: RecoveryCluster): Promise<{ recoveredTo: string | null; timeline: number }> {
      const ctx = Context.current();
      return waitUntilPromoted(recoveredTarget(input.port, 'postgres'), input.dataDir, deps.binDir, { signal: ctx.cancellationSignal, beat: (progress) => ctx.heartbeat(progress) });
    },

    /** Counts the key tables and runs the configured checks in the recovered database. Read-only. */
    async inspectRecoveredCluster(input: { port: number }): Promise<{ rowCounts: Record<string, number>; checks: { name: string; ok: boolean; detail: string }[] }> {
      const target = recoveredTarget(input.port);
      const client = await connect(target);
      try {
        const rowCounts: Record<string, number> = {};
        for (const table of await tablesToCount(client, config.database.keyTables)) {
          const counted = await countRows(client, table);
          if (counted !== undefined) rowCounts[table] = counted;
        }
        const inspection = await inspectDatabase(client, target, { expectedRowCounts: {}, checks: config.restore.checks, freshness: config.restore.freshness });
        return { rowCounts, checks: inspection.checks };
      } finally {
        await client.end().catch(() => undefined);
      }
    },

    /**
     * Runs pitr.cutoverCommand with the recovered cluster's address in its environment (the
     * services are stopped around it by the workflow). Permanent: InvalidConfig when there is
     * no command, ServiceCommandFailed when it fails, AttemptSuperseded for a stale attempt.
     */
    async switchToRecoveredCluster(input: RecoveryCluster): Promise<void> {
      const command = config.pitr.cutoverCommand;
      if (!command) throw permanent(ErrorType.InvalidConfig, `pitr.cutoverCommand is not set on host ${config.host}: there is no way to point the application at the recovered cluster`);
      const [file, ...args] = command;
      // A stale attempt (frozen until its place was taken, or its workflow gave up, started the
      // services on the old cluster and stopped the recovered one) points the application nowhere.
      await assertAttemptStands(`pointing the application at the recovered cluster in ${input.dataDir}`);
      try {
        await runCommand(file, args, { env: { BACKUPCTL_RECOVERED_HOST: input.host, BACKUPCTL_RECOVERED_PORT: String(input.port), BACKUPCTL_RECOVERED_DATA_DIR: input.dataDir } });
      } catch (err) {
        throw permanent(ErrorType.ServiceCommandFailed, `pitr.cutoverCommand \`${command.join(' ')}\` failed: ${errorText(err)}`);
      }
    },

    /** Stops a recovered cluster this workflow made (after a failure). Idempotent. */
    async stopRecoveryCluster(input: { dataDir: string }): Promise<void> {
      await stopCluster(input.dataDir, deps.binDir);
    },
  };
}
