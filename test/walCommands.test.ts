// archive_command and restore_command semantics, with the real CLI processes PostgreSQL would
// run: durable, idempotent for the same segment, refusing a different one, nothing half-made
// visible after a crash, and a plain non-zero exit for a segment that does not exist.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import YAML from 'yaml';
import { stopAgent } from '../engine/encryption.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { segmentBytes } from './fixtures/walSegment.js';

const CLI = path.resolve('bin/backupctl.js');
let dir: string;
let keys: KeyPair;
let configFile: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-wal-'));
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  configFile = path.join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    YAML.stringify({
      host: 'wal-test',
      database: { url: 'postgres://postgres@127.0.0.1:1/postgres' },
      repositories: {
        local: { type: 'filesystem', path: path.join(dir, 'local') },
        nas: { type: 'filesystem', path: path.join(dir, 'nas') },
      },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      // The host's own spool, named: wal-fetch replays its unsigned entries.
      wal: { spool: 'local' },
      logLevel: 'warn',
    }),
  );
});

afterAll(async () => {
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

function segmentFile(name: string, bytes = 16 * 1024 * 1024): string {
  const folder = path.join(dir, 'pg_wal', randomBytes(4).toString('hex'));
  mkdirSync(folder, { recursive: true });
  const file = path.join(folder, name);
  const content = segmentBytes(name, bytes);
  writeFileSync(file, content);
  return file;
}

const run = (args: string[]) => execa('node', [CLI, '--config', configFile, ...args], { reject: false });
const spoolFiles = () => (existsSync(path.join(dir, 'local', 'wal')) ? readdirSync(path.join(dir, 'local', 'wal')).sort() : []);

test('wal-push stores the segment encrypted with its entry; wal-fetch gives back the same bytes', async () => {
  const file = segmentFile('000000010000000000000001');
  const pushed = await run(['wal-push', file]);
  expect(pushed.exitCode).toBe(0);
  expect(spoolFiles()).toEqual(['000000010000000000000001.json', '000000010000000000000001.zst.gpg']);
  const stored = readFileSync(path.join(dir, 'local', 'wal', '000000010000000000000001.zst.gpg'));
  expect(stored.includes(readFileSync(file).subarray(0, 64))).toBe(false);

  const destination = path.join(dir, 'restored-0001');
  const fetched = await run(['wal-fetch', '000000010000000000000001', destination]);
  expect(fetched.exitCode).toBe(0);
  expect(readFileSync(destination).equals(readFileSync(file))).toBe(true);
});

test('pushing the identical segment again succeeds; a different one under the same name fails and changes nothing', async () => {
  const file = segmentFile('000000010000000000000002');
  expect((await run(['wal-push', file])).exitCode).toBe(0);
  const entry = readFileSync(path.join(dir, 'local', 'wal', '000000010000000000000002.json'), 'utf8');
  const again = await run(['wal-push', file]);
  expect(again.exitCode).toBe(0);
  expect(again.stderr).toContain('already archived with the same content');

  const impostor = segmentFile('000000010000000000000002');
  const refused = await run(['wal-push', impostor]);
  expect(refused.exitCode).not.toBe(0);
  expect(refused.stderr).toMatch(/WalConflict: .*000000010000000000000002 is already archived .* different content/);
  expect(readFileSync(path.join(dir, 'local', 'wal', '000000010000000000000002.json'), 'utf8')).toBe(entry);
});

test('a wal-push killed mid-write leaves nothing visible, and the retry stores it', async () => {
  const file = segmentFile('000000010000000000000003', 256 * 1024 * 1024);
  const child = execa('node', [CLI, '--config', configFile, 'wal-push', file], { reject: false });
  const deadline = Date.now() + 60_000;
  while (!spoolFiles().some((f) => f.startsWith('000000010000000000000003.zst.gpg.') && f.endsWith('.partial'))) {
    if (Date.now() > deadline) throw new Error('wal-push never started writing');
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  await child;
  expect(spoolFiles().filter((f) => f.startsWith('000000010000000000000003') && !f.endsWith('.partial'))).toEqual([]);
  const fetched = await run(['wal-fetch', '000000010000000000000003', path.join(dir, 'never')]);
  expect(fetched.exitCode).toBe(1);

  expect((await run(['wal-push', file])).exitCode).toBe(0);
  expect(spoolFiles().filter((f) => f.startsWith('000000010000000000000003'))).toEqual(['000000010000000000000003.json', '000000010000000000000003.zst.gpg']);
});

test('wal-fetch of a segment no repository has exits 1 and writes nothing', async () => {
  const destination = path.join(dir, 'missing');
  const fetched = await run(['wal-fetch', '0000000100000000000000FF', destination]);
  expect(fetched.exitCode).toBe(1);
  expect(existsSync(destination)).toBe(false);
});

test('bad names are refused clearly', async () => {
  const refused = await run(['wal-push', segmentFile('not-a-segment', 10)]);
  expect(refused.exitCode).toBe(2);
  expect(refused.stderr).toContain('is not a WAL file name');
});

test.each(['../000000010000000000000001', '000000010000000000000001/../../etc', '/etc/passwd', '..', 'x/y.history'])('wal-fetch of the name %j is refused before anything is read or written', async (name) => {
  const destination = path.join(dir, 'escaped');
  const fetched = await run(['wal-fetch', name, destination]);
  expect(fetched.exitCode).toBe(2);
  expect(fetched.stderr).toContain('is not a WAL file name');
  expect(existsSync(destination)).toBe(false);
});

// Found by the chaos suite (base backup + pg-restart-immediate): PostgreSQL's immediate
// shutdown killed a wal-push in the middle of its work, and its gpg home stayed in the temp
// folder; only a worker's start removed such folders, and none may come for weeks.
test("a wal-push killed mid-push leaves its gpg home only until the next wal-push", async () => {
  const tmp = path.join(dir, 'tmp-killed');
  mkdirSync(tmp);
  const gpgHomes = () => readdirSync(tmp).filter((name) => name.startsWith('backupctl-gpg-'));
  const push = execa('node', [CLI, '--config', configFile, 'wal-push', segmentFile('000000010000000000000031', 64 * 1024 * 1024)], { reject: false, env: { TMPDIR: tmp } });
  const deadline = Date.now() + 30_000;
  while (gpgHomes().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  push.kill('SIGKILL');
  await push;
  const left = gpgHomes();
  expect(left).toHaveLength(1);
  const next = await execa('node', [CLI, '--config', configFile, 'wal-push', segmentFile('000000010000000000000032')], { reject: false, env: { TMPDIR: tmp } });
  expect(next.exitCode).toBe(0);
  expect(gpgHomes()).toEqual([]);
}, 60_000);

// Chaos pass of 2026-11-28 (seed 20261128, after a pg-restart-immediate): PostgreSQL's
// immediate shutdown sends SIGQUIT to what its archiver runs; the wal-push it ended left its
// gpg home, and the next wal-push (right after the restart) took the dead process, not yet
// reaped, for a live one. A wal-push ended by a signal now removes its own gpg home first.
test.each([['SIGQUIT', '000000010000000000000035'], ['SIGTERM', '000000010000000000000036']] as const)('a wal-push ended by %s removes its gpg home before it exits, and stores nothing', async (signal, segment) => {
  const tmp = path.join(dir, `tmp-${signal}`);
  mkdirSync(tmp);
  const gpgHomes = () => readdirSync(tmp).filter((name) => name.startsWith('backupctl-gpg-'));
  const before = spoolFiles();
  // Its own process group, signalled whole: PostgreSQL signals what its archiver runs that way,
  // so gpg gets the signal too (a gpg left running could make its home again after it was removed).
  const push = execa('node', [CLI, '--config', configFile, 'wal-push', segmentFile(segment, 64 * 1024 * 1024)], { reject: false, env: { TMPDIR: tmp }, detached: true });
  const deadline = Date.now() + 30_000;
  while (gpgHomes().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  expect(gpgHomes()).toHaveLength(1);
  process.kill(-push.pid!, signal);
  const ended = await push;
  expect(ended.exitCode ?? ended.signal).not.toBe(0);
  expect(gpgHomes()).toEqual([]);
  expect(spoolFiles().filter((f) => f.startsWith(segment) && !f.endsWith('.partial'))).toEqual(before.filter((f) => f.startsWith(segment)));
}, 60_000);
