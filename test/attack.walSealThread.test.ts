// Hostile review of the WAL sealing threads (engine/walSealer.ts ThreadSealerPool,
// engine/walSealThread.cjs), on real processes: what a pool closed, or a thread stopped, while
// gpg runs leaves behind; what a path that is no regular file does to a thread.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { type KeyPair } from '../client/dev/demoKeys.js';
import { type Config } from '../common/config.js';
import { encryptorCommand, loadRecipient, stopAgent } from '../engine/encryption.js';
import { ThreadSealerPool } from '../engine/walSealer.js';
import { runWalPusher } from '../engine/walPusher.js';
import { openRepositories } from '../engine/storage/index.js';
import { segmentBytes } from './fixtures/walSegment.js';
import { keyedTempDir, sha256Of, sleep, spoolConfig } from './fixtures/walSpool.js';

const temp = keyedTempDir('backupctl-sealthread-');
let dir: string;
let keys: KeyPair;
let config: Config;

beforeAll(() => {
  ({ dir, keys } = temp);
  config = spoolConfig(keys, path.join(dir, 'local'), 'walsealthread');
});

const sha = sha256Of;

/** Whether pid runs (a zombie, ended and not yet reaped, does not). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * The pid a process wrote into `file`, once it is there whole. Never 0 or NaN: a file read while
 * still empty gave Number('') = 0, and process.kill(0, 'SIGSTOP') stopped this test's whole
 * process group (in CI: jest, its workers and the servers they started).
 */
async function pidWritten(file: string): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (/^[1-9]\d*\n$/.test(text)) return Number(text);
    await sleep(50);
  }
  throw new Error(`no pid written in ${file}`);
}

function walFile(name: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, segmentBytes(name));
  return file;
}

describe.each(['running', 'stopped (SIGSTOP)'] as const)('a pool closed while its gpg is %s', (state) => {
  test('the seal fails retryably, and no gpg of it is left running, stopped or unreaped', async () => {
    const file = walFile(state === 'running' ? '000000010000000000000061' : '000000010000000000000062');
    const pidFile = path.join(dir, `gpg-${state.slice(0, 4)}.pid`);
    // A gpg slow to read its input (a loaded host): the pool is closed meanwhile (a pusher's error, its end).
    const pool = new ThreadSealerPool(1, config.compression, ['bash', '-c', `echo $$ > '${pidFile}.tmp' && mv '${pidFile}.tmp' '${pidFile}'; exec sleep 60`], 30_000);
    const sealing = pool.seal(file, path.join(dir, `out-${state.slice(0, 4)}`)).catch((e: unknown) => e);
    const pid = await pidWritten(pidFile);
    if (state !== 'running') process.kill(pid, 'SIGSTOP');
    await pool.close();
    expect(await sealing).toMatchObject({ type: 'StorageUnreachable', retryable: true });
    for (let i = 0; i < 40 && running(pid); i++) await sleep(50);
    const left = running(pid);
    if (left) process.kill(pid, 'SIGKILL');
    expect(left).toBe(false);
    // Nor a zombie no thread will reap: the pool's threads are gone. (Reaped by close's end.)
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  }, 30_000);
});

test('a pool closed while no seal is under way closes at once, and a later pool seals whole', async () => {
  const recipient = await loadRecipient(config.encryption.publicKeyFile);
  const file = walFile('000000010000000000000063');
  const pool = new ThreadSealerPool(1, config.compression, encryptorCommand(recipient), 10_000);
  try {
    const out = path.join(dir, 'out-63');
    const sealed = await pool.seal(file, out);
    expect(sealed.plainSha256).toBe(sha(readFileSync(file)));
    expect(sealed.sha256).toBe(sha(readFileSync(out)));
    const started = Date.now();
    await pool.close();
    expect(Date.now() - started).toBeLessThan(2000);
  } finally {
    await recipient.dispose();
  }
}, 30_000);

