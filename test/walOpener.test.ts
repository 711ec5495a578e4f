// Fetching WAL through the openers (engine/walOpener.ts): long-lived bash workers checksum a
// stored copy, decrypt and decompress it into the caller's file, and checksum that, node never
// holding the bytes. What must hold: each segment comes back whole; a copy that is corrupt, not
// decryptable, not decompressible or a planted link is skipped for the next copy, with the verdict
// the streaming path gives; plaintext that is not what was archived is never used; a full disk
// is DiskFull and no partial file stays; an opener killed mid-file fails that file alone
// (retryable) and the next file starts a new one.
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type { KeyPair } from '../client/dev/demoKeys.js';
import { type Config } from '../common/config.js';
import { encryptorCommand, loadRecipient, stopAgent } from '../engine/encryption.js';
import { loadVerifier } from '../engine/manifestSignature.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { fetchSegment, readWalEntry, startWalOpening, walTrustOf, type WalEntry } from '../engine/walArchive.js';
import { OpenerPool, type WalCopyExpectation, type WalOpening } from '../engine/walOpener.js';
import { segmentBytes } from './fixtures/walSegment.js';
import { archivedSpool } from './fixtures/walSpool.js';

let dir: string;
let keys: KeyPair;
let config: Config;
let spool: FilesystemRepository;
const contents = new Map<string, Buffer>();
const NAMES = Array.from({ length: 6 }, (_, i) => `0000000100000000000000${(0x20 + i).toString(16).toUpperCase()}`);

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  for (const name of NAMES) {
    // Compressible, as WAL is: zstd makes them small, and the opener's decompressing counts.
    const content = segmentBytes(name);
    content.fill(name, 4 * 1024 * 1024);
    contents.set(name, content);
  }
  ({ dir, keys, config, spool } = await archivedSpool('backupctl-walopen-', 'walopen', contents));
}, 120_000);

afterAll(async () => {
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
});

const trust = async (allowUnsigned = false) => walTrustOf(config, await loadVerifier(config, { ownKey: 'if-readable' }), allowUnsigned);
const entryOf = async (name: string): Promise<WalEntry> => (await readWalEntry(spool, name))!;
const storedFileOf = (root: string, entry: WalEntry) => path.join(root, ...entry.key.split('/'));
const expectationOf = (entry: WalEntry, where = 'test'): WalCopyExpectation => ({ sha256: entry.sha256, plainSha256: entry.plainSha256, compression: entry.compression, where });
const out = (label: string) => path.join(dir, 'out', `${label}-${Math.random().toString(16).slice(2)}`);
const ownOpeners = async () => (await execa('pgrep', ['-P', String(process.pid), '-f', 'WAL opener'], { reject: false })).stdout.trim().split('\n').filter(Boolean);

/** Counts the files each repository's copy was opened by the opener for (the direct path). */
function counting(opener: WalOpening): WalOpening & { opened: string[] } {
  const opened: string[] = [];
  return {
    opened,
    open: async (file, to, expect) => {
      opened.push(expect.where);
      return opener.open(file, to, expect);
    },
  };
}

test('six segments through two openers at once: each comes back whole, and none through the stream', async () => {
  const pool = startWalOpening(config, 2);
  const opener = counting(pool);
  try {
    const t = await trust();
    const got = await Promise.all(NAMES.map(async (name) => {
      const to = out(name);
      expect(await fetchSegment(config, [spool], name, to, t, { opener })).toBe(true);
      return [name, readFileSync(to)] as const;
    }));
    for (const [name, bytes] of got) expect(sha(bytes)).toBe(sha(contents.get(name)!));
    expect(opener.opened).toHaveLength(NAMES.length);
    expect((await ownOpeners()).length).toBe(2);
  } finally {
    await pool.close();
  }
  expect(await ownOpeners()).toEqual([]);
}, 120_000);

