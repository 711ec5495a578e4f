// One writer of WAL into a spool at a time. A segment is stored in two steps (its object, then
// its entry), and two writers of one segment (a pusher of an old archive_command's status folder
// still running beside the new one's, or a `backupctl wal-push` run by hand) could interleave
// them: each object is sealed with its own session key, so the entry one wrote could describe
// the object the other put in place, and the segment would read back as damaged everywhere.
//
// The lock is the kernel's (flock(1) on the spool's wal folder), held by a small process whose
// stdin this one holds: it ends, and the lock is free, when this process ends in any way, even
// by SIGKILL. A writer that is only frozen (SIGSTOP) keeps it: the others wait, and say so,
// rather than write beside it.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ErrorType } from '../common/types.js';
import { classifyFilesystemError, errorText, transient } from './errors.js';
import { spawnStreaming } from './exec.js';

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
  const folder = path.join(spoolRoot, 'wal');
  try {
    await mkdir(folder, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw classifyFilesystemError(err, `wal-push: making ${folder}`);
  }
  // -E 75: a timeout is told apart from flock failing otherwise.
  const proc = spawnStreaming('flock', ['-x', '-w', String(waitSeconds), '-E', '75', folder, 'sh', '-c', 'echo locked; exec cat >/dev/null'], { stdin: 'pipe' });
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
