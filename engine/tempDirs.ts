// Temporary folders of ours (gpg homes, the workflow bundle, restore staging that holds
// plaintext) are named with the id of the process that made them and a tag of the host (the
// machine or container) it runs on: `backupctl-<kind>-<pid>-<host tag>-…`. A worker that dies
// by SIGKILL cannot clean up; the next worker to start removes the folders whose process is
// gone (or whose pid now belongs to a process younger than the folder), and never one of a
// live process (another worker on this host), nor one made under
// another host name (a container with its own process ids sharing the folder).
import { createHash } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export type TempKind = 'gpg' | 'bundle' | 'restore';

const OWNED = /^backupctl-(gpg|bundle|restore)-(\d+)-([0-9a-f]{8})-[A-Za-z0-9]+$/;

const HOST_TAG = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);

/** Where our temporary folders are made: the temp folder, /dev/shm, restore.workDir. */
export function tempRoots(restoreWorkDir: string | undefined): string[] {
  return [os.tmpdir(), '/dev/shm', ...(restoreWorkDir ? [restoreWorkDir] : [])];
}

/** The mkdtemp prefix for a folder this process owns. */
export function ownedTempPrefix(kind: TempKind): string {
  return `backupctl-${kind}-${process.pid}-${HOST_TAG}-`;
}

/** Whether a process with this id exists (EPERM: it exists, as another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the process the folder's name points to is alive AND can have made it. A pid is
 * reused (a worker restarted as PID 1 in its container, an unrelated process): a folder last
 * modified before that process started was made by a dead one. Nothing of ours sets a folder's
 * modification time back, so a live owner's folder is never older than its process.
 */
async function ownerLives(pid: number, dir: string): Promise<boolean> {
  if (pid !== process.pid && !processAlive(pid)) return false;
  // A zombie has exited: only its exit status waits to be collected, for as long as its parent
  // (or an init that does not reap, as in many containers) lets it. It uses nothing any more.
  if (pid !== process.pid && (await processState(pid)) === 'exited') return false;
  const startedAt = pid === process.pid ? Date.now() - process.uptime() * 1000 : await processStartMs(pid);
  if (startedAt === undefined) return true;
  const info = await stat(dir).catch(() => undefined);
  if (!info) return true;
  // A second of slack for clock granularity.
  return info.mtimeMs >= startedAt - 1000;
}

/** Whether a process has exited and waits only to be reaped (a zombie), from /proc; 'unknown' where that cannot be read. */
async function processState(pid: number): Promise<'running' | 'exited' | 'unknown'> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X' ? 'exited' : 'running';
  } catch {
    return 'unknown';
  }
}

/** When a process started (epoch ms), from /proc; undefined where that cannot be read. */
async function processStartMs(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const btime = Number(/^btime (\d+)$/m.exec(await readFile('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(startTicks) || !Number.isFinite(btime)) return undefined;
    // USER_HZ is 100 on every Linux a worker runs on.
    return btime * 1000 + (startTicks * 1000) / 100;
  } catch {
    return undefined;
  }
}

/** In each folder given, our temporary folders (of the kinds given; all by default) whose owning process is dead (folders that cannot be listed are passed over). */
export async function deadOwnersFolders(roots: string[], kinds?: TempKind[]): Promise<string[]> {
  const found: string[] = [];
  for (const root of new Set(roots)) {
    let names: string[];
    try {
      names = await readdir(root);
    } catch {
      continue;
    }
    for (const name of names) {
      const dir = path.join(root, name);
      if (kinds && !kinds.includes(OWNED.exec(name)?.[1] as TempKind)) continue;
      if (await ownedByDeadProcess(dir)) found.push(dir);
    }
  }
  return found;
}

/** Whether the folder is one of ours (by its name), made on this host, by a process that is gone. */
async function ownedByDeadProcess(dir: string): Promise<boolean> {
  const match = OWNED.exec(path.basename(dir));
  if (!match || match[3] !== HOST_TAG) return false;
  return !(await ownerLives(Number(match[2]), dir));
}

/**
 * Removes the folder if it is one of ours whose process is gone, checked again now; returns
 * whether it was removed.
 */
export async function removeIfOwnerDead(dir: string): Promise<boolean> {
  if (!(await ownedByDeadProcess(dir))) return false;
  await rm(dir, { recursive: true, force: true });
  return true;
}

/**
 * Removes, in each folder given, our temporary folders whose owning process is dead.
 * Returns what was removed. Folders that cannot be listed are passed over.
 */
export async function sweepDeadOwners(roots: string[], kinds?: TempKind[]): Promise<string[]> {
  const removed: string[] = [];
  for (const dir of await deadOwnersFolders(roots, kinds)) {
    try {
      if (await removeIfOwnerDead(dir)) removed.push(dir);
    } catch {
      // not ours to fight over: left for the next start
    }
  }
  return removed;
}

/**
 * Removes this process's own temporary folders of the given kinds in each folder given, at once
 * and synchronously: for a signal handler, when the process is about to end (PostgreSQL's
 * immediate shutdown sends SIGQUIT to what its archiver runs). Never throws.
 */
export function removeOwnFoldersSync(roots: string[], kinds: TempKind[]): void {
  for (const root of new Set(roots)) {
    let names: string[];
    try {
      names = readdirSync(root);
    } catch {
      continue;
    }
    for (const kind of kinds) {
      const prefix = ownedTempPrefix(kind);
      for (const name of names.filter((n) => n.startsWith(prefix))) {
        try {
          // A gpg ended by the same signal may still be writing in it (ENOTEMPTY): tried again.
          rmSync(path.join(root, name), { recursive: true, force: true, maxRetries: 5, retryDelay: 10 });
        } catch {
          // Still busy: the caller may try again; a later start removes a dead process's folders.
        }
      }
    }
  }
}
