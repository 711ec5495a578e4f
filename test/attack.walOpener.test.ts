// Attacks on the WAL openers (engine/walOpener.ts) and their direct path (fetchSegment with an
// opener, FilesystemRepository.openFile): a stored object swapped between the opener's checksum
// and its decryption, or a fifo planted as the stored object, must neither end a recovery with a
// verdict that is not the copy's (PassphraseWrong) nor hang it for ever.
import { createHash } from 'node:crypto';
import { constants, cpSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { type Config, validateConfig } from '../common/config.js';
import { stopAgent } from '../engine/encryption.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { openRepositories } from '../engine/storage/index.js';
import { loadVerifier } from '../engine/manifestSignature.js';
import { fetchSegment, pushSegment, readWalEntry, startWalOpening, walTrustOf, type WalEntry } from '../engine/walArchive.js';
import { runWalFetcher } from '../engine/walFetcher.js';
import { segmentBytes } from './fixtures/walSegment.js';
import { archivedSpool, spoolConfigValue } from './fixtures/walSpool.js';

let dir: string;
let keys: KeyPair;
let config: Config;
let spool: FilesystemRepository;
const NAME = '000000010000000000000030';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  ({ dir, keys, config, spool } = await archivedSpool('backupctl-attack-walopen-', 'attackopen', new Map([[NAME, segmentBytes(NAME)]])));
}, 120_000);

afterAll(async () => {
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
});

const entryOf = async (): Promise<WalEntry> => (await readWalEntry(spool, NAME))!;
const storedFileOf = (entry: WalEntry) => path.join(dir, 'local', ...entry.key.split('/'));

