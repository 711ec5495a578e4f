// Finding what our runs made and may have left: marked databases on the restore server,
// claimed or stray backup folders and unfinished uploads in the repositories, recovery folders
// and dead processes' temporary folders on this host. Read-only: what to do is the workflow's
// decision (workflows/sweepRules.ts), and the act checks every mark again.
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { scratchDatabaseName } from '../common/names.js';
import type { Leftover } from '../common/sweepTypes.js';
import type { Config } from '../common/config.js';
import { isAttemptKey, readClaim } from './backupClaim.js';
import { backupPrefix, componentPrefix, readManifestCopies, type Component } from './catalog.js';
import { errorText } from './errors.js';
import type { Trust } from './manifestSignature.js';
import { isRunning, readMarker } from './recoveryCluster.js';
import { liveDatabaseName, markerDetails, restoreServer, withServer } from './restoreTarget.js';
import type { Repository } from './storage/repository.js';
import { deadOwnersFolders, tempRoots } from './tempDirs.js';

export interface Findings {
  leftovers: Leftover[];
  notExamined: { what: string; why: string }[];
}

const COMPONENTS: Component[] = ['database', 'base'];

/** Where point-in-time recovery makes its folders when the operator names none (pitr.ts). */
export function recoveryRoot(config: Config): string {
  return config.restore.workDir ?? os.tmpdir();
}

export const RECOVERY_FOLDER_PREFIX = 'backupctl-pitr-';

/**
 * Databases on the restore server whose comment is our marker. The configured live database is
 * never one, whatever its comment says; an unmarked database is not ours.
 */
export async function findDatabases(config: Config, found: Findings): Promise<void> {
  const server = restoreServer(config);
  const live = liveDatabaseName(config);
  try {
    await withServer(server, async (client) => {
      const { rows } = await client.query<{ name: string; comment: string | null }>(
        `SELECT datname AS name, shobj_description(oid, 'pg_database') AS comment FROM pg_database ORDER BY datname`,
      );
      for (const { name, comment } of rows) {
        const marker = markerDetails(comment);
        if (!marker || name === live) continue;
        // verifyBackup and recoveryDrill name their scratch database after their workflow id.
        const scratch = name === scratchDatabaseName('verify', marker.workflowId) || name === scratchDatabaseName('drill', marker.workflowId);
        found.leftovers.push({
          kind: 'database',
          name,
          run: { workflowId: marker.workflowId, runId: marker.runId },
          attempt: marker.attempt,
          state: marker.state,
          scratch,
        });
      }
    });
  } catch (err) {
    found.notExamined.push({ what: `databases on the restore server ${server.host}:${server.port}`, why: errorText(err) });
  }
}

/**
 * Backup ids with something to sweep: a claim and no manifest (an unfinished backup), or
 * attempt folders beside a manifest that does not name them. When any repository cannot be
 * listed no backup is examined: a manifest there would be unseen, and nothing under an id with
 * a manifest anywhere may be taken for unfinished.
 */
export async function findBackups(repositories: Repository[], found: Findings, beat: () => void, trust: Trust): Promise<void> {
  for (const component of COMPONENTS) {
    const keysByRepository = new Map<Repository, string[]>();
    try {
      for (const repository of repositories) {
        keysByRepository.set(repository, (await repository.list(componentPrefix(component))).map((o) => o.key));
        beat();
      }
    } catch (err) {
      found.notExamined.push({ what: `${component} backups in the repositories`, why: errorText(err) });
      continue;
    }
    const ids = new Set<string>();
    for (const keys of keysByRepository.values()) for (const key of keys) ids.add(key.split('/')[1]);
    for (const backupId of [...ids].sort()) {
      if (!backupId || !/^[A-Za-z0-9._-]+$/.test(backupId)) continue;
      const prefix = backupPrefix(component, backupId);
      const claims = await Promise.all(repositories.map((r) => readClaim(r, component, backupId).catch(() => 'damaged' as const)));
      const held = claims.find((c) => c && c !== 'damaged');
      const claim = claims.includes('damaged') ? 'damaged' : held ? 'held' : 'none';
      const copies = await readManifestCopies(repositories, component, backupId, trust);
      const manifest = copies.skipped.length ? 'damaged' : copies.manifest ? 'published' : 'none';
      const named = new Set((copies.manifest?.objects ?? []).map((o) => o.key));
      const folders = new Set<string>();
      for (const [repository, keys] of keysByRepository) {
        for (const key of keys) {
          if (!key.startsWith(prefix) || !isAttemptKey(component, backupId, key) || named.has(key)) continue;
          folders.add(`${repository.name}:${key.slice(0, prefix.length + key.slice(prefix.length).indexOf('/') + 1)}`);
        }
      }
      beat();
      // A complete backup with nothing beside it, or an id with nothing in it: nothing to sweep.
      if (!folders.size && (manifest !== 'none' || claim === 'none')) continue;
      const owner = held && held !== 'damaged' ? { workflowId: held.workflowId, runId: held.runId } : null;
      // Claims of two runs under one id cannot both be right: no proof, so treated as damaged.
      // The workflow id too: Temporal is asked by workflow id and run id, and a run id under a
      // workflow id that is not its own is unknown to it ("gone"), so a claim rewritten in one
      // repository would pass a running backup for a closed one, in every repository.
      const disputed = claims.some((c) => c && c !== 'damaged' && owner && (c.runId !== owner.runId || c.workflowId !== owner.workflowId));
      found.leftovers.push({ kind: 'backup', component, backupId, run: owner, claim: disputed ? 'damaged' : claim, manifest, folders: [...folders].sort() });
    }
  }
}