describe('a bad copy is skipped for the next, with the verdict that names it', () => {
  // A second repository holding the same archive: the spool's folder copied.
  let nas: FilesystemRepository;
  beforeEach(() => {
    rmSync(path.join(dir, 'nas'), { recursive: true, force: true });
    cpSync(path.join(dir, 'local'), path.join(dir, 'nas'), { recursive: true });
    nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
  });

  const fetchFromFirstBad = async (name: string): Promise<{ ok: boolean; opened: string[]; bytes?: Buffer }> => {
    const pool = startWalOpening(config, 1);
    const opener = counting(pool);
    const to = out(name);
    try {
      // The first repository's entry is intact (so admitted); only its stored object is bad.
      const ok = await fetchSegment(config, [spool, nas], name, to, await trust(true), { opener });
      return { ok, opened: opener.opened, bytes: readFileSync(to) };
    } finally {
      await pool.close();
    }
  };

  test('one byte of the stored object changed', async () => {
    const name = NAMES[0];
    const entry = await entryOf(name);
    const file = storedFileOf(path.join(dir, 'local'), entry);
    const original = readFileSync(file);
    const bad = Buffer.from(original);
    bad[Math.floor(bad.length / 2)] ^= 0xff;
    writeFileSync(file, bad);
    try {
      const got = await fetchFromFirstBad(name);
      expect(got.ok).toBe(true);
      expect(got.opened).toEqual([`repository local: ${entry.key}`, `repository nas: ${entry.key}`]);
      expect(sha(got.bytes!)).toBe(sha(contents.get(name)!));
    } finally {
      writeFileSync(file, original);
    }
  }, 60_000);

  test('a link planted where the stored object was', async () => {
    const name = NAMES[1];
    const entry = await entryOf(name);
    const file = storedFileOf(path.join(dir, 'local'), entry);
    const original = readFileSync(file);
    rmSync(file);
    symlinkSync(storedFileOf(path.join(dir, 'nas'), entry), file);
    try {
      const got = await fetchFromFirstBad(name);
      expect(got.ok).toBe(true);
      // Refused before it was opened: only the second copy was.
      expect(got.opened).toEqual([`repository nas: ${entry.key}`]);
      expect(sha(got.bytes!)).toBe(sha(contents.get(name)!));
    } finally {
      rmSync(file);
      writeFileSync(file, original);
    }
  }, 60_000);

  test('no copy is whole: NoUsableCopy naming each, and nothing written', async () => {
    const name = NAMES[2];
    const entry = await entryOf(name);
    for (const root of [path.join(dir, 'local'), path.join(dir, 'nas')]) {
      const file = storedFileOf(root, entry);
      const bad = readFileSync(file);
      bad[100] ^= 0x01;
      writeFileSync(file, bad);
    }
    const local = storedFileOf(path.join(dir, 'local'), entry);
    try {
      const to = out(name);
      const pool = startWalOpening(config, 1);
      try {
        const err = (await fetchSegment(config, [spool, nas], name, to, await trust(true), { opener: pool }).catch((e: unknown) => e)) as Error & { type?: string };
        expect(err.type).toBe('NoUsableCopy');
        expect(err.message).toMatch(/local: .*stored bytes have sha256/);
        expect(err.message).toMatch(/nas: .*stored bytes have sha256/);
      } finally {
        await pool.close();
      }
      expect(readdirSync(path.join(dir, 'out')).filter((f) => f.startsWith(path.basename(to)))).toEqual([]);
    } finally {
      cpSync(storedFileOf(path.join(dir, 'nas'), entry), local);
      const fixed = readFileSync(local);
      fixed[100] ^= 0x01;
      writeFileSync(local, fixed);
    }
  }, 60_000);
});