test('a FIFO in place of the WAL file (replaced after its checks): the seal fails at once, naming it, and leaves no read blocked', async () => {
  const fifo = path.join(dir, '000000010000000000000064');
  await execa('mkfifo', [fifo]);
  const pool = new ThreadSealerPool(1, config.compression, ['cat'], 1500);
  try {
    const started = Date.now();
    const err = await pool.seal(fifo, path.join(dir, 'out-64')).catch((e: unknown) => e);
    expect(err).toMatchObject({ message: expect.stringMatching(/000000010000000000000064.*not a regular file/) });
    // Not the pool's own time limit (1.5 s + 10 s) run out on an open() that never returns.
    expect(Date.now() - started).toBeLessThan(3000);
    expect(existsSync(path.join(dir, 'out-64'))).toBe(false);
  } finally {
    await pool.close();
  }
}, 30_000);

test('a file grown past what a thread seals after it was sent to one (a WAL file extended between the size check and the read): refused retryably, not read into the thread, whose buffers would keep its size for good', async () => {
  const file = path.join(dir, '000000010000000000000065');
  writeFileSync(file, Buffer.alloc(3 * 1024 * 1024, 1));
  const pool = new ThreadSealerPool(1, config.compression, ['cat'], 10_000, 1024 * 1024);
  try {
    const err = await pool.seal(file, path.join(dir, 'out-65')).catch((e: unknown) => e);
    expect(err).toMatchObject({ retryable: true, message: expect.stringMatching(/000000010000000000000065 is 3145728 bytes, more than a sealing thread takes \(1048576\)/) });
    expect(existsSync(path.join(dir, 'out-65'))).toBe(false);
  } finally {
    await pool.close();
  }
}, 30_000);

test("the pusher ended by an error (here its configuration check failing) while segments are sealed: it returns only once every store it started has ended, so none writes on after it released the spool's writer lock, and no gpg of it runs on", async () => {
  const base = path.join(dir, 'pusher-error');
  const walDir = path.join(base, 'pg_wal');
  const statusDir = path.join(base, 'status');
  const bin = path.join(base, 'bin');
  mkdirSync(path.join(walDir, 'archive_status'), { recursive: true });
  mkdirSync(statusDir);
  mkdirSync(bin);
  const cfg = spoolConfig(keys, path.join(base, 'spool'), 'walsealthread');
  const names = ['000000010000000000000071', '000000010000000000000072'];
  for (const name of names) {
    writeFileSync(path.join(walDir, name), segmentBytes(name));
    writeFileSync(path.join(walDir, 'archive_status', `${name}.ready`), '');
  }
  // A slow gpg (a loaded host): the seals are under way when the pusher fails.
  const gpg = (await execa('bash', ['-c', 'command -v gpg'])).stdout.trim();
  writeFileSync(path.join(bin, 'gpg'), `#!/bin/bash\nsleep 2\nexec '${gpg}' "$@"\n`, { mode: 0o755 });
  const savedPath = process.env.PATH;
  process.env.PATH = `${bin}:${savedPath}`;
  const lines: string[] = [];
  let checks = 0;
  try {
    const ended = await runWalPusher({
      config: cfg,
      repositories: openRepositories(cfg),
      statusDir,
      walDir,
      processes: 2,
      configIdentity: 'test',
      idleMs: 5000,
      log: (line) => lines.push(line),
      stillCurrent: async () => {
        if (++checks > 1 && lines.length === 0) {
          await sleep(300);
          throw new Error('the configuration file cannot be read');
        }
        return true;
      },
    }).catch((e: unknown) => e);
    expect(ended).toMatchObject({ message: 'the configuration file cannot be read' });
    // Each file taken has its outcome before the pusher is done: nothing of it goes on.
    const told = [...lines];
    for (const name of names) expect(told.some((l) => l.startsWith(`${name}: `))).toBe(true);
    expect((await execa('pgrep', ['-P', String(process.pid), '-f', 'gpg'], { reject: false })).stdout.trim()).toBe('');
  } finally {
    process.env.PATH = savedPath;
  }
}, 60_000);