test('a fifo planted as the stored object (after its size was checked) is refused at once, not waited on for ever', async () => {
  const entry = await entryOf();
  const file = storedFileOf(entry);
  const kept = `${file}.kept`;
  renameSync(file, kept);
  await execa('mkfifo', [file]);
  let timer: NodeJS.Timeout | undefined;
  try {
    const opened = spool.openFile(entry.key).then(
      async (h) => {
        await h.close();
        return 'opened';
      },
      (err: unknown) => err,
    );
    const outcome = await Promise.race([opened, new Promise((resolve) => (timer = setTimeout(() => resolve('hung'), 3000)))]);
    expect(outcome).not.toBe('hung');
    expect(outcome).toMatchObject({ type: 'CopyMissing' });
  } finally {
    clearTimeout(timer);
    // Releases an open() blocked on the fifo (a libuv thread), should there be one.
    try {
      closeSync(openSync(file, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // no reader waiting
    }
    rmSync(file, { force: true });
    renameSync(kept, file);
  }
});

test('the stored bytes changed between the checksum and the decryption (to a message gpg asks a passphrase for) are the copy\'s fault, not PassphraseWrong', async () => {
  const entry = await entryOf();
  const genuine = readFileSync(storedFileOf(entry));
  // A message encrypted with a passphrase, not to this host's key: gpg, in batch, says "No passphrase given".
  const symmetric = path.join(dir, 'symmetric.gpg');
  const pw = path.join(dir, 'pw');
  writeFileSync(pw, 'attacker\n');
  await execa('gpg', ['--homedir', path.join(dir, 'keys'), '--batch', '--pinentry-mode', 'loopback', '--passphrase-file', pw, '--symmetric', '--output', symmetric], { input: Buffer.alloc(4096, 1) });
  // Each read of the stored file gets other bytes, as an attacker overwriting the object in place
  // between reads would serve them (a fifo serves one writer's bytes to each open): the genuine
  // copy, then the passphrase one (what reading it twice, checksum then decryption, would see), or
  // the other way round. Whatever is read, the outcome is the genuine plaintext or the copy's fault.
  const genuineFile = writeTemp('genuine', genuine);
  for (const [first, second] of [[genuineFile, symmetric], [symmetric, genuineFile]]) {
    const fifo = path.join(dir, 'swapped');
    await execa('mkfifo', [fifo]);
    const to = path.join(dir, 'out', `swapped-${Math.random().toString(16).slice(2)}`);
    const pool = startWalOpening(config, 1);
    try {
      const opening = pool.open(fifo, to, { sha256: entry.sha256, plainSha256: entry.plainSha256, compression: entry.compression, where: 'swapped' }).then(
        () => undefined,
        (e: unknown) => e as Error & { type?: string },
      );
      const feeder = execa('bash', ['-c', 'cat -- "$1" > "$3"; cat -- "$2" > "$3" 2>/dev/null; cat -- "$1" > "$3" 2>/dev/null; true', 'feeder', first, second, fifo], { reject: false, stdio: 'ignore' });
      const err = await opening;
      feeder.kill('SIGKILL');
      await execa('pkill', ['-f', fifo], { reject: false });
      await feeder;
      if (err === undefined) {
        expect(sha(readFileSync(to))).toBe(entry.plainSha256);
      } else {
        expect(err).toBeInstanceOf(Error);
        expect(err.type).not.toBe('PassphraseWrong');
        expect(['ChecksumMismatch', 'DecryptionFailed', 'DumpUnreadable']).toContain(err.type);
      }
    } finally {
      await pool.close();
      await execa('pkill', ['-f', fifo], { reject: false });
      rmSync(fifo, { force: true });
    }
  }
}, 60_000);

function writeTemp(name: string, bytes: Buffer): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  expect(sha(readFileSync(file))).toBe(sha(bytes));
  return file;
}

describe('through the direct path, from two filesystem repositories', () => {
  // A second repository holding the same archive, in the order spool, nas.
  const twoRepositories = (cfg: Config, root: string) => {
    rmSync(path.join(root, 'nas'), { recursive: true, force: true });
    cpSync(path.join(root, 'local'), path.join(root, 'nas'), { recursive: true });
    return [openRepositories(cfg)[0], new FilesystemRepository('nas', path.join(root, 'nas'))];
  };

  test('gzip-compressed entries open whole', async () => {
    const root = mkdtempSync(path.join(dir, 'gzip-'));
    const cfg = validateConfig({ ...spoolConfigValue(keys, path.join(root, 'local'), 'attackgzip'), compression: { algorithm: 'gzip' } }, 'test');
    const name = '000000010000000000000031';
    const file = path.join(root, name);
    writeFileSync(file, segmentBytes(name));
    await pushSegment(cfg, openRepositories(cfg), file);
    expect((await readWalEntry(openRepositories(cfg)[0], name))!.compression).toBe('gzip');
    const pool = startWalOpening(cfg, 1);
    try {
      const to = path.join(root, 'back');
      expect(await fetchSegment(cfg, twoRepositories(cfg, root), name, to, walTrustOf(cfg, await loadVerifier(cfg, { ownKey: 'if-readable' }), false), { opener: pool })).toBe(true);
      expect(sha(readFileSync(to))).toBe(sha(readFileSync(file)));
    } finally {
      await pool.close();
    }
  }, 60_000);

  test('a private key that stays locked (no passphrase file) is PassphraseWrong, not every copy skipped as corrupt', async () => {
    const root = mkdtempSync(path.join(dir, 'locked-'));
    const passphraseFile = path.join(root, 'passphrase');
    writeFileSync(passphraseFile, 'correct horse battery staple\n', { mode: 0o600 });
    const locked = await ensureKeyPair(path.join(root, 'keys'), 'locked <locked@localhost.invalid>', passphraseFile);
    try {
      const value = spoolConfigValue(locked, path.join(root, 'local'), 'attacklocked');
      const pushing = validateConfig({ ...value, encryption: { ...(value.encryption as object), passphraseFile } }, 'test');
      const name = '000000010000000000000032';
      const file = path.join(root, name);
      writeFileSync(file, segmentBytes(name));
      await pushSegment(pushing, openRepositories(pushing), file);
      const cfg = validateConfig(value, 'test');
      const pool = startWalOpening(cfg, 1);
      try {
        const failure = await fetchSegment(cfg, twoRepositories(cfg, root), name, path.join(root, 'back'), walTrustOf(cfg, await loadVerifier(pushing, { ownKey: 'if-readable' }), false), { opener: pool }).then(
          () => undefined,
          (e: unknown) => e as Error & { type?: string },
        );
        expect(failure).toMatchObject({ type: 'PassphraseWrong' });
        expect(failure!.message).toMatch(/protected by a passphrase/);
      } finally {
        await pool.close();
      }
    } finally {
      await stopAgent(locked.privateHome);
    }
  }, 120_000);
});

test('an opener pool closed (a prefetch that failed while its other half went on) starts no opener for a request that comes after: none is left running', async () => {
  const entry = await entryOf();
  const pool = startWalOpening(config, 1);
  await pool.open(storedFileOf(entry), path.join(dir, 'out', 'before-close'), { sha256: entry.sha256, plainSha256: entry.plainSha256, compression: entry.compression, where: 'before' });
  await pool.close();
  const late = await pool.open(storedFileOf(entry), path.join(dir, 'out', 'after-close'), { sha256: entry.sha256, plainSha256: entry.plainSha256, compression: entry.compression, where: 'after' }).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  const left = (await execa('pgrep', ['-P', String(process.pid), '-f', 'WAL opener'], { reject: false })).stdout.trim();
  await pool.close();
  expect(left).toBe('');
  expect(late).toBeInstanceOf(Error);
});

test('a fifo planted as the queue\'s ahead-from does not hold the fetcher at its start for ever (it, not a restore_command, holds the queue\'s lock)', async () => {
  const queue = mkdtempSync(path.join(dir, 'queue-'));
  const hint = path.join(queue, 'ahead-from');
  await execa('mkfifo', [hint]);
  let timer: NodeJS.Timeout | undefined;
  try {
    const running = runWalFetcher({ config, repositories: openRepositories(config), trust: walTrustOf(config, await loadVerifier(config, { ownKey: 'if-readable' }), false), queueDir: queue, processes: 1, maxSegments: 2, idleMs: 100, log: () => undefined }).then(
      () => 'ended',
      (e: unknown) => e,
    );
    const outcome = await Promise.race([running, new Promise((resolve) => (timer = setTimeout(() => resolve('hung'), 5000)))]);
    expect(outcome).toBe('ended');
  } finally {
    clearTimeout(timer);
    try {
      // Releases a read blocked on the fifo, should there be one.
      const fd = openSync(hint, constants.O_WRONLY | constants.O_NONBLOCK);
      writeFileSync(fd, 'garbage\n');
      closeSync(fd);
    } catch {
      // no reader waiting
    }
  }
}, 30_000);

test('paths with spaces, quotes, a backslash and a newline (stored file and out) open whole', async () => {
  const entry = await entryOf();
  const odd = path.join(dir, `odd 'q" \\ \n dir`);
  mkdirSync(odd);
  const stored = path.join(odd, `stored 'x'\n.gpg`);
  writeFileSync(stored, readFileSync(storedFileOf(entry)));
  const pool = startWalOpening(config, 1);
  try {
    const to = path.join(odd, `out "y"\\\n`);
    await pool.open(stored, to, { sha256: entry.sha256, plainSha256: entry.plainSha256, compression: entry.compression, where: 'odd' });
    expect(sha(readFileSync(to))).toBe(entry.plainSha256);
  } finally {
    await pool.close();
  }
});
