// Asynchronous WAL archiving (bin/wal-push-async + the background pusher) on a real cluster,
// run by PostgreSQL itself as its OS user: under pgbench at full speed and a bulk load the
// archiver keeps up; every segment reaches the spool byte for byte as an unbroken sequence;
// SIGKILLs of the pusher and of archive_command at random moments and a full spool disk end with
// nothing lost, nothing doubled and nothing half-written left behind.
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import YAML from 'yaml';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { collectStatus } from '../client/commands/status.js';
import { validateConfig } from '../common/config.js';
import { checkArchiving } from '../engine/archiveCheck.js';
import { stopAgent } from '../engine/encryption.js';
import { openRepositories } from '../engine/storage/index.js';
import { serverOwner } from '../engine/localCluster.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';

const ROOT = path.resolve('.');
const WRAPPER = path.join(ROOT, 'bin/wal-push-async');
let dir: string;
let keys: KeyPair;
let cluster: PgCluster;
let configFile: string;
let statusDir: string;
let spoolDir: string;

const owner = () => serverOwner();

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-walasync-'));
  chmodSync(dir, 0o755);
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  copyFileSync(keys.publicKeyFile, path.join(dir, 'public.asc'));
  chmodSync(path.join(dir, 'public.asc'), 0o644);
  spoolDir = path.join(dir, 'local');
  statusDir = path.join(dir, 'status');
  for (const d of [spoolDir, statusDir]) {
    mkdirSync(d, { mode: 0o700 });
    owner().chown(d);
  }
  configFile = path.join(dir, 'postgres.yaml');
  writeFileSync(
    configFile,
    YAML.stringify({
      host: 'walasync-test',
      database: { url: 'postgres://postgres@127.0.0.1:1/postgres' },
      repositories: { local: { type: 'filesystem', path: spoolDir } },
      encryption: { publicKeyFile: path.join(dir, 'public.asc') },
      wal: { spool: 'local', async: { processes: 4, idleSeconds: 5 } },
      logLevel: 'warn',
    }),
    { mode: 0o644 },
  );
  // wal_keep_size: every segment stays in pg_wal, to be compared byte for byte with the archive.
  cluster = await startCluster({ archive: true, extraConf: ['archive_timeout = 60', "wal_keep_size = '6GB'", "max_wal_size = '1GB'"] });
  await cluster.query('postgres', `ALTER SYSTEM SET archive_command = 'BACKUPCTL_NODE=${process.execPath} ${WRAPPER} ${statusDir} ${configFile} %p'`);
  await cluster.query('postgres', 'SELECT pg_reload_conf()');
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  await execa('umount', ['-l', path.join(dir, 'small')], { reject: false });
  await stopAgent(keys.privateHome);
  if (process.env.KEEP_WALASYNC) return;
  rmSync(dir, { recursive: true, force: true });
});

const walDir = () => path.join(cluster.dataDir, 'pg_wal');
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** WAL files PostgreSQL holds ready but not archived yet. */
async function queueDepth(): Promise<number> {
  const { rows } = await cluster.query<{ n: string }>('postgres', "SELECT count(*) AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'");
  return Number(rows[0].n);
}

