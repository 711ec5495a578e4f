// wal-push's sealing (engine/walSealer.ts): worker threads (or, for files above a size,
// long-lived bash sealers) checksum each WAL file, compress it into gpg, which writes the
// sealed file itself; each suite below runs once for each kind. What must hold: many files through
// few sealers each come back whole; a sealer killed mid-file fails that file alone (retryable)
// and the next file starts a new one; a full disk is DiskFull with nothing half-written left;
// a file that is gone is named; the out file is never one that exists (a planted link).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { type Config } from '../common/config.js';
import { encryptorCommand, loadRecipient, stopAgent } from '../engine/encryption.js';
import { openRepositories } from '../engine/storage/index.js';
import { pushSegment, startWalSealing } from '../engine/walArchive.js';
import { ThreadSealerPool } from '../engine/walSealer.js';
import { lockWalWriter } from '../engine/walWriterLock.js';
import { segmentBytes } from './fixtures/walSegment.js';
import { fetchedBack as fetchedBackFrom, spoolConfig } from './fixtures/walSpool.js';

let root: string;
/** The folder of the suite under way: each has its own spool and pg_wal. */
let dir: string;
let keys: KeyPair;
let config: Config;

const configFor = (spool: string): Config => spoolConfig(keys, spool, 'walseal');

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'backupctl-walseal-'));
  keys = await ensureKeyPair(path.join(root, 'keys'));
}, 60_000);

afterAll(async () => {
  await stopAgent(keys.privateHome);
  rmSync(root, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function segmentFile(name: string): { file: string; content: Buffer } {
  const file = path.join(dir, 'pg_wal', name);
  const content = segmentBytes(name);
  writeFileSync(file, content);
  return { file, content };
}

const fetchedBack = (cfg: Config, name: string) => fetchedBackFrom(cfg, name, dir);

const sealersOf = (marker: string) => execa('pgrep', ['-f', marker], { reject: false }).then((r) => r.stdout.trim());
/** This process's own sealers (its children): other suites may run sealers of their own meanwhile. */
const ownSealers = async () => (await execa('pgrep', ['-P', String(process.pid), '-f', '^bash -c set -u'], { reject: false })).stdout.trim().split('\n').filter(Boolean);
/** This process's children that are stopped (state T). */
const ownStopped = async () => (await execa('ps', ['--ppid', String(process.pid), '-o', 'pid=,stat='], { reject: false })).stdout.split('\n').filter((l) => /\sT/.test(l));
/** The gpg processes this process's threads started. */
const ownGpgs = async () => (await execa('pgrep', ['-P', String(process.pid), '-x', 'gpg'], { reject: false })).stdout.trim().split('\n').filter(Boolean);


describe.each([
  ['threads', undefined],
  ['bash sealers', 0],
] as const)('sealing in %s', (kind, inThreadUpTo) => {
  const victims = kind === 'threads' ? ownGpgs : ownSealers;

  beforeAll(() => {
    dir = mkdtempSync(path.join(root, `${kind.replace(' ', '-')}-`));
    config = configFor(path.join(dir, 'local'));
    mkdirSync(path.join(dir, 'pg_wal'));
  });

  test('eight segments through two sealers at once: each stored once, and each comes back whole', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `0000000100000000000000${(0x10 + i).toString(16).toUpperCase()}`);
    const files = names.map(segmentFile);
    const sealers = await startWalSealing(config, 2, { inThreadUpTo });
    // Held for them all, as the pusher holds it for its run.
    const writerLock = await lockWalWriter(path.join(dir, 'local'), 5);
    try {
      const outcomes = await Promise.all(files.map((f) => pushSegment(config, openRepositories(config), f.file, { sealing: sealers.sealing, writerLock })));
      expect(outcomes.map((o) => o.action)).toEqual(names.map(() => 'stored'));
      // Two processes served them all.
      if (kind === 'bash sealers') expect((await ownSealers()).length).toBe(2);
    } finally {
      await sealers.close();
      await writerLock.release();
    }
    for (const [i, name] of names.entries()) expect(sha(await fetchedBack(config, name))).toBe(sha(files[i].content));
    // Nothing half-written, nothing of the sealers left running.
    expect(readdirSync(path.join(dir, 'local', 'wal')).filter((f) => f.endsWith('.partial'))).toEqual([]);
    expect(await sealersOf(`-- ${path.join(dir, 'pg_wal')}`)).toBe('');
    expect(await ownSealers()).toEqual([]);
  }, 120_000);

  test(`${kind === 'threads' ? "a thread's gpg" : 'a sealer'} killed in the middle of a file fails that file (retryable), and the next file is sealed whole`, async () => {
    const b = segmentFile('000000010000000000000021');
    const sealers = await startWalSealing(config, 1, { inThreadUpTo });
    let a = segmentFile('000000010000000000000020');
    try {
      // A gpg lives some 20 ms: on a loaded machine the kill may land after it ended, and the push
      // then succeeds. Tried again with another segment, up to 5 times; one must fail, retryably.
      let failure: unknown;
      for (let attempt = 0; attempt < 5 && failure === undefined; attempt++) {
        if (attempt > 0) a = segmentFile(`0000000100000000000000${(0x30 + attempt).toString(16).toUpperCase()}`);
        const first = pushSegment(config, openRepositories(config), a.file, { sealing: sealers.sealing });
        let killed = false;
        let settled = false;
        void first.then(() => (settled = true), () => (settled = true));
        for (let i = 0; i < 400 && !killed && !settled; i++) {
          for (const pid of await victims()) {
            if (!(Number(pid) > 0)) continue;
            try {
              process.kill(Number(pid), 'SIGKILL');
              killed = true;
            } catch (err) {
              // Listed, then ended before the kill (a gpg lives some 20 ms): not killed; look again.
              if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
            }
          }
          if (!killed) await new Promise((r) => setTimeout(r, 5));
        }
        failure = await first.then(() => undefined, (err: unknown) => err);
      }
      expect(failure).toMatchObject({ retryable: true });
      expect(await pushSegment(config, openRepositories(config), b.file, { sealing: sealers.sealing })).toMatchObject({ action: 'stored' });
      // And the failed one again, now whole.
      expect(await pushSegment(config, openRepositories(config), a.file, { sealing: sealers.sealing })).toMatchObject({ action: 'stored' });
    } finally {
      await sealers.close();
    }
    expect(sha(await fetchedBack(config, path.basename(a.file)))).toBe(sha(a.content));
    expect(sha(await fetchedBack(config, '000000010000000000000021'))).toBe(sha(b.content));
    expect(readdirSync(path.join(dir, 'local', 'wal')).filter((f) => f.endsWith('.partial'))).toEqual([]);
  }, 120_000);

  test('a file gone before it is sealed: the error names it, nothing is stored', async () => {
    const gone = path.join(dir, 'pg_wal', '000000010000000000000030');
    const sealers = await startWalSealing(config, 1, { inThreadUpTo });
    try {
      await expect(sealers.sealing.seal(gone, path.join(dir, 'out-gone'))).rejects.toThrow(/reading .*000000010000000000000030/);
      expect(existsSync(path.join(dir, 'out-gone'))).toBe(false);
    } finally {
      await sealers.close();
    }
  }, 60_000);

  test('the out file is created, never written through: a link planted under its name is refused, its target untouched', async () => {
    const { file } = segmentFile('000000010000000000000031');
    const target = path.join(dir, 'victim');
    writeFileSync(target, 'keep me');
    const planted = path.join(dir, 'planted-out');
    symlinkSync(target, planted);
    const sealers = await startWalSealing(config, 1, { inThreadUpTo });
    try {
      await expect(sealers.sealing.seal(file, planted)).rejects.toThrow();
    } finally {
      await sealers.close();
    }
    expect(readFileSync(target, 'utf8')).toBe('keep me');
  }, 60_000);

  test('a spool on a full disk: the push fails with DiskFull, and no partial file is left', async () => {
    if (process.getuid?.() !== 0) return;
    const mount = path.join(dir, 'small');
    mkdirSync(mount);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mount]);
    try {
      const small = configFor(path.join(mount, 'spool'));
      // Random bytes do not compress: 16 MiB sealed cannot fit in 2 MiB.
      const { file } = segmentFile('000000010000000000000040');
      await expect(pushSegment(small, openRepositories(small), file, { inThreadUpTo })).rejects.toMatchObject({ type: 'DiskFull' });
      expect(readdirSync(path.join(mount, 'spool', 'wal')).filter((f) => f.includes('000000010000000000000040'))).toEqual([]);
      expect(await sealersOf(`-- ${file}`)).toBe('');
    } finally {
      await execa('umount', ['-l', mount]);
    }
  }, 60_000);
});

