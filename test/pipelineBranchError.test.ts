// Found by the chaos suite (issue 9: database backup + pg-restart-immediate; the worker process
// died with "Unhandled 'error' event ... Error: pipeline aborted ... Emitted 'error' event on
// PassThrough"): when one repository's write failed, the pass destroyed every repository's
// branch with an error, and a branch whose repository had not yet started reading it (an S3
// upload still opening, a slow NAS) had no 'error' listener but the pipe's own, which re-emits
// to nobody: the whole worker crashed, with every other activity it was running.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { loadRecipient, stopAgent, type Recipient } from '../engine/encryption.js';
import { permanent } from '../engine/errors.js';
import { spawnStreaming } from '../engine/exec.js';
import { streamToRepositories } from '../engine/pipeline.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import type { ObjectInfo, Repository } from '../engine/storage/repository.js';
import { S3Repository } from '../engine/storage/s3.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { ErrorType } from '../common/types.js';

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

test("an S3 write whose body fails while it still clears stale uploads (the server slow to answer) does not crash the process", async () => {
  // A server that takes the connection and never answers: the put waits in its listing of stale uploads.
  const sockets: net.Socket[] = [];
  const silent = net.createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const port = (silent.address() as net.AddressInfo).port;
  const client = new S3Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'k', secretAccessKey: 's' }, maxAttempts: 1 });
  const repository = new S3Repository('s3', client, { bucket: 'b', prefix: 'p' });
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  process.prependListener('uncaughtException', onUncaught);
  const abort = new AbortController();
  try {
    const body = new PassThrough();
    body.on('error', () => undefined); // as the pipeline's branch listens
    const put = repository.put('x/object.gpg', body, { signal: abort.signal }).then(
      () => 'stored',
      () => 'failed',
    );
    await new Promise((r) => setTimeout(r, 300));
    // What the pipeline does when another stage fails.
    body.destroy(new Error('pipeline aborted'));
    await new Promise((r) => setTimeout(r, 300));
    abort.abort(new Error('pipeline aborted'));
    expect({ put: await put, uncaught: uncaught.map((e) => String(e)) }).toEqual({ put: 'failed', uncaught: [] });
  } finally {
    process.removeListener('uncaughtException', onUncaught);
    sockets.forEach((socket) => socket.destroy());
    silent.close();
    client.destroy();
  }
}, 30_000);
