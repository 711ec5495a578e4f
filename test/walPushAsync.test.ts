// bin/wal-push-async and its pusher, with stand-in segments in a pg_wal folder of our own
// (archive_status/<name>.ready, as PostgreSQL marks them): it succeeds only on an .ok naming
// this very file and its configuration as it is now, reads an .error once, works ahead, keeps history files first, refuses a
// different file under an archived name, another cluster's status folder and bad arguments,
// and gives up in time when no pusher can start.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import YAML from 'yaml';
import { stopAgent } from '../engine/encryption.js';
import { fileIdentity } from '../engine/walPusher.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { segmentBytes } from './fixtures/walSegment.js';

const WRAPPER = path.resolve('bin/wal-push-async');
const CLI = path.resolve('bin/backupctl.js');
let dir: string;
let keys: KeyPair;
let configFile: string;
let n = 0;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-walpushasync-'));
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  configFile = path.join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    YAML.stringify({
      host: 'wal-async-test',
      database: { url: 'postgres://postgres@127.0.0.1:1/postgres' },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      wal: { spool: 'local', async: { processes: 3, idleSeconds: 1 } },
      logLevel: 'warn',
    }),
  );
}, 60_000);

afterAll(async () => {
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

/** A cluster's pg_wal of its own, and a status folder of its own. */
function cluster(): { wal: string; status: string; ready(name: string, content?: Buffer): string } {
  const root = path.join(dir, `cluster-${++n}`);
  const wal = path.join(root, 'pg_wal');
  mkdirSync(path.join(wal, 'archive_status'), { recursive: true });
  return {
    wal,
    status: path.join(root, 'status'),
    ready(name, content = segmentBytes(name)) {
      writeFileSync(path.join(wal, name), content);
      writeFileSync(path.join(wal, 'archive_status', `${name}.ready`), '');
      return path.join(wal, name);
    },
  };
}

/** One archive_command call, as PostgreSQL's archiver makes it; on success the .ready becomes .done. */
async function archive(c: { wal: string; status: string }, file: string, env: Record<string, string> = {}) {
  const run = await execa(WRAPPER, [c.status, configFile, file], { reject: false, env: { BACKUPCTL_NODE: process.execPath, ...env } });
  const name = path.basename(file);
  if (run.exitCode === 0 && existsSync(path.join(c.wal, 'archive_status', `${name}.ready`))) {
    rmSync(path.join(c.wal, 'archive_status', `${name}.ready`));
    writeFileSync(path.join(c.wal, 'archive_status', `${name}.done`), '');
  }
  return run;
}

const entry = (name: string) => JSON.parse(readFileSync(path.join(dir, 'local', 'wal', `${name}.json`), 'utf8'));

async function pusherGone(status: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { stdout } = await execa('pgrep', ['-f', `wal-pusher --status ${status}`], { reject: false });
    if (!stdout.trim()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the pusher did not end when idle');
}

test('the pusher stores every ready file, ahead of the archiver; each call succeeds on the .ok naming its file; the pusher ends when idle', async () => {
  const c = cluster();
  const names = Array.from({ length: 5 }, (_, i) => `0000000100000000000000${(0x10 + i).toString(16).toUpperCase()}`);
  const files = names.map((name) => c.ready(name));
  const first = await archive(c, files[0]);
  expect(first).toMatchObject({ exitCode: 0, stderr: '' });
  // The others are stored without the archiver asking: their .ok appear (the first's, spent
  // once its .ready became .done, is cleared).
  const ahead = names.slice(1);
  for (let i = 0; i < 100 && !ahead.every((name) => existsSync(path.join(c.status, `${name}.ok`))); i++) await new Promise((r) => setTimeout(r, 100));
  for (const [i, name] of ahead.entries()) {
    expect(readFileSync(path.join(c.status, `${name}.ok`), 'utf8')).toBe(`${await fileIdentity(files[i + 1])}\n${await fileIdentity(configFile)}\n`);
    expect(entry(name).plainSha256).toBeDefined();
  }
  for (const file of files.slice(1)) expect((await archive(c, file)).exitCode).toBe(0);
  await pusherGone(c.status);
  // Each stored once: none again by a scan that listed the status folder just before its .ok.
  expect(readFileSync(path.join(c.status, 'pusher.log'), 'utf8')).toMatch(/ended \(idle\): 5 stored, 0 already archived, 0 failed/);
  // The spent verdicts were cleared before it ended (every .ready became .done).
  expect(readdirSync(c.status).filter((f) => f.endsWith('.ok') || f.endsWith('.error'))).toEqual([]);
}, 120_000);

test('a timeline history and its branch segment, ready together: both are stored, the branch checked against the history', async () => {
  const c = cluster();
  // The branch segment: named for timeline 2, its first page timeline 1's (the switch is inside
  // it), accepted only against the history archived before it.
  const history = c.ready('00000002.history', Buffer.from('1\t0/20000100\tno recovery target specified\n'));
  const branch = segmentBytes('000000020000000000000020');
  branch.writeUInt32LE(1, 4);
  const segment = c.ready('000000020000000000000020', branch);
  expect((await archive(c, history)).exitCode).toBe(0);
  expect(await archive(c, segment)).toMatchObject({ exitCode: 0 });
  expect(entry('00000002.history').switches).toBeDefined();
  expect(entry('000000020000000000000020').segment).toBe('000000020000000000000020');
}, 120_000);

test('a .partial file is stored like a segment', async () => {
  const c = cluster();
  const file = c.ready('000000010000000000000030.partial', segmentBytes('000000010000000000000030'));
  expect(await archive(c, file)).toMatchObject({ exitCode: 0 });
  expect(entry('000000010000000000000030.partial').plainBytes).toBe(16 * 1024 * 1024);
}, 120_000);

test('an .ok naming another file of that name (pg_wal replaced) is not taken: the file is stored again', async () => {
  const c = cluster();
  const file = c.ready('000000010000000000000040');
  mkdirSync(c.status, { recursive: true });
  writeFileSync(path.join(c.status, 'wal-directory'), `${c.wal}\n`);
  writeFileSync(path.join(c.status, '000000010000000000000040.ok'), `1:2:16777216:1.000000000\n${await fileIdentity(configFile)}\n`);
  expect(await archive(c, file)).toMatchObject({ exitCode: 0 });
  expect(entry('000000010000000000000040')).toBeDefined();
}, 120_000);

test('another file under an archived name fails with WalConflict, every time it is asked, and the archived one stays', async () => {
  const c = cluster();
  const file = c.ready('000000010000000000000050');
  expect((await archive(c, file)).exitCode).toBe(0);
  const archived = entry('000000010000000000000050');
  const other = cluster();
  const impostor = other.ready('000000010000000000000050');
  for (let i = 0; i < 2; i++) {
    const run = await archive(other, impostor);
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(/WalConflict: wal-push: 000000010000000000000050 is already archived in local with different content/);
    // Read once: the next call has the pusher try again (and it fails again). Whether the .error
    // is gone right after the call is not asserted: the pusher tries again as soon as it sees it
    // read, and its new verdict may already be there (seen failing on main in 2 of 6 runs).
  }
  expect(entry('000000010000000000000050')).toEqual(archived);
}, 120_000);

test("a status folder already serving another cluster's pg_wal is refused, naming both", async () => {
  const a = cluster();
  const b = cluster();
  expect((await archive(a, a.ready('000000010000000000000060'))).exitCode).toBe(0);
  const run = await archive({ ...b, status: a.status }, b.ready('000000010000000000000061'));
  expect(run.exitCode).toBe(1);
  expect(run.stderr).toContain(`${a.status} is the status folder of the cluster whose WAL is in ${a.wal}, not ${b.wal}`);
}, 120_000);

test('a pusher still running with another configuration (archive_command changed, or the file edited): its .ok is not taken, it ends, and the next one, with the configuration as it is now, stores the file', async () => {
  const c = cluster();
  const lingering = path.join(dir, 'lingering.yaml');
  const raw = YAML.parse(readFileSync(configFile, 'utf8'));
  // A pusher that stays a minute after its last file.
  writeFileSync(lingering, YAML.stringify({ ...raw, wal: { ...raw.wal, async: { processes: 2, idleSeconds: 60 } } }));
  const run = (file: string, config: string) => execa(WRAPPER, [c.status, config, file], { reject: false, env: { BACKUPCTL_NODE: process.execPath } });
  expect((await run(c.ready('000000010000000000000090'), lingering)).exitCode).toBe(0);
  // archive_command now names another configuration, whose spool is elsewhere.
  const moved = path.join(dir, 'moved.yaml');
  writeFileSync(moved, YAML.stringify({ ...raw, repositories: { local: { type: 'filesystem', path: path.join(dir, 'moved-spool') } } }));
  expect((await run(c.ready('000000010000000000000091'), moved)).exitCode).toBe(0);
  expect(existsSync(path.join(dir, 'moved-spool', 'wal', '000000010000000000000091.json'))).toBe(true);
  // (The old pusher may have stored it in its spool too, before it looked: an extra copy, never the only one.)
  // The same file edited in place: the spool it names now is the one written.
  writeFileSync(moved, YAML.stringify({ ...raw, repositories: { local: { type: 'filesystem', path: path.join(dir, 'edited-spool') } } }));
  expect((await run(c.ready('000000010000000000000092'), moved)).exitCode).toBe(0);
  expect(existsSync(path.join(dir, 'edited-spool', 'wal', '000000010000000000000092.json'))).toBe(true);
  const log = readFileSync(path.join(c.status, 'pusher.log'), 'utf8');
  expect(log).toMatch(/ended \(configuration changed\)/);
}, 120_000);

test('bad arguments are refused at once, nothing written', async () => {
  const c = cluster();
  const file = c.ready('000000010000000000000070');
  const cases: [string[], RegExp][] = [
    [[c.status, configFile], /usage/],
    [['relative/status', configFile, file], /status folder must be an absolute path/],
    [[c.status, 'config.yaml', file], /config file must be an absolute path/],
    [[c.status, configFile, path.join(c.wal, "0000'; touch x")], /is not a WAL file name/],
  ];
  for (const [args, message] of cases) {
    const run = await execa(WRAPPER, args, { reject: false });
    expect({ args, exitCode: run.exitCode, stderr: run.stderr }).toEqual({ args, exitCode: 2, stderr: expect.stringMatching(message) });
  }
  expect(existsSync(c.status)).toBe(false);
}, 60_000);

test('with no pusher able to start, the call fails after BACKUPCTL_WAL_WAIT seconds, saying where to look', async () => {
  const c = cluster();
  const started = Date.now();
  const run = await archive(c, c.ready('000000010000000000000080'), { BACKUPCTL_NODE: '/bin/false', BACKUPCTL_WAL_WAIT: '2' });
  expect(run.exitCode).toBe(1);
  expect(run.stderr).toContain(`000000010000000000000080 was not stored within 2 s (the pusher's log: ${c.status}/pusher.log)`);
  expect(Date.now() - started).toBeLessThan(30_000);
}, 60_000);

test('the pusher, run by hand without its arguments, says how it is started', async () => {
  const run = await execa('node', [CLI, '--config', configFile, 'wal-pusher'], { reject: false });
  expect(run.exitCode).toBe(2);
  expect(run.stderr).toMatch(/usage: backupctl wal-pusher --status <folder> --wal-dir <pg_wal> \(started by bin\/wal-push-async\)/);
});