test("a thread's encryptor that stops mid-file (a frozen VM, an operator's SIGSTOP) is killed after its time: the file fails retryably, nothing of it runs on, and the next file is sealed", async () => {
  const cfg = configFor(path.join(root, 'frozen', 'local'));
  mkdirSync(path.join(root, 'frozen', 'pg_wal'), { recursive: true });
  const file = path.join(root, 'frozen', 'pg_wal', '000000010000000000000050');
  writeFileSync(file, segmentBytes('000000010000000000000050'));
  const recipient = await loadRecipient(cfg.encryption.publicKeyFile);
  // It stops itself before reading a byte: as gpg stopped while the file flows in.
  const frozen = new ThreadSealerPool(1, cfg.compression, ['bash', '-c', 'kill -STOP $$; exec cat'], 1500);
  const started = Date.now();
  try {
    const err = (await frozen.seal(file, path.join(root, 'frozen', 'out-1')).catch((e: unknown) => e)) as Error & { type?: string; retryable?: boolean };
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ type: 'StorageUnreachable', retryable: true });
    expect(err.message).toMatch(/gave no answer within 1.5 s/);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await ownStopped()).toEqual([]);
  } finally {
    await frozen.close();
  }
  const pool = new ThreadSealerPool(1, cfg.compression, encryptorCommand(recipient), 1500);
  try {
    const sealed = await pool.seal(file, path.join(root, 'frozen', 'out-2'));
    expect(sealed.plainSha256).toBe(sha(readFileSync(file)));
    expect(sealed.sha256).toBe(sha(readFileSync(path.join(root, 'frozen', 'out-2'))));
  } finally {
    await pool.close();
    await recipient.dispose();
  }
}, 60_000);
