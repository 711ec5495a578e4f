// Activities of the sweep of leftovers (workflows/sweepLeftovers.ts): find, ask Temporal, act.
// Every act checks again, as it acts, the mark that made the workflow decide: the database's
// marker under its name lock, the claim in each repository, the recovery folder's marker, the
// dead owner of a temporary folder. So an act is idempotent and a decision made on a stale
// listing never reaches what another run made since.
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Context, log } from '@temporalio/activity';
import { ErrorType, COMPRESSIONS } from '../common/types.js';
import type { FoundLeftovers, Leftover, RunRef, RunStanding, SweepDecision } from '../common/sweepTypes.js';
import { readClaim, releaseClaim, sweepAttempts } from '../engine/backupClaim.js';
import { readManifestCopies, type Component } from '../engine/catalog.js';
import { loadVerifier, type Trust } from '../engine/manifestSignature.js';
import { MAX_TRANSFER_ATTEMPTS, ROLES_OF, type DatabaseBackupDeps } from './databaseBackup.js';
import { permanent } from '../engine/errors.js';
import { findBackups, findDatabases, findRecoveries, findStaging, findUploads, isOurUploadKey, recoveryRoot, RECOVERY_FOLDER_PREFIX, type Findings } from '../engine/leftovers.js';
import { isRunning, readMarker, stopCluster } from '../engine/recoveryCluster.js';
import { dropRestoreDatabase, liveDatabaseName, restoreServer, withServer } from '../engine/restoreTarget.js';
import { describeRun } from './runStanding.js';
import { removeIfOwnerDead, tempRoots } from '../engine/tempDirs.js';
import './attemptContext.js';

export interface SweepLeftoverInput {
  leftover: Leftover;
  decision: SweepDecision;
}

