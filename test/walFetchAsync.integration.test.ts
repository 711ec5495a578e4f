// Asynchronous recovery (bin/wal-fetch-async + the background fetcher) on real clusters, run by
// PostgreSQL itself as its OS user: a base backup, a bulk load of well over 64 segments archived
// by wal-push-async, then a recovered copy that replays all of it through wal-fetch-async alone.
// The queue folder is sampled while replay runs (never more than wal.fetchAhead.maxSegments
// segments), the fetcher is SIGKILLed mid-replay (the next call starts another), and the
// recovered data is the primary's. Then the recovered cluster is promoted, archives timeline 2,
// and a second recovery follows the timeline switch to timeline 2's rows.
// WAL_FETCH_ASYNC_MIB sets the bulk load's WAL (default 1200 MiB; the bench uses >= 2 GiB).
import { appendFileSync, chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import YAML from 'yaml';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { stopAgent } from '../engine/encryption.js';
import { serverOwner } from '../engine/localCluster.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';
import { freePort } from './fixtures/ports.js';

const ROOT = path.resolve('.');
const PUSH = path.join(ROOT, 'bin/wal-push-async');
const FETCH = path.join(ROOT, 'bin/wal-fetch-async');
const MAX_SEGMENTS = 8;
const WAL_MIB = Number(process.env.WAL_FETCH_ASYNC_MIB ?? 1200);
let dir: string;
let keys: KeyPair;
let cluster: PgCluster;
let configFile: string;
let baseDir: string;
const owner = () => serverOwner();

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-walfetchasync-'));
  chmodSync(dir, 0o755);
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  copyFileSync(keys.publicKeyFile, path.join(dir, 'public.asc'));
  chmodSync(path.join(dir, 'public.asc'), 0o644);
  const postgresKeys = path.join(dir, 'gnupg-postgres');
  cpSync(keys.privateHome, postgresKeys, { recursive: true, filter: (src) => !/S\.gpg-agent|\.lock$/.test(src) });
  await execa('chown', ['-R', `${owner().spawn.uid}:${owner().spawn.gid}`, postgresKeys]);
  for (const d of ['local', 'status']) {
    mkdirSync(path.join(dir, d), { mode: 0o700 });
    owner().chown(path.join(dir, d));
  }
  configFile = path.join(dir, 'postgres.yaml');
  writeFileSync(
    configFile,
    YAML.stringify({
      host: 'walfetchasync-test',
      database: { url: 'postgres://postgres@127.0.0.1:1/postgres' },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: path.join(dir, 'public.asc'), privateKeyHome: postgresKeys },
      wal: { spool: 'local', async: { processes: 2, idleSeconds: 5 }, fetchAhead: { processes: 2, maxSegments: MAX_SEGMENTS, idleSeconds: 5 } },
      logLevel: 'warn',
    }),
    { mode: 0o644 },
  );
  cluster = await startCluster({ archive: true, extraConf: [archiveCommand(), "max_wal_size = '4GB'", 'checkpoint_timeout = 1h'] });
  baseDir = path.join(dir, 'base');
  mkdirSync(baseDir, { mode: 0o700 });
  owner().chown(baseDir);
  await asPostgres(path.join(cluster.binDir, 'pg_basebackup'), ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', '-D', baseDir, '-X', 'none', '-c', 'fast', '--no-sync']);
}, 180_000);

afterAll(async () => {
  await cluster?.stop();
  await stopAgent(keys.privateHome);
  // The fetchers (as the server's OS user) started an agent in restore_command's keyring.
  await stopAgent(path.join(dir, 'gnupg-postgres')).catch(() => undefined);
  if (!process.env.KEEP_WALFETCHASYNC) rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
});

function archiveCommand(): string {
  return `archive_command = 'BACKUPCTL_NODE=${process.execPath} ${PUSH} ${path.join(dir, 'status')} ${configFile} %p'`;
}

