// One writer of WAL into a spool at a time. A segment is stored in two steps (its object, then
// its entry), and two writers of one segment (a pusher of an old archive_command's status folder
// still running beside the new one's, or a `backupctl wal-push` run by hand) could interleave
// them: each object is sealed with its own session key, so the entry one wrote could describe
// the object the other put in place, and the segment would read back as damaged everywhere.
//
// The lock is the kernel's (flock(1) on the spool's root folder), held by a small process whose
// stdin this one holds: it ends, and the lock is free, when this process ends in any way, even
// by SIGKILL. A writer that is only frozen (SIGSTOP) keeps it: the others wait, and say so,
// rather than write beside it.
//
// The root, not its wal folder: a lock is on a folder, writes go by path, and a wal folder moved
// aside and made anew while a writer runs (an operator starting a fresh archive) had the next
// writer lock the new folder while the first still wrote into it. The root is the repository's
// place (its configured path); the folder locked is checked to be the one its path names.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ErrorType } from '../common/types.js';
import { classifyFilesystemError, errorText, transient } from './errors.js';
import { spawnStreaming } from './exec.js';

/** Holds an exclusive flock on $1 (waiting up to $2 s) for as long as its stdin is open. */
const LOCK_SCRIPT = [
  'while :; do',
  '  exec 9<"$1" || exit 1',
  '  flock -x -w "$2" -E 75 9 || exit $?',
  '  [ /proc/self/fd/9 -ef "$1" ] && break',
  '  exec 9<&-',
  'done',
  'echo locked',
  'exec cat >/dev/null',
].join('\n');

export interface WalWriterLock {
  /** The folder locked. */
  folder: string;
  /** Whether the lock is still held (its process has not ended). */
  held(): boolean;
  release(): Promise<void>;
}

/**
 * Takes the spool's WAL writer lock, waiting up to `waitSeconds` for another writer to end.
 * A transient StorageUnreachable error when it does not within that time (the caller is retried).
 */
export async function lockWalWriter(spoolRoot: string, waitSeconds: number): Promise<WalWriterLock> {
  const folder = path.resolve(spoolRoot);
  try {
    await mkdir(folder, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw classifyFilesystemError(err, `wal-push: making ${folder}`);
  }
  // -E 75: a timeout is told apart from flock failing otherwise. The folder locked must be the
  // one its path still names once locked (else it was replaced meanwhile: locked again).
  const proc = spawnStreaming('sh', ['-c', LOCK_SCRIPT, 'wal-writer-lock', folder, String(waitSeconds)], { stdin: 'pipe' });
  proc.stdin!.on('error', () => undefined);
  let alive = true;
  const ended = proc.then(
    () => undefined,
    (err: unknown) => err,
  );
  void ended.then(() => {
    alive = false;
  });
  const locked = await new Promise<boolean>((resolve) => {
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (text: string) => {
      if (text.includes('locked')) resolve(true);
    });
    void ended.then(() => resolve(false));
  });
  if (!locked) {
    const err = await ended;
    const timedOut = (err as { exitCode?: number } | undefined)?.exitCode === 75;
    throw transient(
      ErrorType.StorageUnreachable,
      timedOut
        ? `wal-push: another writer has held the WAL spool ${folder} for ${waitSeconds} s (a pusher of another archive_command's status folder, or a wal-push run by hand); this one stores nothing beside it`
        : `wal-push: cannot lock the WAL spool ${folder}: ${errorText(err)}`,
    );
  }
  return {
    folder,
    held: () => alive,
    release: async () => {
      proc.stdin!.end();
      await ended;
    },
  };
}