test('an encryptor that ends well (status 0) without reading all it was given: the seal fails, nothing counts as sealed from part of the file (as the bash sealer, whose compressor then dies of SIGPIPE)', async () => {
  const file = path.join(dir, '000000010000000000000066');
  // Incompressible: more than a pipe holds reaches the encryptor.
  writeFileSync(file, randomBytes(2 * 1024 * 1024));
  const pool = new ThreadSealerPool(1, config.compression, ['bash', '-c', 'head -c 10 >/dev/null; exit 0'], 10_000);
  try {
    const err = await pool.seal(file, path.join(dir, 'out-66')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/ended before it read all of/);
  } finally {
    await pool.close();
  }
}, 30_000);

test("more seals at once than threads: each waits for a free thread, and its time limit counts from when a thread takes it, not from when it was asked (the fourth of four 4 s seals through one thread is not cut short at the pool's 14.5 s)", async () => {
  const files = ['000000010000000000000067', '000000010000000000000068', '000000010000000000000069', '00000001000000000000006A'].map(walFile);
  // The encryptor's own watchdog is 4.5 s: each seal takes 4 s of it.
  const pool = new ThreadSealerPool(1, config.compression, ['bash', '-c', 'sleep 4; exec cat'], 4500);
  try {
    const results = await Promise.all(files.map((f, i) => pool.seal(f, path.join(dir, `out-queued-${i}`)).catch((e: unknown) => e)));
    for (const [i, r] of results.entries()) {
      expect(r).toMatchObject({ plainSha256: sha(readFileSync(files[i])) });
    }
  } finally {
    await pool.close();
  }
}, 60_000);

test('a recipient key that expires while the pool runs (loaded when it still could encrypt): the seal fails permanently (InvalidPublicKey), naming gpg\'s reason, not retried as if transient', async () => {
  const home = path.join(dir, 'expiring-home');
  mkdirSync(home, { mode: 0o700 });
  const gpg = (args: string[]) => execa('gpg', ['--homedir', home, '--batch', '--no-tty', '--pinentry-mode', 'loopback', '--passphrase', '', ...args]);
  await gpg(['--quick-gen-key', 'expiring <expiring@example.invalid>', 'rsa2048', 'sign,encrypt', 'seconds=6']);
  const publicKeyFile = path.join(dir, 'expiring.asc');
  writeFileSync(publicKeyFile, (await gpg(['--armor', '--export', 'expiring@example.invalid'])).stdout);
  const recipient = await loadRecipient(publicKeyFile);
  const pool = new ThreadSealerPool(1, config.compression, encryptorCommand(recipient), 10_000);
  try {
    await sleep(7000);
    const err = await pool.seal(walFile('00000001000000000000006B'), path.join(dir, 'out-6B')).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'InvalidPublicKey', retryable: false, message: expect.stringMatching(/gpg could not encrypt .*00000001000000000000006B.*(expired|[Uu]nusable)/) });
  } finally {
    await pool.close();
    await recipient.dispose();
    await stopAgent(home);
  }
}, 60_000);

test('an encryptor that cannot be started (gpg missing from PATH, a fork refused): the seal fails retryably, saying so, and is not taken for a bad key', async () => {
  const file = walFile('000000010000000000000070');
  const pool = new ThreadSealerPool(1, config.compression, [path.join(dir, 'no-such-gpg'), '--encrypt']);
  try {
    const err = (await pool.seal(file, path.join(dir, 'out-nogpg')).catch((e: unknown) => e)) as Error & { type?: string; retryable?: boolean };
    expect(err).toBeInstanceOf(Error);
    expect({ type: err.type, retryable: err.retryable }).toEqual({ type: 'StorageUnreachable', retryable: true });
    expect(err.message).toMatch(/could not start .*no-such-gpg.*ENOENT/);
  } finally {
    await pool.close();
  }
}, 60_000);