const asPostgres = (file: string, args: string[]) => execa(file, args, { uid: owner().spawn.uid, gid: owner().spawn.gid, env: { LC_ALL: 'C.UTF-8' }, extendEnv: true });

async function until(what: string, check: () => Promise<boolean>, seconds = 600, log = () => cluster.log()): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${log().split('\n').slice(-30).join('\n')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function query<R extends pg.QueryResultRow>(port: number, sql: string): Promise<R[]> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** Everything written so far is archived (the current segment switched out). */
async function drain(port: number): Promise<string> {
  const [{ name }] = await query<{ name: string }>(port, 'SELECT pg_walfile_name(pg_switch_wal()) AS name');
  await until('the archiver to drain', async () => {
    const [{ w }] = await query<{ w: string | null }>(port, 'SELECT last_archived_wal AS w FROM pg_stat_archiver');
    return w !== null && w >= name;
  });
  return name;
}

const fingerprint = async (port: number) => (await query<{ f: string }>(port, "SELECT count(*) || ':' || coalesce(sum(id), 0) || ':' || md5(string_agg(md5(body), '' ORDER BY id)) AS f FROM t"))[0].f;

/**
 * A copy of the base backup recovering through wal-fetch-async, to the end of the archive
 * (recovery_target_timeline latest), promoted at its end. Returns what the queue held at most,
 * and stops nothing: the caller does.
 */
async function recover(label: string, options: { killFetcherAt?: number; archiveStatus?: string } = {}): Promise<{ port: number; dataDir: string; queue: string; most: number; segments: number; seconds: number; stop: () => Promise<void> }> {
  const dataDir = path.join(dir, `recovered-${label}`);
  cpSync(baseDir, dataDir, { recursive: true });
  await execa('chown', ['-R', `${owner().spawn.uid}:${owner().spawn.gid}`, dataDir]);
  chmodSync(dataDir, 0o700);
  const queue = path.join(dir, `queue-${label}`);
  mkdirSync(queue, { mode: 0o700 });
  owner().chown(queue);
  // A port nobody holds (cluster.port + n collided with a client's ephemeral port once, and the
  // recovery never started).
  const port = await freePort();
  // The server's log and socket: a folder of the server's OS user.
  const own = path.join(dir, `server-${label}`);
  mkdirSync(own, { mode: 0o700 });
  owner().chown(own);
  const logFile = path.join(own, 'server.log');
  appendFileSync(
    path.join(dataDir, 'postgresql.auto.conf'),
    [
      `port = ${port}`,
      `unix_socket_directories = '${own}'`,
      // Archiving from the start, when asked: the history file of its promotion is archived too.
      options.archiveStatus ? `archive_mode = 'on'\n${archiveCommand().replace(path.join(dir, 'status'), options.archiveStatus)}` : "archive_mode = 'off'",
      `restore_command = 'BACKUPCTL_NODE=${process.execPath} ${FETCH} ${queue} ${configFile} %f %p'`,
      "recovery_target_timeline = 'latest'",
      "recovery_target_action = 'promote'",
      '',
    ].join('\n'),
  );
  writeFileSync(path.join(dataDir, 'recovery.signal'), '');
  owner().chown(path.join(dataDir, 'recovery.signal'));
  const started = Date.now();
  await asPostgres(path.join(cluster.binDir, 'pg_ctl'), ['start', '-D', dataDir, '-l', logFile, '-t', '5']).catch(() => undefined);
  let most = 0;
  let killed = false;
  let stopped = false;
  const serverLog = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  await until(
    `recovery ${label} to end`,
    async () => {
      const segments = readdirSync(queue).filter((f) => /^[0-9A-F]{24}$/.test(f));
      most = Math.max(most, segments.length);
      if (options.killFetcherAt !== undefined && !killed) {
        // Replay has passed that segment (a .want shows only when the fetcher is behind: a
        // fetcher always ahead was never killed, and the test failed so in CI).
        const replayed = [...serverLog().matchAll(/restored log file "([0-9A-F]{24})" from archive/g)].map((m) => parseInt(m[1].slice(16, 24), 16));
        if (replayed.some((n) => n >= options.killFetcherAt!)) {
          const pids = await execa('pgrep', ['-f', `wal-fetcher --queue ${queue}`], { reject: false });
          for (const pid of pids.stdout.split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
          killed = pids.stdout.trim() !== '';
        }
      }
      // A server that stopped (it could not start, or replay failed) is not waited for.
      if (/database system is shut down/.test(serverLog())) return (stopped = true);
      const rows = await query<{ r: boolean }>(port, 'SELECT pg_is_in_recovery() AS r');
      return rows[0].r === false;
    },
    600,
    serverLog,
  );
  if (stopped) throw new Error(`the recovered server ${label} stopped:\n${serverLog().split('\n').slice(-30).join('\n')}`);
  const seconds = (Date.now() - started) / 1000;
  const segments = (serverLog().match(/restored log file "[0-9A-F]{24}" from archive/g) ?? []).length;
  if (options.killFetcherAt !== undefined) expect(killed).toBe(true);
  return {
    port,
    dataDir,
    queue,
    most,
    segments,
    seconds,
    stop: async () => {
      await asPostgres(path.join(cluster.binDir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w']).catch(() => undefined);
    },
  };
}

test(`a recovery replays ${WAL_MIB} MiB of WAL through wal-fetch-async: the queue stays within ${MAX_SEGMENTS} segments, a SIGKILLed fetcher is replaced, the data is the primary's; then across a timeline switch`, async () => {
  await cluster.query('postgres', 'CREATE TABLE t (id bigint PRIMARY KEY, body text NOT NULL)');
  const [{ start }] = await query<{ start: string }>(cluster.port, 'SELECT pg_current_wal_lsn()::text AS start');
  let next = 1;
  for (;;) {
    const [{ mib }] = await query<{ mib: string }>(cluster.port, `SELECT (pg_current_wal_lsn() - '${start}'::pg_lsn) / 1048576 AS mib`);
    if (Number(mib) >= WAL_MIB) break;
    await cluster.query('postgres', `INSERT INTO t SELECT g, repeat(md5(g::text), 8) FROM generate_series(${next}, ${next + 299_999}) g`);
    next += 300_000;
  }
  const expected = await fingerprint(cluster.port);
  await drain(cluster.port);

  const status2 = path.join(dir, 'status2');
  mkdirSync(status2, { mode: 0o700 });
  owner().chown(status2);
  const first = await recover('tl1', { killFetcherAt: 0x30, archiveStatus: status2 });
  try {
    expect(await fingerprint(first.port)).toBe(expected);
    expect(first.segments).toBeGreaterThan(64);
    expect(first.most).toBeGreaterThan(0);
    expect(first.most).toBeLessThanOrEqual(MAX_SEGMENTS);
    process.stderr.write(`walFetchAsync: ${first.segments} segments replayed in ${first.seconds.toFixed(1)} s (${(first.segments / first.seconds).toFixed(1)} segments/s), queue at most ${first.most}\n`);

    // Promoted to timeline 2: it archives there (into the same spool), and writes.
    await query(first.port, `INSERT INTO t SELECT g, 'timeline 2' FROM generate_series(${next}, ${next + 999}) g`);
    const [{ tli }] = await query<{ tli: string }>(first.port, 'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS tli');
    expect(tli).toBe('00000002');
    const onTimeline2 = await fingerprint(first.port);
    await drain(first.port);
    expect(readdirSync(path.join(dir, 'local', 'wal')).some((f) => f.startsWith('00000002.history'))).toBe(true);

    const second = await recover('tl2');
    try {
      expect(await fingerprint(second.port)).toBe(onTimeline2);
      const [{ tli: tli2 }] = await query<{ tli: string }>(second.port, 'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS tli');
      expect(tli2).toBe('00000003');
      expect(second.most).toBeLessThanOrEqual(MAX_SEGMENTS);
    } finally {
      await second.stop();
    }
  } finally {
    await first.stop();
  }
}, 900_000);
