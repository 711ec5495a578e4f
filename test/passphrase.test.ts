// A restore host's private key protected by a passphrase (encryption.passphraseFile), on real
// gpg: every decrypting path (the up-front key check, the object stream, the copy selection,
// wal-fetch) unlocks it from the file, and a wrong, missing or unreadable passphrase is a
// permanent PassphraseWrong naming the key and the file, never a raw gpg dump or a "copy
// damaged" verdict that sends the restore on to the next copy.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import type { ApplicationFailure } from '@temporalio/common';
import { assertPrivateKeyFor, loadRecipient, stopAgent } from '../engine/encryption.js';
import { permanent } from '../engine/errors.js';
import { spawnStreaming } from '../engine/exec.js';
import { streamToRepositories } from '../engine/pipeline.js';
import { readFirstGoodCopy } from '../engine/copySelection.js';
import { openPlaintext } from '../engine/restoreStream.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { loadVerifier } from '../engine/manifestSignature.js';
import { fetchSegment, pushSegment, walTrustOf } from '../engine/walArchive.js';
import { segmentStartLsn } from '../engine/walHeader.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { validateConfig } from '../common/config.js';
import { ErrorType, type StoredObject } from '../common/types.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-passphrase-'));
const PASSPHRASE = `pass-${randomBytes(6).toString('hex')} with spaces`;
const passphraseFile = path.join(dir, 'passphrase');
const wrongFile = path.join(dir, 'wrong-passphrase');
const content = randomBytes(256 * 1024);
const local = new FilesystemRepository('local', path.join(dir, 'local'));
const nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
let keys: KeyPair;
let object: StoredObject;

beforeAll(async () => {
  writeFileSync(passphraseFile, `${PASSPHRASE}\n`, { mode: 0o600 });
  writeFileSync(wrongFile, 'not the passphrase\n', { mode: 0o600 });
  keys = await ensureKeyPair(path.join(dir, 'keys'), 'protected <protected@localhost.invalid>', passphraseFile);
  writeFileSync(path.join(dir, 'content.bin'), content);
  const recipient = await loadRecipient(keys.publicKeyFile);
  try {
    const abort = new AbortController();
    const stored = await streamToRepositories({
      producer: spawnStreaming('cat', [path.join(dir, 'content.bin')], { signal: abort.signal }),
      classifyProducerError: (err) => permanent(ErrorType.DumpFailed, `cat failed: ${err}`),
      compression: { algorithm: 'zstd', level: 3, threads: 0 },
      recipient,
      repositories: [local, nas],
      key: 'object.zst.gpg',
      abort,
    });
    object = { role: 'dump', key: 'object.zst.gpg', bytes: stored.bytes, sha256: stored.sha256, plainBytes: content.length };
  } finally {
    await recipient.dispose();
  }
});

// gpg-agent keeps an unlocked key for minutes: every test starts from a locked one.
beforeEach(() => stopAgent(keys.privateHome));

afterAll(async () => {
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await promise;
  } catch (err) {
    return err as ApplicationFailure;
  }
  throw new Error('expected a failure');
}

test('the key is really protected: gpg without the passphrase cannot decrypt', async () => {
  const opened = await openPlaintext({ repository: local, object, compression: 'zstd', privateKeyHome: keys.privateHome, passphraseFile: undefined, signal: new AbortController().signal });
  opened.stream.resume();
  const failure = await failureOf(opened.done);
  expect(failure).toMatchObject({ type: 'PassphraseWrong', nonRetryable: true });
  expect(failure.message).toMatch(/is protected by a passphrase: set encryption\.passphraseFile/);
});

describe('the up-front key check (restore, verification, drill, point-in-time recovery)', () => {
  const check = (passphrase: string | undefined) => assertPrivateKeyFor({ privateKeyHome: keys.privateHome, passphraseFile: passphrase }, keys.fingerprint, 'restore-host');

  test('a wrong passphrase: PassphraseWrong naming the file and the key fingerprint', async () => {
    const failure = await failureOf(check(wrongFile));
    expect(failure).toMatchObject({ type: 'PassphraseWrong', nonRetryable: true });
    expect(failure.message).toBe(`encryption.passphraseFile ${wrongFile} does not unlock the private key ${keys.fingerprint} in ${keys.privateHome}: wrong passphrase`);
  });

  test('no passphrase file for a protected key: PassphraseWrong saying to set one', async () => {
    const failure = await failureOf(check(undefined));
    expect(failure).toMatchObject({ type: 'PassphraseWrong', nonRetryable: true });
    expect(failure.message).toBe(`the private key ${keys.fingerprint} in ${keys.privateHome} is protected by a passphrase: set encryption.passphraseFile to a file holding it`);
  });

  test('a passphrase file that is missing or unreadable: PassphraseWrong naming it', async () => {
    const missing = await failureOf(check(path.join(dir, 'nope')));
    expect(missing).toMatchObject({ type: 'PassphraseWrong', message: `encryption.passphraseFile ${path.join(dir, 'nope')} cannot be read (ENOENT): it unlocks the private key ${keys.fingerprint}` });
    const folder = path.join(dir, 'a-folder');
    mkdirSync(folder, { recursive: true });
    // A folder passes access(R_OK); gpg cannot read a passphrase from it.
    expect(await failureOf(check(folder))).toMatchObject({ type: 'PassphraseWrong' });
  });

  test('a passphrase file readable by every local account: InvalidConfig naming it, its mode and the chmod', async () => {
    const open = path.join(dir, 'passphrase-open');
    writeFileSync(open, readFileSync(passphraseFile));
    chmodSync(open, 0o644);
    expect(await failureOf(check(open))).toMatchObject({ type: 'InvalidConfig', nonRetryable: true, message: expect.stringMatching(/^encryption\.passphraseFile .*passphrase-open holds a secret but can be read by every local account \(mode 0644\).*chmod 600/) });
  });

  test('the right passphrase passes', async () => {
    await expect(check(passphraseFile)).resolves.toBeUndefined();
  });
});

