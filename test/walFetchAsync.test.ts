// bin/wal-fetch-async and its fetcher, with stand-in segments (1 MiB, as wal_segment_size may
// be) archived by the real wal-push: replay's order gives back the same bytes, the queue folder
// never holds more than wal.fetchAhead.maxSegments segments (sampled while it works), consumed
// segments are removed, a fetcher killed by SIGKILL is replaced by the next call, a planted
// (unsigned) entry mid-archive is refused with its reason, and past the end it exits 1 at once.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import YAML from 'yaml';
import { stopAgent } from '../engine/encryption.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { setFetchAheadStart } from '../engine/walFetcher.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { segmentBytes } from './fixtures/walSegment.js';
import { plantWalSegment } from './fixtures/plantedBackup.js';

const WRAPPER = path.resolve('bin/wal-fetch-async');
const CLI = path.resolve('bin/backupctl.js');
const SEGMENT_BYTES = 1024 * 1024;
const MAX_SEGMENTS = 3;
let dir: string;
let keys: KeyPair;
let configFile: string;
const originals = new Map<string, Buffer>();
const name = (n: number) => `00000001000000000000${n.toString(16).toUpperCase().padStart(4, '0')}`;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-walfetchasync-'));
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  configFile = path.join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    YAML.stringify({
      host: 'wal-fetch-async-test',
      database: { url: 'postgres://postgres@127.0.0.1:1/postgres' },
      repositories: {
        local: { type: 'filesystem', path: path.join(dir, 'local') },
        nas: { type: 'filesystem', path: path.join(dir, 'nas') },
      },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      wal: { spool: 'local', fetchAhead: { processes: 2, maxSegments: MAX_SEGMENTS, idleSeconds: 2 } },
      logLevel: 'warn',
    }),
  );
  mkdirSync(path.join(dir, 'nas'), { recursive: true });
  mkdirSync(path.join(dir, 'pg_wal'), { recursive: true });
  // Segments 1..12 and 14 archived; 13 planted in nas, unsigned (not the spool): refused.
  const archived = [...Array.from({ length: 12 }, (_, i) => i + 1), 14];
  for (const n of archived) {
    const file = path.join(dir, 'pg_wal', name(n));
    originals.set(name(n), segmentBytes(name(n), SEGMENT_BYTES));
    writeFileSync(file, originals.get(name(n))!);
  }
  for (let i = 0; i < archived.length; i += 4) {
    const pushed = await Promise.all(archived.slice(i, i + 4).map((n) => execa('node', [CLI, '--config', configFile, 'wal-push', path.join(dir, 'pg_wal', name(n))], { reject: false })));
    for (const p of pushed) expect(p.stderr).toBe('');
  }
  await plantWalSegment(new FilesystemRepository('nas', path.join(dir, 'nas')), name(13), keys.publicKeyFile);
}, 180_000);

afterAll(async () => {
  // The fetchers (idle ones end by themselves, later) and any gpg of theirs: each names the
  // folder. A gpg left running restarted the key's agent after stopAgent, whose files then kept
  // the folder from being removed (a CI run's ENOTEMPTY).
  await execa('pkill', ['-KILL', '-f', dir], { reject: false });
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
});

function fetchAsync(queue: string, segment: string, destination: string) {
  return execa(WRAPPER, [queue, configFile, segment, destination], { reject: false });
}

/** The fetcher serving this queue folder (started by the wrapper: its command line names the folder). */
function fetcherPids(queue: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', `wal-fetcher --queue ${queue}`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

test('segments come back byte for byte in replay order, ahead within the bound; a SIGKILLed fetcher is replaced; a planted entry is refused; past the end exits 1', async () => {
  const queue = path.join(dir, 'queue');
  const restored = path.join(dir, 'restored');
  mkdirSync(restored);
  let most = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      if (existsSync(queue)) most = Math.max(most, readdirSync(queue).filter((f) => /^[0-9A-F]{24}$/.test(f)).length);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  for (let n = 1; n <= 12; n++) {
    if (n === 6) {
      // Mid-recovery, the fetcher dies without a word: the next call starts another.
      const pids = fetcherPids(queue);
      expect(pids.length).toBeGreaterThan(0);
      for (const pid of pids) process.kill(pid, 'SIGKILL');
    }
    const destination = path.join(restored, 'RECOVERYXLOG');
    const got = await fetchAsync(queue, name(n), destination);
    expect({ n, exit: got.exitCode, stderr: got.stderr }).toEqual({ n, exit: 0, stderr: '' });
    expect(readFileSync(destination).equals(originals.get(name(n))!)).toBe(true);
    // Consumed: its space is free.
    expect(existsSync(path.join(queue, name(n)))).toBe(false);
  }
  const refused = await fetchAsync(queue, name(13), path.join(restored, 'RECOVERYXLOG-13'));
  expect({ exit: refused.exitCode, stderr: refused.stderr }).toEqual({ exit: 1, stderr: expect.stringContaining(`UnsignedBackup: wal-fetch: ${name(13)} is not replayed: its entry in nas is not signed`) });
  expect(existsSync(path.join(restored, 'RECOVERYXLOG-13'))).toBe(false);
  const last = await fetchAsync(queue, name(14), path.join(restored, 'RECOVERYXLOG'));
  expect(last.exitCode).toBe(0);
  expect(readFileSync(path.join(restored, 'RECOVERYXLOG')).equals(originals.get(name(14))!)).toBe(true);
  const past = await fetchAsync(queue, name(15), path.join(restored, 'RECOVERYXLOG-15'));
  expect({ exit: past.exitCode, stderr: past.stderr }).toEqual({ exit: 1, stderr: '' });
  sampling = false;
  await sampler;
  expect(most).toBeGreaterThan(0);
  expect(most).toBeLessThanOrEqual(MAX_SEGMENTS);
  // Nothing half-written is left for the server to find.
  expect(readdirSync(restored).sort()).toEqual(['RECOVERYXLOG']);
}, 180_000);

test('told where to begin (ahead-from, as the PITR prepare writes it), a fetcher started by any call fetches ahead from there before that segment is asked for', async () => {
  const queue = path.join(dir, 'queue-ahead');
  mkdirSync(queue, { mode: 0o700 });
  await setFetchAheadStart(queue, name(8));
  // What replay asks first at start: the next timeline's history, which is not there.
  const history = await fetchAsync(queue, '00000002.history', path.join(dir, 'RECOVERYHISTORY'));
  expect(history.exitCode).toBe(1);
  const ahead = [name(8), name(9), name(10)];
  for (let i = 0; i < 500 && !ahead.every((n) => existsSync(path.join(queue, n))); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(readdirSync(queue).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort()).toEqual(ahead);
  // Read once: a fetcher started later, mid-recovery, begins where replay asks.
  expect(existsSync(path.join(queue, 'ahead-from'))).toBe(false);
  const got = await fetchAsync(queue, name(8), path.join(dir, 'RECOVERYXLOG-8'));
  expect(got.exitCode).toBe(0);
  expect(readFileSync(path.join(dir, 'RECOVERYXLOG-8')).equals(originals.get(name(8))!)).toBe(true);
}, 60_000);
