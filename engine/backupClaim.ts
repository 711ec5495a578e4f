// Who may write a backup id, and where each attempt writes.
//
// A backup id is claimed before anything is written: `claim.json`, created atomically in every
// repository (Repository.create), names the one workflow run that may write under the id. Ids
// come from workflow ids, and workflow ids are reused; a run id is not, so the claim names the
// run. A second run under the same id is refused before it writes, and only the owning run's
// commit steps (manifest, sweep, discard) publish or remove anything.
//
// Each activity attempt streams into a folder of its own (`r<run>-a<attempt>/`). A stale
// attempt (its worker frozen while Temporal gave the work to another, then woken) can only
// write into its own folder, which no manifest names: it can neither overwrite nor delete what
// the attempt that won wrote. The manifest names the winner's keys; the sweep after it removes
// the other attempts' folders.
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { ErrorType, type Compression, type StoredObject } from '../common/types.js';
import { actWhileStanding, assertAttemptStands, attemptStanding, currentAttempt } from './attemptStanding.js';
import { OBJECT_NAMES, backupPrefix, manifestBody, manifestKey, type Component } from './catalog.js';
import { compressionSuffix } from './compression.js';
import { permanent } from './errors.js';
import type { Repository } from './storage/repository.js';

export interface BackupClaim {
  formatVersion: 1;
  component: Component;
  backupId: string;
  workflowId: string;
  runId: string;
  claimedAt: string;
}

export interface Owner {
  workflowId: string;
  runId: string;
}

export function claimKey(component: Component, backupId: string): string {
  return `${backupPrefix(component, backupId)}claim.json`;
}

/** The folder one attempt of one run writes into. */
export function attemptPrefix(component: Component, backupId: string, runId: string, attempt: number): string {
  return `${runFolderPrefix(component, backupId, runId)}${attempt}/`;
}

/** What every attempt folder of one run starts with: `<backup>/r<run token>-a`. */
function runFolderPrefix(component: Component, backupId: string, runId: string): string {
  return `${backupPrefix(component, backupId)}${ATTEMPT_FOLDER_PREFIX}${runToken(runId)}-a`;
}

const ATTEMPT_FOLDER_PREFIX = 'r';
const ATTEMPT_FOLDER = /^r[0-9a-f]{12}-a[0-9]+\/$/;

function runToken(runId: string): string {
  const hex = runId.toLowerCase().replace(/[^0-9a-f]/g, '');
  if (hex.length < 12) throw permanent(ErrorType.InvalidInput, `run id ${JSON.stringify(runId)} is not a Temporal run id`);
  return hex.slice(0, 12);
}

export function attemptObjectKey(component: Component, backupId: string, runId: string, attempt: number, role: StoredObject['role'], compression: Compression): string {
  return `${attemptPrefix(component, backupId, runId, attempt)}${OBJECT_NAMES[role]}.${compressionSuffix(compression)}.gpg`;
}

/** Whether key lies in some attempt's folder of this backup (as opposed to its manifest, claim or reports). */
export function isAttemptKey(component: Component, backupId: string, key: string): boolean {
  const prefix = backupPrefix(component, backupId);
  if (!key.startsWith(prefix)) return false;
  const rest = key.slice(prefix.length);
  const slash = rest.indexOf('/');
  return slash > 0 && ATTEMPT_FOLDER.test(rest.slice(0, slash + 1));
}

/** This activity attempt's identity: the run it belongs to and its attempt number. */
export function claimingAttempt(): { runId: string; attempt: number } {
  const attempt = currentAttempt();
  if (!attempt?.runId) throw permanent(ErrorType.InvalidInput, 'backup activities run only inside a workflow: a claim names a workflow run');
  return { runId: attempt.runId, attempt: attempt.attempt };
}

/**
 * The claim of a backup id in one repository: undefined when there is none, 'damaged' when it
 * was read and is not a claim of this id. A read that fails (the repository away for a moment,
 * a body cut short) throws, for the caller to retry: it says nothing about the claim.
 */
export async function readClaim(repository: Repository, component: Component, backupId: string): Promise<BackupClaim | 'damaged' | undefined> {
  const key = claimKey(component, backupId);
  if (!(await repository.stat(key))) return undefined;
  const body = await text(await repository.get(key));
  try {
    const claim = JSON.parse(body) as BackupClaim;
    if (claim?.backupId !== backupId || claim.component !== component || typeof claim.runId !== 'string') return 'damaged';
    return claim;
  } catch {
    return 'damaged';
  }
}

function describeClaim(claim: BackupClaim | 'damaged'): string {
  return claim === 'damaged' ? 'a damaged claim of unknown owner' : `run ${claim.runId} of workflow ${JSON.stringify(claim.workflowId)}, since ${claim.claimedAt}`;
}

/**
 * Claims the id for this run in every repository. A claim of this run (an earlier attempt)
 * counts as ours. Another run's claim, or a damaged one, refuses the backup before anything is
 * written (BackupAlreadyExists, permanent); claims this call made are then taken back, so two
 * runs racing in a different repository order leave no claim behind.
 */