export function createSweepActivities(deps: DatabaseBackupDeps) {
  /**
   * Any intact manifest protects what it names, signed or (made before signing) not; one
   * signed by a key this host does not trust is a damaged copy, and a damaged copy keeps
   * everything under its id.
   */
  const sweepTrust = async (): Promise<Trust> => ({ verifier: await loadVerifier(deps.config), allowUnsigned: true });

  const { config } = deps;
  const beat = (details: Record<string, unknown>) => Context.current().heartbeat(details);

  async function dropDatabase(name: string, run: RunRef): Promise<string> {
    // Any attempt of the closed run: dropRestoreDatabase checks the marker's run under the
    // name's lock and refuses the live database (LiveDatabaseProtected).
    const maker = { ...run, attempt: 0 };
    beat({ phase: 'dropping', database: name });
    const dropped = await withServer(restoreServer(config), (client) => dropRestoreDatabase(client, name, maker, liveDatabaseName(config), { closedRunId: run.runId }));
    return dropped ? `dropped database ${name}` : `database ${name} is gone or no longer carries run ${run.runId}'s marker: nothing dropped`;
  }

  async function sweepBackup(component: Component, backupId: string, run: RunRef): Promise<string> {
    const repositories = deps.repositories;
    // The claims again, as the act begins: each one still there must name this very run, by
    // workflow id and run id (the pair Temporal was asked about), or nothing is removed.
    for (const repository of repositories) {
      const claim = await readClaim(repository, component, backupId);
      if (claim && (claim === 'damaged' || claim.runId !== run.runId || claim.workflowId !== run.workflowId)) {
        throw permanent(ErrorType.BackupOwnershipLost, `backup ${backupId}: the claim in repository ${repository.name} does not name run ${run.runId} of workflow ${run.workflowId}; claims that disagree prove nothing, and nothing was removed`);
      }
    }
    // Read now, not trusted from the listing: a manifest anywhere names what must stay.
    const copies = await readManifestCopies(repositories, component, backupId, await sweepTrust());
    if (copies.skipped.length) {
      throw permanent(ErrorType.ManifestDamaged, `backup ${backupId}: ${copies.skipped.map((s) => s.reason).join('; ')}; nothing was removed`);
    }
    const keep = (copies.manifest?.objects ?? []).map((o) => o.key);
    let removed = 0;
    // sweepAttempts removes only where the closed run still holds the claim, and never a key in keep.
    for (const repository of repositories) {
      removed += await sweepAttempts(repository, component, backupId, run.runId, keep, ROLES_OF[component], COMPRESSIONS, MAX_TRANSFER_ATTEMPTS);
      beat({ phase: 'removing', backupId, removed });
    }
    if (copies.manifest) return `removed ${removed} objects no manifest names; the backup's ${keep.length} objects and its manifest stay`;
    // The claim last: the id is free again only once nothing of the run is left under it.
    for (const repository of repositories) await releaseClaim(repository, component, backupId, run.runId);
    return `removed ${removed} objects of the unfinished backup and its claim`;
  }

  async function abortUpload(repositoryName: string, key: string, uploadId: string, initiated: string | null): Promise<string> {
    const repository = deps.repositories.find((r) => r.name === repositoryName);
    if (!repository?.abortUnfinishedUpload) throw permanent(ErrorType.UnknownRepository, `repository ${repositoryName} is not configured here, or has no unfinished uploads`);
    if (!isOurUploadKey(key)) throw permanent(ErrorType.InvalidInput, `${key} is not a key backupctl writes (database/, base/, wal/, drills/; named .gpg or .json): another tool's upload or file is not touched`);
    // The last write the decision saw: a temp file written to since is a live writer's (checked as it is removed).
    const seen = initiated === null ? undefined : new Date(initiated);
    if (!(await repository.abortUnfinishedUpload({ key, uploadId, ...(seen && !Number.isNaN(seen.getTime()) ? { initiated: seen } : {}) }))) {
      return `${uploadId}, an unfinished write of ${key}, was written to since it was found (${initiated}): its writer lives, so it stays`;
    }
    return repository.kind === 'filesystem' ? `${uploadId}, an unfinished write of ${key}, is gone (removed now or before)` : `aborted the unfinished upload of ${key}`;
  }

  async function sweepRecovery(leftover: Extract<Leftover, { kind: 'recovery' }>, decision: SweepDecision): Promise<string> {
    const folder = path.resolve(leftover.folder);
    // Only a folder where recoveries are made by default, named as they name theirs, holding
    // the same run's marker: the path in the history is not trusted beyond that.
    if (path.dirname(folder) !== path.resolve(recoveryRoot(config)) || !path.basename(folder).startsWith(RECOVERY_FOLDER_PREFIX)) {
      throw permanent(ErrorType.InvalidInput, `${folder} is not a recovery folder of this host (${recoveryRoot(config)}/${RECOVERY_FOLDER_PREFIX}*)`);
    }
    const dataDir = path.join(folder, 'data');
    if (readMarker(dataDir)?.runId !== leftover.run.runId) return `${folder} no longer carries run ${leftover.run.runId}'s marker: nothing done`;
    const done: string[] = [];
    if (await isRunning(dataDir, deps.binDir)) {
      beat({ phase: 'stopping', dataDir });
      await stopCluster(dataDir, deps.binDir);
      if (await isRunning(dataDir, deps.binDir)) throw permanent(ErrorType.RecoveryFailed, `the recovered cluster in ${dataDir} did not stop`);
      done.push('stopped its server');
    }
    if (decision.removeFolder) {
      await rm(folder, { recursive: true, force: true });
      done.push(`removed ${folder}`);
    } else {
      done.push(`kept ${folder} for the operator to read`);
    }
    return done.join('; ');
  }

  return {
    /**
     * Finds what our runs made on this host and in its repositories: marked databases,
     * claimed or stray backup folders, unfinished uploads, recovery folders, temporary folders
     * of dead processes. Read-only, so idempotent. What cannot be looked at (a server down) is
     * reported in notExamined, not thrown. Heartbeats as it goes.
     */
    async findLeftovers(input: { uploadAgeHours: number }): Promise<FoundLeftovers> {
      const found: Findings = { leftovers: [], notExamined: [] };
      await findDatabases(config, found);
      beat({ phase: 'databases' });
      await findBackups(deps.repositories, found, () => beat({ phase: 'backups' }), await sweepTrust());
      await findUploads(deps.repositories, found, Date.now(), () => beat({ phase: 'uploads' }));
      await findRecoveries(config, deps.binDir, found);
      await findStaging(config, found);
      log.info('leftovers found', { leftovers: found.leftovers.length, notExamined: found.notExamined.length, uploadAgeHours: input.uploadAgeHours });
      return found;
    },

    /**
     * Asks Temporal about each run: open, closed (status and workflow type), gone (no such
     * run), or unknown (no answer). Read-only; never throws for one run's answer.
     */
    async describeRuns(input: { runs: RunRef[] }): Promise<RunStanding[]> {
      const standings: RunStanding[] = [];
      for (const run of input.runs) {
        standings.push(await describeRun(run));
        beat({ phase: 'asking', asked: standings.length });
      }
      return standings;
    },

    /**
     * Does what the workflow decided for one leftover, after checking its mark again:
     * drops a database still marked by the closed run (never the live one), removes a closed
     * run's attempt folders (and, with no manifest anywhere, its claim; never a key a manifest
     * names), aborts an unfinished upload, stops (and, when asked, removes) a recovery folder's
     * server, removes a dead process's temporary folder. Idempotent: a retry finds the rest.
     * Permanent: LiveDatabaseProtected, ManifestDamaged, InvalidInput (a path not ours).
     */
    async sweepLeftover(input: SweepLeftoverInput): Promise<{ detail: string }> {
      const { leftover, decision } = input;
      let detail: string;
      switch (leftover.kind) {
        case 'database':
          detail = await dropDatabase(leftover.name, leftover.run);
          break;
        case 'backup':
          if (!leftover.run) throw permanent(ErrorType.InvalidInput, `backup ${leftover.backupId} has no claim: nothing is removed without one`);
          detail = await sweepBackup(leftover.component, leftover.backupId, leftover.run);
          break;
        case 'upload':
          detail = await abortUpload(leftover.repository, leftover.key, leftover.uploadId, leftover.initiated);
          break;
        case 'recovery':
          detail = await sweepRecovery(leftover, decision);
          break;
        case 'staging':
          if (!tempRoots(config.restore.workDir).includes(path.dirname(path.resolve(leftover.folder)))) {
            throw permanent(ErrorType.InvalidInput, `${leftover.folder} is not in a folder where this host makes temporary folders`);
          }
          detail = (await removeIfOwnerDead(leftover.folder)) ? `removed ${leftover.folder}` : `${leftover.folder} is gone, or its process lives: nothing removed`;
          break;
      }
      log.info('leftover swept', { kind: leftover.kind, act: decision.act, detail });
      return { detail };
    },
  };
}