/** The folders our keys live in: backups (and their reports), the WAL archive, drill reports. */
const OUR_FOLDERS = new Set(['database', 'base', 'wal', 'drills']);

/** How every object we write is named: encrypted data (.gpg), records (.json: manifests, claims, WAL entries, reports). */
const OUR_OBJECT_NAME = /\.(gpg|json)$/;

/**
 * Whether an unfinished upload's key is one backupctl writes: in one of our folders, of our
 * key characters, named as our objects are. A bucket (or a prefix) may be shared with other
 * tools, or hold another host's prefix below ours; their uploads are not ours to abort, however
 * old. In a file repository the name matters too: a file `X.partial` reads as an older
 * version's temp file of key X, and PostgreSQL names its own partial segments so
 * (`wal/000000010000000000000005.partial`: pg_receivewal's live segment, or one another
 * archiver copied raw), but X is then no key we ever write.
 */
export function isOurUploadKey(key: string): boolean {
  const parts = key.split('/');
  return (
    parts.length >= 2 &&
    OUR_FOLDERS.has(parts[0]) &&
    parts.every((p) => /^[A-Za-z0-9._-]+$/.test(p) && p !== '.' && p !== '..') &&
    OUR_OBJECT_NAME.test(parts[parts.length - 1])
  );
}

/**
 * At most this many unfinished writes per sweep, the oldest. All findings travel in one
 * activity result, which Temporal refuses over 2 MB (about 9,000 writes), and each one swept is
 * an activity in the sweep's history (at most 51,200 events): thousands of temp files (a NAS
 * flapping for days under a retrying archive_command, or names planted in a share) made the
 * sweep find nothing at all, every time, databases and backups included. The rest waits for the
 * next sweep, and the report says so.
 */
export const MAX_UPLOADS_PER_SWEEP = 1000;

/**
 * Unfinished writes of our keys in every repository: S3's multipart uploads, file repositories'
 * temp files. `beat` is called after each repository: walking a large share takes a while.
 */
export async function findUploads(repositories: Repository[], found: Findings, now: number, beat: () => void = () => undefined): Promise<void> {
  const uploads: Extract<Leftover, { kind: 'upload' }>[] = [];
  for (const repository of repositories) {
    if (!repository.listUnfinishedUploads) continue;
    beat();
    try {
      // Only our folders: the share may hold other tools' trees, and a folder of theirs (or the
      // mount's lost+found) that cannot be read is none of ours. One of ours that cannot be read
      // is reported, and the rest is still examined.
      const listed = await repository.listUnfinishedUploads({
        folders: [...OUR_FOLDERS],
        unlisted: (where, failure) => found.notExamined.push({ what: `unfinished uploads in repository ${repository.name}, folder ${where}`, why: errorText(failure) }),
      });
      for (const upload of listed) {
        if (!isOurUploadKey(upload.key)) continue;
        uploads.push({
          kind: 'upload',
          repository: repository.name,
          key: upload.key,
          uploadId: upload.uploadId,
          ...(repository.kind === 'filesystem' ? { tempFile: true } : {}),
          initiated: upload.initiated?.toISOString() ?? null,
          ageHours: upload.initiated ? (now - upload.initiated.getTime()) / 3_600_000 : null,
        });
      }
    } catch (err) {
      found.notExamined.push({ what: `unfinished uploads in repository ${repository.name}`, why: errorText(err) });
    }
    beat();
  }
  // The oldest are the ones old enough to go; in the report, in the order they were listed.
  const taken = new Set([...uploads].sort((a, b) => (b.ageHours ?? -Infinity) - (a.ageHours ?? -Infinity)).slice(0, MAX_UPLOADS_PER_SWEEP));
  found.leftovers.push(...uploads.filter((u) => taken.has(u)));
  const left = uploads.length - taken.size;
  if (left > 0) {
    const where = [...new Set(uploads.filter((u) => !taken.has(u)).map((u) => u.repository))];
    found.notExamined.push({
      what: `${left} more unfinished uploads (the newest) in ${where.length > 1 ? 'repositories' : 'repository'} ${where.join(', ')}`,
      why: `at most ${MAX_UPLOADS_PER_SWEEP} are swept at once (all findings travel in one activity result, each one swept is a step of the sweep's history); sweep again`,
    });
  }
}

/**
 * Recovery folders under the default recovery root that carry a run's marker. A recovery
 * into a folder the operator named (--data-dir) is not found here: nothing records where.
 */
export async function findRecoveries(config: Config, binDir: string | undefined, found: Findings): Promise<void> {
  const root = recoveryRoot(config);
  let names: string[];
  try {
    names = await readdir(root);
  } catch (err) {
    found.notExamined.push({ what: `recovery folders in ${root}`, why: errorText(err) });
    return;
  }
  for (const name of names.filter((n) => n.startsWith(RECOVERY_FOLDER_PREFIX)).sort()) {
    const folder = path.join(root, name);
    const dataDir = path.join(folder, 'data');
    const marker = readMarker(dataDir);
    if (!marker) continue;
    found.leftovers.push({ kind: 'recovery', folder, dataDir, run: { workflowId: marker.workflowId, runId: marker.runId }, running: await isRunning(dataDir, binDir) });
  }
}

/** Temporary folders (restore staging, gpg homes, bundles) whose process is gone. */
export async function findStaging(config: Config, found: Findings): Promise<void> {
  for (const folder of await deadOwnersFolders(tempRoots(config.restore.workDir))) found.leftovers.push({ kind: 'staging', folder });
}