export async function claimBackup(repositories: Repository[], component: Component, backupId: string, owner: Owner, now: Date): Promise<void> {
  const claim: BackupClaim = { formatVersion: 1, component, backupId, workflowId: owner.workflowId, runId: owner.runId, claimedAt: now.toISOString() };
  const body = Buffer.from(JSON.stringify(claim, null, 2) + '\n');
  const made: Repository[] = [];
  try {
    for (const repository of repositories) {
      if (await repository.create(claimKey(component, backupId), body)) {
        made.push(repository);
        continue;
      }
      const existing = await readClaim(repository, component, backupId);
      if (existing && existing !== 'damaged' && existing.runId === owner.runId) continue;
      throw permanent(
        ErrorType.BackupAlreadyExists,
        `backup id ${backupId} is taken in repository ${repository.name} by ${existing ? describeClaim(existing) : 'an object that vanished while it was read'}; start the backup with a new workflow id`,
      );
    }
  } catch (err) {
    for (const repository of made) await releaseClaim(repository, component, backupId, owner.runId).catch(() => undefined);
    throw err;
  }
}

/** An object's text, or undefined when it is missing or cannot be read (never a throw). */
async function storedText(repository: Repository, key: string): Promise<string | undefined> {
  return repository
    .get(key)
    .then((body) => text(body))
    .catch(() => undefined);
}

/**
 * Runs `act` in every repository, each whatever the others do: one full, read-only or
 * unreachable repository must not keep the cleanup from the rest. The first failure is thrown
 * after all were tried (so its type decides the retry); the results are summed.
 */
export async function inEachRepository(repositories: Repository[], act: (repository: Repository) => Promise<number>): Promise<number> {
  let total = 0;
  let failure: unknown;
  for (const repository of repositories) {
    try {
      total += await act(repository);
    } catch (err) {
      failure ??= err;
    }
  }
  if (failure !== undefined) throw failure;
  return total;
}

/**
 * claimBackup for the run of this activity attempt, if the attempt still stands
 * (attemptStanding.ts): an attempt frozen until its workflow had failed and given the id back
 * claims nothing, and one whose workflow closed while it claimed takes its claims back, so a
 * dead run never holds an id.
 */
export async function claimForThisAttempt(repositories: Repository[], component: Component, backupId: string, owner: Owner): Promise<void> {
  await actWhileStanding(
    `claiming backup id ${backupId}`,
    () => claimBackup(repositories, component, backupId, owner, new Date()),
    async () => {
      for (const repository of repositories) await releaseClaim(repository, component, backupId, owner.runId).catch(() => undefined);
    },
  );
}

/** Removes this run's claim from one repository; another run's is never touched. */
export async function releaseClaim(repository: Repository, component: Component, backupId: string, runId: string): Promise<void> {
  const existing = await readClaim(repository, component, backupId);
  if (existing && existing !== 'damaged' && existing.runId === runId) await repository.remove(claimKey(component, backupId));
}

/**
 * The fence of every step that writes or removes under a backup id: this run must hold the
 * claim in each repository. Permanent BackupOwnershipLost otherwise, naming the holder.
 */
export async function assertClaimed(repositories: Repository[], component: Component, backupId: string, runId: string): Promise<void> {
  for (const repository of repositories) {
    const claim = await readClaim(repository, component, backupId);
    if (!claim || claim === 'damaged' || claim.runId !== runId) {
      throw permanent(
        ErrorType.BackupOwnershipLost,
        `run ${runId} does not hold backup id ${backupId} in repository ${repository.name} (${claim ? describeClaim(claim) : 'no claim'}); it writes nothing there`,
      );
    }
  }
}

/** Whether this run holds the claim in one repository (for cleanup, which skips what it does not own). */
export async function holdsClaim(repository: Repository, component: Component, backupId: string, runId: string): Promise<boolean> {
  const claim = await readClaim(repository, component, backupId);
  return Boolean(claim && claim !== 'damaged' && claim.runId === runId);
}

/**
 * Every key a run's attempts may have left in one repository, complete or not: the listed
 * objects in attempt folders, and the computed keys of attempts 1..maxAttempts (the storage's
 * remove also clears an unfinished write, which a listing does not show).
 */
export async function attemptLeftovers(
  repository: Repository,
  component: Component,
  backupId: string,
  runId: string,
  roles: StoredObject['role'][],
  compressions: readonly Compression[],
  maxAttempts: number,
): Promise<string[]> {
  const listed = (await repository.list(backupPrefix(component, backupId))).map((o) => o.key).filter((key) => isAttemptKey(component, backupId, key));
  const computed: string[] = [];
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    for (const role of roles) for (const c of compressions) computed.push(attemptObjectKey(component, backupId, runId, attempt, role, c));
  }
  return [...new Set([...listed, ...computed])];
}

/**
 * Whether any of the repositories holds a manifest of the backup (readable or not). A backup
 * whose manifest was published anywhere is never discarded anywhere: that manifest names the
 * copies in the other repositories too.
 */