describe('the object stream and the copy selection', () => {
  test('with the right passphrase the object reads back to exactly what was stored', async () => {
    const opened = await openPlaintext({ repository: local, object, compression: 'zstd', privateKeyHome: keys.privateHome, passphraseFile, signal: new AbortController().signal });
    const plain = await buffer(opened.stream);
    await opened.done;
    expect(plain.equals(content)).toBe(true);
  });

  test('a wrong passphrase is PassphraseWrong, not a damaged copy (DecryptionFailed)', async () => {
    const opened = await openPlaintext({ repository: local, object, compression: 'zstd', privateKeyHome: keys.privateHome, passphraseFile: wrongFile, signal: new AbortController().signal });
    opened.stream.resume();
    const failure = await failureOf(opened.done);
    expect(failure).toMatchObject({ type: 'PassphraseWrong', nonRetryable: true });
    expect(failure.message).toMatch(new RegExp(`^encryption\\.passphraseFile ${wrongFile} does not unlock the private key with subkey ID [0-9A-F]{16} in ${keys.privateHome}: wrong passphrase$`));
  });

  test('a wrong passphrase stops the copy selection at the first copy: the next copy is not tried as if this one were damaged', async () => {
    const tried: string[] = [];
    const failure = await failureOf(
      readFirstGoodCopy({
        object,
        repositories: [local, nas],
        compression: 'zstd',
        privateKeyHome: keys.privateHome,
        passphraseFile: wrongFile,
        signal: new AbortController().signal,
        consume: async (plain, repository) => {
          tried.push(repository.name);
          await buffer(plain);
        },
        consumerFailure: (err) => permanent(ErrorType.RestoreFailed, String(err)),
      }),
    );
    expect(failure.type).toBe('PassphraseWrong');
    expect(tried).toEqual(['local']);
  });
});

describe('wal-fetch (restore_command)', () => {
  const segment = '000000010000000000000001';
  const config = (passphrase: string | undefined) =>
    validateConfig(
      {
        host: 'pitr-host',
        database: { url: 'postgres://postgres@127.0.0.1:1/postgres' },
        repositories: { spool: { type: 'filesystem', path: path.join(dir, 'wal-spool') } },
        wal: { spool: 'spool' },
        encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome, ...(passphrase ? { passphraseFile: passphrase } : {}) },
      },
      'passphrase test',
    );
  const repositories = () => [new FilesystemRepository('spool', path.join(dir, 'wal-spool'))];
  // The host's own spool: its unsigned entries are replayed.
  const spoolTrust = async () => walTrustOf(config(undefined), await loadVerifier(config(undefined)), false);
  let walFile: string;

  beforeAll(async () => {
    // A segment with a WAL long page header agreeing with its name (what wal-push checks).
    const bytes = 16 * 1024 * 1024;
    const wal = randomBytes(bytes);
    wal.writeUInt16LE(0xd110, 0);
    wal.writeUInt16LE(0x0002, 2);
    wal.writeUInt32LE(1, 4);
    wal.writeBigUInt64LE(segmentStartLsn(segment, bytes)!, 8);
    wal.writeBigUInt64LE(7300000000000000001n, 24);
    wal.writeUInt32LE(bytes, 32);
    wal.writeUInt32LE(8192, 36);
    walFile = path.join(dir, segment);
    writeFileSync(walFile, wal);
    chmodSync(walFile, 0o600);
    await pushSegment(config(undefined), repositories(), walFile);
  });

  test('a wrong passphrase: PassphraseWrong, and nothing written', async () => {
    const destination = path.join(dir, 'fetched-wrong');
    const failure = await failureOf(fetchSegment(config(wrongFile), repositories(), segment, destination, await spoolTrust()));
    expect(failure).toMatchObject({ type: 'PassphraseWrong', message: expect.stringContaining(`encryption.passphraseFile ${wrongFile} does not unlock`) });
    expect(() => readFileSync(destination)).toThrow();
  });

  test('the right passphrase fetches the same bytes', async () => {
    const destination = path.join(dir, 'fetched');
    expect(await fetchSegment(config(passphraseFile), repositories(), segment, destination, await spoolTrust())).toBe(true);
    expect(readFileSync(destination).equals(readFileSync(walFile))).toBe(true);
  });
});