describe('the opener\'s verdicts, one file at a time', () => {
  let pool: ReturnType<typeof startWalOpening>;
  beforeAll(() => {
    pool = startWalOpening(config, 1);
  });
  afterAll(async () => {
    await pool.close();
  });

  test('plaintext other than was archived: ChecksumMismatch, never used', async () => {
    const entry = await entryOf(NAMES[3]);
    const expect_ = { ...expectationOf(entry), plainSha256: sha(Buffer.from('other')) };
    await expect(pool.open(storedFileOf(path.join(dir, 'local'), entry), out('plain'), expect_)).rejects.toMatchObject({ type: 'ChecksumMismatch', message: expect.stringMatching(/decrypts to other bytes than were archived/) });
  });

  test('not OpenPGP at all: DecryptionFailed', async () => {
    const file = path.join(dir, 'junk');
    const junk = Buffer.alloc(4096, 7);
    writeFileSync(file, junk);
    await expect(pool.open(file, out('junk'), { sha256: sha(junk), plainSha256: sha(junk), compression: 'zstd', where: 'junk' })).rejects.toMatchObject({ type: 'DecryptionFailed' });
  });

  test('decrypts, but is not zstd: DumpUnreadable', async () => {
    const recipient = await loadRecipient(config.encryption.publicKeyFile);
    try {
      const sealed = path.join(dir, 'not-zstd.gpg');
      const [cmd, ...args] = encryptorCommand(recipient);
      await execa(cmd, [...args, '--output', sealed], { input: Buffer.alloc(65536, 3) });
      const bytes = readFileSync(sealed);
      await expect(pool.open(sealed, out('notzstd'), { sha256: sha(bytes), plainSha256: sha(Buffer.alloc(65536, 3)), compression: 'zstd', where: 'not-zstd' })).rejects.toMatchObject({
        type: 'DumpUnreadable',
        message: expect.stringMatching(/does not decompress/),
      });
    } finally {
      await recipient.dispose();
    }
  });

  test('an out file that exists (a planted link) is never written through', async () => {
    const entry = await entryOf(NAMES[3]);
    const target = path.join(dir, 'victim');
    writeFileSync(target, 'keep');
    const to = out('link');
    symlinkSync(target, to);
    await expect(pool.open(storedFileOf(path.join(dir, 'local'), entry), to, expectationOf(entry))).rejects.toThrow();
    expect(readFileSync(target, 'utf8')).toBe('keep');
  });

  test('on a full disk: DiskFull, and the next file, elsewhere, opens', async () => {
    if (process.getuid?.() !== 0) return;
    const mount = path.join(dir, 'small');
    mkdirSync(mount, { recursive: true });
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mount]);
    try {
      const entry = await entryOf(NAMES[4]);
      await expect(pool.open(storedFileOf(path.join(dir, 'local'), entry), path.join(mount, 'seg'), expectationOf(entry))).rejects.toMatchObject({ type: 'DiskFull' });
    } finally {
      await execa('umount', ['-l', mount]);
    }
    const entry = await entryOf(NAMES[4]);
    const to = out('after-full');
    await pool.open(storedFileOf(path.join(dir, 'local'), entry), to, expectationOf(entry));
    expect(sha(readFileSync(to))).toBe(sha(contents.get(NAMES[4])!));
  }, 60_000);

  test('its gpg, or the opener itself, killed mid-file: that file fails retryably, and the next opens', async () => {
    const entry = await entryOf(NAMES[5]);
    const file = storedFileOf(path.join(dir, 'local'), entry);
    for (const victim of ['gpg', 'opener'] as const) {
      // A fifo as the stored file holds the opener mid-file (its one read, checksum and decryption) until fed.
      const fifo = path.join(dir, `fifo-${victim}`);
      await execa('mkfifo', [fifo]);
      const opening = pool.open(fifo, out(victim), expectationOf(entry)).catch((e: unknown) => e);
      const openers = await waitFor(async () => (await ownOpeners()).at(0));
      if (victim === 'opener') {
        process.kill(Number(openers), 'SIGKILL');
      } else {
        // A writer that sends a part and holds the fifo open: gpg is killed while it waits for the
        // rest; then the rest comes (the stored bytes' checksum is whole, as a stored file's would be).
        const killed = path.join(dir, 'gpg-killed');
        const writer = execa('bash', ['-c', `{ head -c 1000 -- "$1"; until [ -e "$3" ]; do sleep 0.05; done; tail -c +1001 -- "$1"; } > "$2"`, 'writer', file, fifo, killed], { reject: false });
        const gpg = await waitFor(async () => (await execa('pgrep', ['-f', `^gpg --homedir ${keys.privateHome} .*--decrypt`], { reject: false })).stdout.trim().split('\n')[0] || undefined);
        process.kill(Number(gpg), 'SIGKILL');
        writeFileSync(killed, '');
        const failed = await opening;
        writer.kill('SIGKILL');
        await writer;
        expect((failed as Error).message).toMatch(/cut short/);
      }
      const err = (await opening) as Error & { type?: string; retryable?: boolean; nonRetryable?: boolean };
      expect(err).toBeInstanceOf(Error);
      expect(err.type).toBe('StorageUnreachable');
      // The killed opener's checksum, orphaned, still waits for a writer of the fifo.
      await execa('pkill', ['-f', fifo], { reject: false });
      rmSync(fifo);
      const to = out(`after-${victim}`);
      await pool.open(file, to, expectationOf(entry));
      expect(sha(readFileSync(to))).toBe(sha(contents.get(NAMES[5])!));
    }
  }, 60_000);
});