export async function manifestPublished(repositories: Repository[], component: Component, backupId: string): Promise<boolean> {
  for (const repository of repositories) if (await repository.stat(manifestKey(component, backupId))) return true;
  return false;
}

/**
 * Publishes a manifest in every repository, fenced by the claim: created only where none is
 * (a stale writer never replaces another run's manifest; the claim's holder replaces a foreign
 * one), then the claim is checked again. A writer that finds it lost the claim meanwhile (its
 * run was cancelled and compensated while it was frozen) takes back the manifest it published,
 * so no manifest outlives the objects it names. Throws BackupOwnershipLost.
 */
export async function publishManifest(repositories: Repository[], manifest: { component: Component; backupId: string; runId: string }): Promise<void> {
  const { component, backupId, runId } = manifest;
  const key = manifestKey(component, backupId);
  const body = manifestBody(manifest);
  await assertClaimed(repositories, component, backupId, runId);
  const takeBack = async (from: Repository[]) => {
    for (const repository of from) {
      const existing = await storedText(repository, key);
      if (existing === body.toString()) await repository.remove(key).catch(() => undefined);
    }
  };
  // A stale attempt (frozen, then woken after its run's newer attempt published) publishes nothing.
  await assertAttemptStands(`publishing the manifest of backup ${backupId}`);
  // Only what this very call wrote may be taken back: a manifest that was already there is a
  // newer attempt's (or an earlier call's that its run completed with), never ours to remove.
  const wrote: Repository[] = [];
  try {
    for (const repository of repositories) {
      if (await repository.create(key, body)) {
        wrote.push(repository);
        continue;
      }
      const existing = await storedText(repository, key);
      if (existing === body.toString()) continue;
      // Another run's (or a damaged) manifest where this run holds the id: a stale writer's; ours replaces it.
      await assertClaimed([repository], component, backupId, runId);
      await repository.put(key, Readable.from([body]), { contentLength: body.length });
      wrote.push(repository);
    }
  } catch (err) {
    // All or none: a manifest left in some repositories would make a backup that its run
    // reports failed (and whose failed copies its discard may no longer remove). A retry
    // publishes again; a permanent failure leaves the run's compensation a clean slate. Only
    // while this attempt still stands: a stale one removes nothing.
    if ((await attemptStanding()).state === 'current') await takeBack(wrote);
    throw err;
  }
  try {
    await assertClaimed(repositories, component, backupId, runId);
  } catch (lost) {
    await takeBack(repositories);
    throw lost;
  }
}

/**
 * What a failed run leaves, removed from one repository, only where it is this run's to
 * remove: never where a manifest exists (a complete backup, whoever made it), never where
 * another run holds the claim or none is held (a backup of an older version: no proof whose
 * objects those are). The claim goes last, so the id is free again only once nothing is left.
 */
export async function discardUnfinished(repository: Repository, component: Component, backupId: string, runId: string, roles: StoredObject['role'][], compressions: readonly Compression[], maxAttempts: number): Promise<number> {
  if (await repository.stat(manifestKey(component, backupId))) return 0;
  if (!(await holdsClaim(repository, component, backupId, runId))) return 0;
  // Only this run's folders: a discard frozen after its checks and woken once the id went to a
  // newer run must not reach that run's objects.
  const ownFolder = runFolderPrefix(component, backupId, runId);
  const keys = (await attemptLeftovers(repository, component, backupId, runId, roles, compressions, maxAttempts)).filter((key) => key.startsWith(ownFolder));
  const listed = new Set((await repository.list(backupPrefix(component, backupId))).map((o) => o.key));
  let removed = 0;
  for (const key of keys) {
    await repository.remove(key);
    if (listed.has(key)) removed++;
  }
  await releaseClaim(repository, component, backupId, runId);
  return removed;
}

/**
 * After the manifest: removes the other attempts' folders (a crashed or superseded attempt's
 * objects, complete or not) from one repository, keeping every key the manifest names. Only
 * the claim's holder sweeps. A stale attempt still writing may leave an object after this;
 * it lies in a folder no manifest names and is harmless; nothing removes it yet (retention of
 * unreferenced objects is still to come).
 */
export async function sweepAttempts(repository: Repository, component: Component, backupId: string, runId: string, keep: string[], roles: StoredObject['role'][], compressions: readonly Compression[], maxAttempts: number): Promise<number> {
  // The listing first, the claim after it: what was listed while this run held the id is this
  // run's or an older run's, never a newer run's. A sweep frozen before it listed, and woken
  // after the id was given back and reused (the sweep of a closed run releases the claim),
  // would otherwise list, and remove, the newer run's complete backup.
  const leftovers = await attemptLeftovers(repository, component, backupId, runId, roles, compressions, maxAttempts);
  if (!(await holdsClaim(repository, component, backupId, runId))) return 0;
  const kept = new Set(keep);
  const listed = new Set((await repository.list(backupPrefix(component, backupId))).map((o) => o.key));
  let removed = 0;
  for (const key of leftovers) {
    if (kept.has(key)) continue;
    await repository.remove(key);
    if (listed.has(key)) removed++;
  }
  return removed;
}