async function until(what: string, check: () => Promise<boolean>, seconds = 120): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${cluster.log().split('\n').slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Everything ready now is archived: the current segment switched out and the queue empty. */
async function drain(): Promise<string> {
  const { rows } = await cluster.query<{ name: string }>('postgres', 'SELECT pg_walfile_name(pg_switch_wal()) AS name');
  await until('the archiver to drain', async () => {
    const last = (await cluster.query<{ w: string | null }>('postgres', 'SELECT last_archived_wal AS w FROM pg_stat_archiver')).rows[0].w;
    return last !== null && last >= rows[0].name && (await queueDepth()) === 0;
  });
  return rows[0].name;
}

/**
 * The spool against pg_wal: every segment PostgreSQL marked done is archived once, its entry's
 * plaintext checksum is the file's, the names form an unbroken sequence, and nothing
 * half-written is left.
 */
function checkSpool(spool = spoolDir, from = ''): { segments: string[] } {
  const done = readdirSync(path.join(walDir(), 'archive_status'))
    .filter((f) => f.endsWith('.done'))
    .map((f) => f.slice(0, -'.done'.length))
    .filter((n) => /^[0-9A-F]{24}$/.test(n) && n >= from)
    .sort();
  const files = readdirSync(path.join(spool, 'wal'));
  expect(files.filter((f) => !/^[0-9A-F]{24}(\.history)?(\.json|\.zst\.gpg)$|^[0-9A-F]{8}\.history\.(json|zst\.gpg)$/.test(f))).toEqual([]);
  const entries = files.filter((f) => /^[0-9A-F]{24}\.json$/.test(f)).map((f) => f.slice(0, -'.json'.length)).sort();
  for (const name of done) {
    expect(entries).toContain(name);
    const entry = JSON.parse(readFileSync(path.join(spool, 'wal', `${name}.json`), 'utf8'));
    if (existsSync(path.join(walDir(), name))) expect({ name, sha: entry.plainSha256 }).toEqual({ name, sha: sha256(path.join(walDir(), name)) });
    // One object per segment, as stored.
    expect(files.filter((f) => f.startsWith(`${name}.`) && f.endsWith('.gpg'))).toEqual([`${name}.zst.gpg`]);
  }
  // Unbroken: every name between the first and last archived is archived.
  const numbers = entries.map((n) => BigInt('0x' + n.slice(8, 16)) * 256n + BigInt('0x' + n.slice(16)));
  for (let i = 1; i < numbers.length; i++) expect({ at: entries[i], gap: numbers[i] - numbers[i - 1] }).toEqual({ at: entries[i], gap: 1n });
  return { segments: entries };
}

async function pgbench(args: string[]) {
  return execa(path.join(cluster.binDir, 'pgbench'), args, { env: cluster.env('postgres') });
}

/** The largest archive queue seen while `work` runs. */
async function deepestQueue(work: () => Promise<unknown>): Promise<number> {
  let deepest = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      deepest = Math.max(deepest, await queueDepth().catch(() => 0));
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  try {
    await work();
  } finally {
    sampling = false;
    await sampler;
  }
  return deepest;
}

test('under a bulk load and pgbench at full speed, the archiver keeps up; every segment is in the spool byte for byte, unbroken', async () => {
  const started = (await cluster.query<{ lsn: string }>('postgres', 'SELECT pg_current_wal_lsn() AS lsn')).rows[0].lsn;
  // The bulk load: pgbench's initialisation (COPY of 2 million rows, then its indexes), at
  // memory speed (this cluster runs with fsync off), which writes WAL faster than two cores
  // can compress and encrypt it; then pgbench at full speed (no -R).
  const bulk = await deepestQueue(() => pgbench(['-i', '-s', '20', '-q']));
  await until('the bulk load to be archived', async () => (await queueDepth()) === 0);
  const busy = await deepestQueue(() => pgbench(['-c', '8', '-j', '2', '-T', '15']));
  const bytes = (await cluster.query<{ bytes: string }>('postgres', `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${started}') AS bytes`)).rows[0].bytes;
  await drain();
  const { segments } = checkSpool();
  const megabytes = Number(bytes) / 1024 / 1024;
  process.stderr.write(`walAsync: ${megabytes.toFixed(0)} MiB of WAL, ${segments.length} segments archived; queue at most ${bulk} in the bulk load, ${busy} under pgbench\n`);
  expect(megabytes).toBeGreaterThan(250);
  // The synchronous wal-push (about 1.3 s a segment) would have let the whole load queue up.
  expect(bulk).toBeLessThanOrEqual(16);
  expect(busy).toBeLessThanOrEqual(4);
}, 300_000);

test('backupctl check accepts the asynchronous archive_command, and a segment switched now goes all the way into the spool', async () => {
  const raw = YAML.parse(readFileSync(configFile, 'utf8'));
  const config = validateConfig({ ...raw, database: { url: cluster.url('postgres') } }, configFile);
  const report = await checkArchiving(config, openRepositories(config), 60);
  expect(report.problems).toEqual([]);
  expect(report.switched).toMatchObject({ arrived: true });
  expect(existsSync(path.join(spoolDir, 'wal', `${report.switched!.segment}.json`))).toBe(true);
}, 120_000);

/** Pids of this test's pusher, or of its archive_command wrappers. */
async function pids(pattern: string): Promise<number[]> {
  const { stdout } = await execa('pgrep', ['-f', pattern], { reject: false });
  return stdout.split('\n').filter(Boolean).map(Number);
}

/** WAL of real rows, fast: each call about 60 MiB. */
async function load(table: string) {
  await cluster.query('postgres', `CREATE TABLE IF NOT EXISTS ${table} (id bigint, pad text)`);
  await cluster.query('postgres', `INSERT INTO ${table} SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 500000) g`);
}

test('SIGKILL of the pusher and of archive_command at random moments: nothing lost, nothing doubled, nothing half-written left', async () => {
  let kills = { pusher: 0, wrapper: 0 };
  let loading = true;
  const killer = (async () => {
    let seed = 20261129;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    while (loading) {
      await new Promise((r) => setTimeout(r, 100 + random() * 900));
      const which = random() < 0.6 ? 'pusher' : 'wrapper';
      const found = await pids(which === 'pusher' ? `wal-pusher --status ${statusDir}` : `wal-push-async ${statusDir}`);
      for (const pid of found) {
        try {
          process.kill(pid, 'SIGKILL');
          kills = { ...kills, [which]: kills[which] + 1 };
        } catch {
          // ended by itself meanwhile
        }
      }
    }
  })();
  try {
    for (let i = 0; i < 6; i++) {
      await load('killed');
      await cluster.query('postgres', 'SELECT pg_switch_wal()');
    }
  } finally {
    loading = false;
    await killer;
  }
  await drain();
  const { segments } = checkSpool();
  process.stderr.write(`walAsync kills: ${JSON.stringify(kills)}, ${segments.length} segments in the spool\n`);
  expect(kills.pusher).toBeGreaterThan(3);
  expect(kills.wrapper).toBeGreaterThan(0);
  // PostgreSQL saw archive_command killed (its archiver exits then, and is started again).
  expect(cluster.log()).toMatch(/archive command was terminated by signal 9/);
}, 300_000);

test('a full spool disk: archive_command fails saying so, status shows the queue growing, and once there is room everything is archived, nothing half-written left', async () => {
  // A spool on a 24 MiB file system of its own, and a status folder of its own for it.
  const small = path.join(dir, 'small');
  mkdirSync(small);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=24m,mode=0700', 'tmpfs', small]);
  owner().chown(small);
  const smallStatus = path.join(dir, 'status-small');
  mkdirSync(smallStatus, { mode: 0o700 });
  owner().chown(smallStatus);
  const smallConfig = path.join(dir, 'small.yaml');
  const settings = {
    host: 'walasync-test',
    database: { url: cluster.url('postgres') },
    repositories: { local: { type: 'filesystem', path: small } },
    encryption: { publicKeyFile: path.join(dir, 'public.asc') },
    wal: { spool: 'local', async: { processes: 4, idleSeconds: 5 }, queueMaxSegments: 2 },
    logLevel: 'warn',
  };
  writeFileSync(smallConfig, YAML.stringify(settings), { mode: 0o644 });
  await drain();
  await cluster.query('postgres', `ALTER SYSTEM SET archive_command = 'BACKUPCTL_NODE=${process.execPath} ${WRAPPER} ${smallStatus} ${smallConfig} %p'`);
  await cluster.query('postgres', 'SELECT pg_reload_conf()');
  const first = (await cluster.query<{ name: string }>('postgres', 'SELECT pg_walfile_name(pg_current_wal_lsn() + 1) AS name')).rows[0].name;
  const failedBefore = Number((await cluster.query<{ n: string }>('postgres', 'SELECT failed_count AS n FROM pg_stat_archiver')).rows[0].n);
  for (let i = 0; i < 2; i++) await load('filler');
  await cluster.query('postgres', 'SELECT pg_switch_wal()');
  await until('archive_command to fail on the full disk', async () => Number((await cluster.query<{ n: string }>('postgres', 'SELECT failed_count AS n FROM pg_stat_archiver')).rows[0].n) > failedBefore);
  expect(cluster.log()).toMatch(/wal-push-async: .*(ENOSPC|no space)/i);

  const config = validateConfig(settings, smallConfig);
  const status = await collectStatus(undefined, 'no Temporal in this test', config, openRepositories(config));
  expect(status.walQueue).toMatchObject({ failing: true });
  expect((status.walQueue as { ready: number }).ready).toBeGreaterThan(2);
  expect(status.problems).toEqual(expect.arrayContaining([expect.stringMatching(/^archive_command is failing/), expect.stringMatching(/^WAL archiving is behind: \d+ WAL file\(s\) wait in pg_wal/)]));

  // Room again: PostgreSQL retries, and the queue drains.
  await execa('mount', ['-o', 'remount,size=512m', small]);
  await drain();
  const { segments } = checkSpool(small, first);
  expect(segments[0]).toBe(first);
  const after = await collectStatus(undefined, 'no Temporal in this test', config, openRepositories(config));
  expect(after.walQueue).toMatchObject({ ready: 0, failing: false });
}, 300_000);
