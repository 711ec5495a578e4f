// Asynchronous archiving across a timeline switch, on real clusters: a standby archiving into
// the primary's spool is promoted; PostgreSQL then archives the new timeline's history, the old
// timeline's last segment as .partial, and the new timeline's segments (the first of them the
// branch segment, checked against the history). All of it through bin/wal-push-async, each file
// byte for byte, the spool's entries an unbroken sequence on each timeline.
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import YAML from 'yaml';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { stopAgent } from '../engine/encryption.js';
import { serverOwner } from '../engine/localCluster.js';
import { freePort } from './fixtures/ports.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';

const WRAPPER = path.resolve('bin/wal-push-async');
let dir: string;
let keys: KeyPair;
let primary: PgCluster;
let standbyData: string;
let standbyPort: number;
let spool: string;
let configFile: string;

const owner = serverOwner();
const asOwner = (tool: string, args: string[]) => execa(path.join(primary.binDir, tool), args, { ...owner.spawn, cwd: '/', env: { ...owner.spawn.env, LC_ALL: 'C.UTF-8' } });
const archiveCommand = (status: string) => `BACKUPCTL_NODE=${process.execPath} ${WRAPPER} ${status} ${configFile} %p`;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-waltl-'));
  chmodSync(dir, 0o755);
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  copyFileSync(keys.publicKeyFile, path.join(dir, 'public.asc'));
  chmodSync(path.join(dir, 'public.asc'), 0o644);
  spool = path.join(dir, 'local');
  for (const d of ['local', 'status-primary', 'status-standby', 'standby']) {
    mkdirSync(path.join(dir, d), { mode: 0o700 });
    owner.chown(path.join(dir, d));
  }
  configFile = path.join(dir, 'postgres.yaml');
  writeFileSync(
    configFile,
    YAML.stringify({
      host: 'waltl-test',
      database: { url: 'postgres://postgres@127.0.0.1:1/postgres' },
      repositories: { local: { type: 'filesystem', path: spool } },
      encryption: { publicKeyFile: path.join(dir, 'public.asc') },
      wal: { spool: 'local', async: { processes: 4, idleSeconds: 5 } },
      logLevel: 'warn',
    }),
    { mode: 0o644 },
  );
  primary = await startCluster({ archive: true, extraConf: ["wal_keep_size = '1GB'", 'hot_standby = on'] });
  await primary.query('postgres', `ALTER SYSTEM SET archive_command = '${archiveCommand(path.join(dir, 'status-primary'))}'`);
  await primary.query('postgres', 'SELECT pg_reload_conf()');
  await primary.query('postgres', 'CREATE TABLE t (id int, pad text)');
  await primary.query('postgres', "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 200000) g");

  // The standby: a base backup streaming from the primary, archiving into the same spool
  // (same cluster, same system identifier) once promoted, through a status folder of its own.
  standbyData = path.join(dir, 'standby', 'data');
  standbyPort = await freePort();
  await asOwner('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', standbyData, '-R', '-X', 'stream', '-c', 'fast']);
  writeFileSync(
    path.join(standbyData, 'postgresql.auto.conf'),
    `${readFileSync(path.join(standbyData, 'postgresql.auto.conf'), 'utf8')}\nport = ${standbyPort}\nunix_socket_directories = '${path.join(dir, 'standby')}'\narchive_command = '${archiveCommand(path.join(dir, 'status-standby'))}'\n`,
  );
  owner.chown(path.join(standbyData, 'postgresql.auto.conf'));
  await asOwner('pg_ctl', ['start', '-D', standbyData, '-l', path.join(dir, 'standby', 'server.log'), '-w', '-t', '60']);
}, 180_000);

afterAll(async () => {
  if (standbyData) await asOwner('pg_ctl', ['stop', '-D', standbyData, '-m', 'immediate', '-w']).catch(() => undefined);
  await primary?.stop();
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

async function standby<R>(sql: string): Promise<R[]> {
  const { stdout } = await execa(path.join(primary.binDir, 'psql'), ['-h', '127.0.0.1', '-p', String(standbyPort), '-U', 'postgres', '-d', 'postgres', '-XAtc', sql]);
  return stdout.split('\n').filter(Boolean) as R[];
}

async function until(what: string, check: () => Promise<boolean>, seconds = 120): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${readFileSync(path.join(dir, 'standby', 'server.log'), 'utf8').split('\n').slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const entryOf = (name: string) => JSON.parse(readFileSync(path.join(spool, 'wal', `${name}.json`), 'utf8'));
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

test('a promoted standby archives its history, the old timeline\'s .partial and the new timeline\'s segments through wal-push-async, byte for byte', async () => {
  // The primary archives its timeline 1 up to here.
  const switched = (await primary.query<{ name: string }>('postgres', 'SELECT pg_walfile_name(pg_switch_wal()) AS name')).rows[0].name;
  await until('the primary to archive its WAL', async () => existsSync(path.join(spool, 'wal', `${switched}.json`)));
  // The standby caught up, then is promoted in the middle of a segment: timeline 2 begins.
  await primary.query('postgres', "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(200001, 210000) g");
  const lsn = (await primary.query<{ lsn: string }>('postgres', 'SELECT pg_current_wal_lsn() AS lsn')).rows[0].lsn;
  await until('the standby to replay the primary', async () => (await standby<string>(`SELECT pg_last_wal_replay_lsn() >= '${lsn}'`))[0] === 't');
  await asOwner('pg_ctl', ['promote', '-D', standbyData, '-w']);
  await standby("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(300001, 400000) g");
  const last = (await standby<string>('SELECT pg_walfile_name(pg_switch_wal())'))[0];
  expect(last.slice(0, 8)).toBe('00000002');
  await until('the standby to archive timeline 2', async () => existsSync(path.join(spool, 'wal', `${last}.json`)) && (await standby<string>("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"))[0] === '0');

  const names = readdirSync(path.join(spool, 'wal')).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length));
  expect(names).toContain('00000002.history');
  const partial = names.find((n) => n.endsWith('.partial'));
  expect(partial).toMatch(/^00000001[0-9A-F]{16}\.partial$/);
  // The history file and the new timeline's segments, byte for byte from the standby's pg_wal.
  const statusDir = path.join(standbyData, 'pg_wal', 'archive_status');
  const done = readdirSync(statusDir).filter((f) => f.endsWith('.done')).map((f) => f.slice(0, -'.done'.length));
  for (const name of done.filter((n) => existsSync(path.join(standbyData, 'pg_wal', n)))) {
    expect({ name, sha: entryOf(name).plainSha256 }).toEqual({ name, sha: sha256(path.join(standbyData, 'pg_wal', name)) });
  }
  // The branch segment (timeline 2's first, holding timeline 1's pages up to the switch) was
  // accepted against the history, and timeline 2 is unbroken from there to the last.
  const timeline2 = names.filter((n) => /^00000002[0-9A-F]{16}$/.test(n)).sort();
  const branch = `00000002${partial!.slice(8, 24)}`;
  expect(timeline2[0]).toBe(branch);
  const numbers = timeline2.map((n) => parseInt(n.slice(16), 16) + parseInt(n.slice(8, 16), 16) * 256);
  numbers.forEach((v, i) => i && expect(v - numbers[i - 1]).toBe(1));
  expect(timeline2.at(-1)).toBe(last);
  expect(entryOf('00000002.history').switches).toEqual([expect.objectContaining({ parent: 1 })]);
}, 300_000);