async function waitFor<T>(probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const got = await probe();
    if (got !== undefined && got !== '') return got;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('waited 5 s in vain');
}

test('an opener that does not answer (its input never comes, or a stage is stopped) is killed with all it started after its time, the file fails retryably, and the next opens', async () => {
  const pool = new OpenerPool(1, { home: keys.privateHome, passphraseFile: undefined }, 1500);
  try {
    const entry = await entryOf(NAMES[0]);
    for (const stuck of ['fifo', 'sigstop'] as const) {
      const file = path.join(dir, `stuck-${stuck}`);
      await execa('mkfifo', [file]);
      const started = Date.now();
      const opening = pool.open(file, out(`stuck-${stuck}`), expectationOf(entry)).catch((e: unknown) => e as Error & { type?: string });
      // fifo: never written. sigstop: a writer sends a part and holds it open, and the opener's gpg
      // is stopped mid-file, as a frozen VM or an operator's SIGSTOP would.
      const writer = stuck === 'sigstop' ? execa('bash', ['-c', `{ head -c 1000 -- "$1"; exec sleep 30; } > "$2"`, 'writer', storedFileOf(path.join(dir, 'local'), entry), file], { reject: false }) : undefined;
      // The opener leads a process group of its own: every process it started is in it.
      const group = await waitFor(async () => (await ownOpeners()).at(0));
      if (writer) {
        const gpg = await waitFor(async () => (await execa('pgrep', ['-g', group, '-x', 'gpg'], { reject: false })).stdout.trim().split('\n')[0] || undefined);
        process.kill(Number(gpg), 'SIGSTOP');
      }
      const err = (await opening) as Error & { type?: string };
      expect(err).toBeInstanceOf(Error);
      expect(err.type).toBe('StorageUnreachable');
      expect(err.message).toMatch(/gave no answer within 1.5 s/);
      expect(Date.now() - started).toBeLessThan(15_000);
      writer?.kill('SIGKILL');
      await writer;
      // Nothing it started is left: no stopped gpg, no reader of the fifo.
      await waitFor(async () => ((await execa('pgrep', ['-g', group], { reject: false })).stdout.trim() === '' ? true : undefined)).catch(async (e: Error) => {
        throw new Error(`${e.message}: left ${(await execa('pgrep', ['-a', '-g', group], { reject: false })).stdout}`);
      });
      rmSync(file);
      const to = out(`after-stuck-${stuck}`);
      await pool.open(storedFileOf(path.join(dir, 'local'), entry), to, expectationOf(entry));
      expect(sha(readFileSync(to))).toBe(sha(contents.get(NAMES[0])!));
    }
  } finally {
    await pool.close();
  }
}, 60_000);
