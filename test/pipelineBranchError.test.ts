// Found by the chaos suite (issue 9: database backup + pg-restart-immediate; the worker process
// died with "Unhandled 'error' event ... Error: pipeline aborted ... Emitted 'error' event on
// PassThrough"): when one repository's write failed, the pass destroyed every repository's
// branch with an error, and a branch whose repository had not yet started reading it (an S3
// upload still opening, a slow NAS) had no 'error' listener but the pipe's own, which re-emits
// to nobody: the whole worker crashed, with every other activity it was running.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { loadRecipient, stopAgent, type Recipient } from '../activities/encryption.js';
import { permanent } from '../activities/errors.js';
import { spawnStreaming } from '../activities/exec.js';
import { streamToRepositories } from '../activities/pipeline.js';
import { FilesystemRepository } from '../activities/storage/filesystem.js';
import type { ObjectInfo, Repository } from '../activities/storage/repository.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { ErrorType } from '../workflows/types.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-branch-'));
let keys: KeyPair;
let recipient: Recipient;

beforeAll(async () => {
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  recipient = await loadRecipient(keys.publicKeyFile);
});

afterAll(async () => {
  await recipient?.dispose();
  if (keys) await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

/** A repository that takes its time before it reads the body (a connection still opening), then reads it to the end or its error. */
function slowStarter(name: string, delayMs: number): Repository {
  const local = new FilesystemRepository(name, path.join(dir, name));
  return Object.assign(Object.create(local) as Repository, {
    async put(key: string, body: Readable): Promise<ObjectInfo> {
      await new Promise((r) => setTimeout(r, delayMs));
      return local.put(key, body);
    },
  });
}

/** A repository whose write fails as soon as bytes arrive. */
function failing(name: string): Repository {
  const local = new FilesystemRepository(name, path.join(dir, name));
  return Object.assign(Object.create(local) as Repository, {
    async put(_key: string, body: Readable): Promise<ObjectInfo> {
      await new Promise((resolve, reject) => {
        body.once('data', resolve);
        body.once('error', reject);
      });
      throw permanent(ErrorType.DiskFull, `repository ${name}: no space left on device`);
    },
  });
}

test("one repository's failed write fails the pass with its cause, and a repository that had not started reading yet does not crash the process", async () => {
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  // Jest installs its own handler; an uncaught 'error' event would otherwise fail the run elsewhere.
  process.prependListener('uncaughtException', onUncaught);
  try {
    const abort = new AbortController();
    const failure = await streamToRepositories({
      producer: spawnStreaming('bash', ['-c', 'head -c 4000000 /dev/urandom | base64'], { signal: abort.signal }),
      classifyProducerError: (err) => permanent(ErrorType.DumpFailed, `producer failed: ${err}`),
      compression: { algorithm: 'zstd', level: 1, threads: 0 },
      recipient,
      repositories: [failing('full'), slowStarter('slow', 1500)],
      key: 'branch/one.gpg',
      abort,
    }).then(
      () => undefined,
      (err: { type?: string }) => err.type,
    );
    // The slow repository's put settles after its delay: give a crash the time to happen.
    await new Promise((r) => setTimeout(r, 2500));
    expect({ failure, uncaught: uncaught.map((e) => String(e)) }).toEqual({ failure: 'DiskFull', uncaught: [] });
  } finally {
    process.removeListener('uncaughtException', onUncaught);
  }
}, 30_000);
