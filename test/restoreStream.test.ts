// The way back from a stored object: what the pipeline stored decrypts and decompresses to
// exactly what went in; a corrupt copy or the wrong key is a named, permanent failure.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import type { ApplicationFailure } from '@temporalio/common';
import { loadRecipient, stopAgent } from '../engine/encryption.js';
import { permanent } from '../engine/errors.js';
import { spawnStreaming } from '../engine/exec.js';
import { streamToRepositories } from '../engine/pipeline.js';
import { openPlaintext } from '../engine/restoreStream.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { ErrorType, type Compression } from '../common/types.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-restore-stream-'));
const source = path.join(dir, 'source.bin');
// Half random, half repetitive: something to compress and something not to.
const content = Buffer.concat([randomBytes(3 * 1024 * 1024), Buffer.alloc(3 * 1024 * 1024, 'Zoë 論文 ')]);
let keys: KeyPair;
let otherKeys: KeyPair;
const repository = new FilesystemRepository('local', path.join(dir, 'repo'));

beforeAll(async () => {
  writeFileSync(source, content);
  [keys, otherKeys] = await Promise.all([ensureKeyPair(path.join(dir, 'keys')), ensureKeyPair(path.join(dir, 'other-keys'))]);
});

afterAll(async () => {
  await Promise.all([stopAgent(keys.privateHome), stopAgent(otherKeys.privateHome)]);
  rmSync(dir, { recursive: true, force: true });
});

async function store(key: string, compression: Compression) {
  const recipient = await loadRecipient(keys.publicKeyFile);
  try {
    const abort = new AbortController();
    const result = await streamToRepositories({
      producer: spawnStreaming('cat', [source], { signal: abort.signal }),
      classifyProducerError: (err) => permanent(ErrorType.DumpFailed, `cat failed: ${err}`),
      compression: { algorithm: compression, level: 3, threads: 0 },
      recipient,
      repositories: [repository],
      key,
      abort,
    });
    return { key, bytes: result.bytes, sha256: result.sha256 };
  } finally {
    await recipient.dispose();
  }
}

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await promise;
  } catch (err) {
    return err as ApplicationFailure;
  }
  throw new Error('expected a failure');
}

test.each<Compression>(['zstd', 'gzip'])('a %s object reads back to exactly what was stored', async (compression) => {
  const object = await store(`roundtrip-${compression}.gpg`, compression);
  const opened = await openPlaintext({ repository, object, compression, privateKeyHome: keys.privateHome, passphraseFile: undefined, signal: new AbortController().signal });
  const plain = await buffer(opened.stream);
  expect(await opened.done).toEqual({ storedBytes: object.bytes, plainBytes: content.length });
  expect(createHash('sha256').update(plain).digest('hex')).toBe(createHash('sha256').update(content).digest('hex'));
});

test.each<[Compression, number]>([
  ['zstd', 4096],
  ['gzip', 4096],
  ['zstd', -1],
  ['gzip', -1],
])('one flipped byte in a stored %s copy (offset %d; -1: the middle) is a permanent failure naming the copy', async (compression, at) => {
  const object = await store(`corrupt-${compression}-${at}.gpg`, compression);
  const file = path.join(dir, 'repo', `corrupt-${compression}-${at}.gpg`);
  const offset = at >= 0 ? at : Math.floor(object.bytes / 2);
  const fd = openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, offset);
  writeSync(fd, Buffer.from([byte[0] ^ 0xff]), 0, 1, offset);
  closeSync(fd);
  const opened = await openPlaintext({ repository, object, compression, privateKeyHome: keys.privateHome, passphraseFile: undefined, signal: new AbortController().signal });
  opened.stream.resume();
  const failure = await failureOf(opened.done);
  expect(failure.type).toBe('ChecksumMismatch');
  expect(failure.nonRetryable).toBe(true);
  expect(failure.message).toContain(`repository local: corrupt-${compression}-${at}.gpg`);
});

test('the wrong private key is DecryptionFailed', async () => {
  const object = await store('wrong-key.gpg', 'zstd');
  const opened = await openPlaintext({ repository, object, compression: 'zstd', privateKeyHome: otherKeys.privateHome, passphraseFile: undefined, signal: new AbortController().signal });
  opened.stream.resume();
  const failure = await failureOf(opened.done);
  expect(failure.type).toBe('DecryptionFailed');
  expect(failure.message).toMatch(/No secret key|decryption failed/i);
});

test('a missing copy is CopyMissing before anything streams', async () => {
  const failure = await failureOf(
    openPlaintext({ repository, object: { key: 'nope.gpg', bytes: 1, sha256: 'x' }, compression: 'zstd', privateKeyHome: keys.privateHome, passphraseFile: undefined, signal: new AbortController().signal }),
  );
  expect(failure.type).toBe('CopyMissing');
});
