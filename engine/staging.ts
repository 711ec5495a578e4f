// Where a restore stages the decrypted archive before pg_restore reads it: a folder of one
// attempt alone, on a disk with room for the archive.
import { createWriteStream } from 'node:fs';
import { mkdtemp, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ErrorType, type Compression, type StoredObject } from '../common/types.js';
import { readFirstGoodCopy, type CopyRead } from './copySelection.js';
import { classifyFilesystemError, permanent } from './errors.js';
import type { Repository } from './storage/repository.js';
import { ownedTempPrefix } from './tempDirs.js';

/**
 * A staging folder of this attempt alone (a stale attempt that wakes up never removes or
 * overwrites a newer attempt's); its name carries this process's id, so a worker started
 * after this one died removes it (workers/worker.ts sweeps at start).
 */
export async function makeStagingDir(workDir: string | undefined, bytes: number): Promise<string> {
  const root = workDir ?? (await defaultStagingRoot(bytes));
  return mkdtemp(path.join(root, ownedTempPrefix('restore'))).catch((err) => {
    throw classifyFilesystemError(err, `creating a staging folder in ${root}`);
  });
}

/** DiskFull, before anything is fetched, when the staging folder's disk cannot hold the archive. */
export async function assertRoomFor(dir: string, bytes: number): Promise<void> {
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  // A little headroom: the filesystem's own blocks, and other writers.
  if (free < bytes * 1.02 + 16 * 1024 * 1024) {
    throw permanent(ErrorType.DiskFull, `restore.workDir ${path.dirname(dir)} has ${free} bytes free; staging the archive needs ${bytes} (set restore.workDir to a larger disk)`);
  }
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

/** The private key a restore decrypts with. */
export interface DecryptKeys {
  privateKeyHome: string;
  passphraseFile: string | undefined;
}

/**
 * Stages a backup's object whole in `file` from its first good copy: a copy's bytes are kept
 * only once its stored sha256 matched the (signed) manifest, so nothing of a planted or
 * damaged copy is ever loaded. `onStaged` is told the plaintext bytes written so far (counted
 * again from 0 for each copy tried); `onBytes` the stored bytes read.
 */
export async function stageObject(input: {
  object: StoredObject;
  repositories: Repository[];
  compression: Compression;
  keys: DecryptKeys;
  file: string;
  signal: AbortSignal;
  onBytes?: (bytes: number) => void;
  onStaged?: (bytes: number) => void;
}): Promise<CopyRead<void>> {
  const { signal } = input;
  return readFirstGoodCopy({
    object: input.object,
    repositories: input.repositories,
    compression: input.compression,
    privateKeyHome: input.keys.privateKeyHome,
    passphraseFile: input.keys.passphraseFile,
    signal,
    onBytes: input.onBytes,
    consume: async (plain) => {
      let staged = 0;
      input.onStaged?.(0);
      if (signal.aborted) throw signal.reason;
      plain.on('data', (chunk: Buffer) => input.onStaged?.((staged += chunk.length)));
      await pipeline(plain, createWriteStream(input.file, { mode: 0o600 }));
    },
    consumerFailure: (err) => classifyFilesystemError(err, `staging the archive in ${path.dirname(input.file)}`),
  });
}
