// Hostile operator and environment against bin/wal-push-async and its pusher, on stand-in
// segments (as test/walPushAsync.test.ts): set-ups that are common in practice or that an
// operator may make by mistake, each of which must leave archiving working or failing, never
// reporting a segment archived that is not in the spool.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import YAML from 'yaml';
import { stopAgent } from '../engine/encryption.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { segmentBytes } from './fixtures/walSegment.js';

const WRAPPER = path.resolve('bin/wal-push-async');
let dir: string;
let keys: KeyPair;
let n = 0;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-walasync-attack-'));
  keys = await ensureKeyPair(path.join(dir, 'keys'));
}, 60_000);

afterAll(async () => {
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(file: string, spool: string): string {
  writeFileSync(
    file,
    YAML.stringify({
      host: 'wal-async-attack',
      database: { url: 'postgres://postgres@127.0.0.1:1/postgres' },
      repositories: { local: { type: 'filesystem', path: spool } },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      wal: { spool: 'local', async: { processes: 2, idleSeconds: 1 } },
      logLevel: 'warn',
    }),
  );
  return file;
}

function cluster(): { root: string; wal: string; status: string; ready(name: string): string } {
  const root = path.join(dir, `cluster-${++n}`);
  const wal = path.join(root, 'pg_wal');
  mkdirSync(path.join(wal, 'archive_status'), { recursive: true });
  return {
    root,
    wal,
    status: path.join(root, 'status'),
    ready(name) {
      writeFileSync(path.join(wal, name), segmentBytes(name));
      writeFileSync(path.join(wal, 'archive_status', `${name}.ready`), '');
      return path.join(wal, name);
    },
  };
}

async function archive(status: string, config: string, file: string, env: Record<string, string> = {}) {
  return execa(WRAPPER, [status, config, file], { reject: false, env: { BACKUPCTL_NODE: process.execPath, BACKUPCTL_WAL_WAIT: '20', ...env } });
}

test('a configuration file that is a symlink (a ConfigMap mount, config.yaml -> config.d/prod.yaml): the call succeeds on the .ok', async () => {
  const c = cluster();
  const spool = path.join(c.root, 'spool');
  mkdirSync(path.join(c.root, 'config.d'));
  const real = writeConfig(path.join(c.root, 'config.d', 'prod.yaml'), spool);
  const link = path.join(c.root, 'config.yaml');
  symlinkSync(real, link);
  const run = await archive(c.status, link, c.ready('000000010000000000000010'));
  expect({ exitCode: run.exitCode, stderr: run.stderr }).toEqual({ exitCode: 0, stderr: '' });
  expect(existsSync(path.join(spool, 'wal', '000000010000000000000010.json'))).toBe(true);
}, 60_000);

test("an archived segment whose object in the spool is gone or cut short (its entry left): asked again, it is not reported archived", async () => {
  const c = cluster();
  const spool = path.join(c.root, 'spool');
  const config = writeConfig(path.join(c.root, 'config.yaml'), spool);
  const names = ['000000010000000000000020', '000000010000000000000021'];
  const files = names.map((name) => c.ready(name));
  for (const file of files) expect((await archive(c.status, config, file)).exitCode).toBe(0);
  const object = (name: string) => path.join(spool, 'wal', readdirSync(path.join(spool, 'wal')).find((f) => f.startsWith(`${name}.`) && f.endsWith('.gpg'))!);
  // PostgreSQL asks again (the host crashed before it marked them .done, and the status folder,
  // on tmpfs, is empty); meanwhile one object was removed from the spool and the other cut short.
  // (Damaged first: a pusher still running re-pushes a .ready without its .ok at once, and
  // rightly answers ok while the object is whole: CI failed so with the .ok removed first.)
  rmSync(object(names[0]));
  truncateSync(object(names[1]), 100);
  for (const name of names) rmSync(path.join(c.status, `${name}.ok`), { force: true });
  for (const [i, file] of files.entries()) {
    const run = await archive(c.status, config, file);
    expect({ name: names[i], exitCode: run.exitCode }).toEqual({ name: names[i], exitCode: 1 });
    expect(run.stderr).toMatch(/ManifestDamaged/);
  }
}, 60_000);

async function pushers(status: string): Promise<number[]> {
  // The node processes (not the flock that started one, whose command line holds the same words).
  const { stdout } = await execa('pgrep', ['-f', `^${process.execPath} .*wal-pusher --status ${status} `], { reject: false });
  return stdout.split('\n').filter(Boolean).map(Number);
}

test('pusher.lock removed while a pusher runs (the status folder "cleaned"): the next call starts no second pusher beside it', async () => {
  const c = cluster();
  const config = path.join(c.root, 'config.yaml');
  writeConfig(config, path.join(c.root, 'spool'));
  // A pusher that stays a while after its last file.
  writeFileSync(config, readFileSync(config, 'utf8').replace('idleSeconds: 1', 'idleSeconds: 30'));
  try {
    expect((await archive(c.status, config, c.ready('000000010000000000000030'))).exitCode).toBe(0);
    expect(await pushers(c.status)).toHaveLength(1);
    rmSync(path.join(c.status, 'pusher.lock'), { force: true });
    expect((await archive(c.status, config, c.ready('000000010000000000000031'))).exitCode).toBe(0);
    // The wrapper tries to start one at once; give a second one time to show.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await pushers(c.status)).toHaveLength(1);
  } finally {
    for (const pid of await pushers(c.status)) process.kill(pid, 'SIGTERM');
  }
}, 60_000);

test('a status folder others may write to (a shared /tmp folder) is refused, and nothing is written in it: there, another user could plant a symlink as pusher.log or a temp file name and have the server user write through it', async () => {
  const c = cluster();
  const config = writeConfig(path.join(c.root, 'config.yaml'), path.join(c.root, 'spool'));
  mkdirSync(c.status);
  chmodSync(c.status, 0o1777);
  const run = await archive(c.status, config, c.ready('000000010000000000000040'), { BACKUPCTL_WAL_WAIT: '2' });
  expect(run.exitCode).toBe(1);
  expect(run.stderr).toContain(`${c.status} may be written by other users`);
  expect(readdirSync(c.status)).toEqual([]);
}, 60_000);

test('a configuration file whose name ends in a space: the pusher takes it for its own and stores the file', async () => {
  const c = cluster();
  const config = writeConfig(path.join(c.root, 'config.yaml '), path.join(c.root, 'spool'));
  const run = await archive(c.status, config, c.ready('000000010000000000000050'), { BACKUPCTL_WAL_WAIT: '10' });
  expect({ exitCode: run.exitCode, stderr: run.stderr }).toEqual({ exitCode: 0, stderr: '' });
}, 60_000);

test('the wall clock stepped back while a call waits (NTP, a VM resumed): it still gives up after BACKUPCTL_WAL_WAIT seconds', async () => {
  const c = cluster();
  const config = writeConfig(path.join(c.root, 'config.yaml'), path.join(c.root, 'spool'));
  // A `date` whose every answer is a second earlier than the last: the clock going backwards.
  const bin = path.join(c.root, 'bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'date'), `#!/bin/sh\nt=$(cat "${bin}/t" 2>/dev/null || echo 2000000000)\necho $((t - 1)) >"${bin}/t"\necho $t\n`, { mode: 0o755 });
  const run = await execa(WRAPPER, [c.status, config, c.ready('000000010000000000000060')], {
    reject: false,
    timeout: 30_000,
    // No pusher can start: only the wait can end the call.
    env: { BACKUPCTL_NODE: '/bin/false', BACKUPCTL_WAL_WAIT: '2', PATH: `${bin}:${process.env.PATH}` },
  });
  expect({ exitCode: run.exitCode, stderr: run.stderr }).toEqual({ exitCode: 1, stderr: expect.stringContaining('was not stored within 2 s') });
}, 60_000);
