// WAL archiving, side by side: the same real 16 MiB segments (from a cluster under pgbench and
// a bulk load) fed to each contender's archive_command exactly as PostgreSQL's archiver would:
// one call at a time, in order, through `sh -c` as the postgres OS user, every not yet archived
// segment in a pg_wal folder marked archive_status/<name>.ready (asynchronous contenders work
// ahead from those), the .ready renamed to .done after each successful call.
//   async        bin/wal-push-async <status> <config> %p (the background pusher, wal.async)
//   sync         backupctl wal-push %p (the reference)
//   pgbackrest   pgbackrest archive-push %p (sync)
//   pgbackrestAsync  pgbackrest archive-push %p with archive-async=y (spool-path, process-max 2)
// Each contender gets its own pg_wal folder (hard links to the same segment files), its own
// repository or spool, and its own status / spool folders.
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writePgbackrestConfig } from './pgbackrestConfig.js';
import { execa } from 'execa';
import YAML from 'yaml';
import { ensureKeyPair } from '../client/dev/demoKeys.js';
import { PROJECT_ROOT } from '../client/dev/tools.js';
import { validateConfig } from '../common/config.js';
import { stopAgent } from '../engine/encryption.js';
import { serverOwner } from '../engine/localCluster.js';
import { startCluster, type PgCluster } from '../test/fixtures/postgres.js';
import { peakRss, waitForQuiet } from './procfs.js';

export type WalContenderId = 'async' | 'sync' | 'pgbackrest' | 'pgbackrestAsync';
export const WAL_CONTENDER_IDS: WalContenderId[] = ['async', 'sync', 'pgbackrest', 'pgbackrestAsync'];
export const WAL_PROCESSES = 2;
export const WAL_CONTENDER_LABELS: Record<WalContenderId, string> = {
  async: `ours async: \`bin/wal-push-async <status> <config> %p\` (pusher, wal.async.processes ${WAL_PROCESSES})`,
  sync: 'ours sync: `backupctl wal-push %p` (compiled, one node process per call)',
  pgbackrest: '`pgbackrest archive-push %p`',
  pgbackrestAsync: `\`pgbackrest archive-push %p\`, \`archive-async=y\`, \`process-max=${WAL_PROCESSES}\``,
};
const CLI = path.join(PROJECT_ROOT, 'bin', 'backupctl.js');
const WRAPPER = path.join(PROJECT_ROOT, 'bin', 'wal-push-async');
const STANZA = 'benchwal';
const SEGMENT = /^[0-9A-F]{24}$/;

export interface WalContenderResult {
  /** One archive_command call each, in order, ms. */
  callMs: number[];
  /** From the first call's start to the last call's success. */
  wallMs: number;
  /** The background pusher's VmHWM when the last call succeeded (ours async only). */
  pusherPeakRssBytes?: number;
  /** Bytes in the repository / spool afterwards. */
  storedBytes: number;
}

export interface WalArchiveResults {
  segments: number;
  segmentBytes: number;
  /** How the segments were produced, and how long that took (untimed for the contenders). */
  produced: { seconds: number; scale: number; pgbenchSeconds: number; bulkRows: number };
  runs: Record<WalContenderId, WalContenderResult>;
  order: WalContenderId[];
  pgbackrestVersion: string;
}

export async function runWalArchivePhase(
  segmentCount: number,
  cleanups: Array<() => Promise<void>>,
  say: (line: string) => void,
  ours: number[] = [process.pid],
): Promise<WalArchiveResults> {
  const owner = serverOwner();
  const pgOwner = { uid: owner.spawn.uid, gid: owner.spawn.gid, env: owner.spawn.env };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-bench-wal-'));
  chmodSync(dir, 0o755);
  cleanups.unshift(async () => rmSync(dir, { recursive: true, force: true }));
  const chownR = (p: string) => execa('chown', ['-R', `${pgOwner.uid}:${pgOwner.gid}`, p]);
  const aside = path.join(dir, 'aside');
  mkdirSync(aside, { mode: 0o755 });
  await chownR(aside);

  // ---- the segments: a cluster under a write load, each segment copied aside ---------------
  say(`wal: producing ${segmentCount} real segments (pgbench -i, pgbench at full speed, a bulk load)`);
  const p0 = performance.now();
  const cluster = await startCluster({
    archive: true,
    extraConf: [`archive_command = 'test ! -f ${aside}/%f && cp %p ${aside}/%f'`, "max_wal_size = '1GB'", 'checkpoint_timeout = 30min'],
  });
  cleanups.unshift(() => cluster.stop());
  ours.push(Number(readFileSync(path.join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]));
  const pgbench = (args: string[]) => execa(pgbenchPath(cluster), args, { env: cluster.env('postgres') });
  const archived = async () => Number((await cluster.query<{ n: string }>('postgres', 'SELECT archived_count::text AS n FROM pg_stat_archiver')).rows[0].n);
  // About 16 MiB of WAL per scale unit: a third of the segments from pgbench -i.
  const scale = Math.max(10, Math.round(segmentCount / 3));
  await pgbench(['-i', '-q', '-s', String(scale), 'postgres']);
  const pgbenchSeconds = 20;
  await pgbench(['-n', '-c', '2', '-j', '2', '-T', String(pgbenchSeconds), 'postgres']);
  let bulkRows = 0;
  await cluster.query('postgres', 'CREATE TABLE bench_wal_bulk (id bigint, filler text)');
  while ((await archived()) < segmentCount + 1) {
    const rows = 1_000_000;
    await cluster.query('postgres', `INSERT INTO bench_wal_bulk SELECT g, md5(g::text) || repeat('x', 60) FROM generate_series(${bulkRows + 1}, ${bulkRows + rows}) g`);
    bulkRows += rows;
    await cluster.query('postgres', 'SELECT pg_switch_wal()');
    await sleep(500);
  }
  const files = readdirSync(aside).filter((f) => SEGMENT.test(f)).sort().slice(0, segmentCount);
  if (files.length < segmentCount) throw new Error(`only ${files.length} segments archived aside`);
  // No more archiving into the aside folder; the cluster stays up (pgBackRest's stanza needs it).
  await cluster.query('postgres', "ALTER SYSTEM SET archive_command = '/bin/true'");
  await cluster.query('postgres', 'SELECT pg_reload_conf()');
  const produced = { seconds: (performance.now() - p0) / 1000, scale, pgbenchSeconds, bulkRows };
  say(`wal: ${files.length} segments (${files[0]} … ${files.at(-1)}) in ${produced.seconds.toFixed(0)} s`);

  // ---- ours: keys and one configuration per contender -----------------------------------
  const keys = await ensureKeyPair(path.join(dir, 'keys'));
  cleanups.unshift(() => stopAgent(keys.privateHome));
  const publicKey = path.join(dir, 'public.asc');
  copyFileSync(keys.publicKeyFile, publicKey);
  chmodSync(publicKey, 0o644);
  const ourConfig = (id: WalContenderId) => {
    mkdirSync(path.join(dir, id), { mode: 0o755 });
    const spool = path.join(dir, id, 'spool');
    mkdirSync(spool, { recursive: true, mode: 0o700 });
    const file = path.join(dir, id, 'postgres.yaml');
    const value = {
      host: 'bench-wal',
      database: { url: cluster.url('postgres') },
      repositories: { local: { type: 'filesystem', path: spool } },
      encryption: { publicKeyFile: publicKey },
      wal: { spool: 'local', async: { processes: WAL_PROCESSES, idleSeconds: 60 } },
      logLevel: 'warn',
    };
    writeFileSync(file, YAML.stringify(value), { mode: 0o644 });
    validateConfig(value, file);
    return { file, spool };
  };

  // ---- pgBackRest: one repository, spool and lock folder per contender ------------------
  const pgbackrestVersion = (await execa('pgbackrest', ['version'])).stdout.trim();
  const brConfig = async (id: WalContenderId, async: boolean) => {
    mkdirSync(path.join(dir, id), { mode: 0o755 });
    const root = path.join(dir, id, 'pgbackrest');
    const file = writePgbackrestConfig(root, cluster, STANZA, [`process-max=${WAL_PROCESSES}`, ...(async ? ['archive-async=y'] : [])]);
    await chownR(root);
    await execa('pgbackrest', [`--config=${file}`, `--stanza=${STANZA}`, 'stanza-create'], { ...pgOwner, extendEnv: true, cwd: dir });
    return { file, repo: path.join(root, 'repo'), pg1: `--pg1-path=${path.join(dir, id, 'data')}` };
  };

  // ---- the contenders' commands -------------------------------------------------------------
  const commands: Record<WalContenderId, () => Promise<{ command: string; stored: string; status?: string }>> = {
    async: async () => {
      const { file, spool } = ourConfig('async');
      const status = path.join(dir, 'async', 'status');
      return { command: `BACKUPCTL_NODE=${process.execPath} ${WRAPPER} ${status} ${file} %p`, stored: spool, status };
    },
    sync: async () => {
      const { file, spool } = ourConfig('sync');
      return { command: `${process.execPath} ${CLI} --config ${file} wal-push %p`, stored: spool };
    },
    pgbackrest: async () => {
      const { file, repo, pg1 } = await brConfig('pgbackrest', false);
      return { command: `pgbackrest --config=${file} --stanza=${STANZA} ${pg1} archive-push %p`, stored: repo };
    },
    pgbackrestAsync: async () => {
      const { file, repo, pg1 } = await brConfig('pgbackrestAsync', true);
      return { command: `pgbackrest --config=${file} --stanza=${STANZA} ${pg1} archive-push %p`, stored: repo };
    },
  };

  const runs = {} as Record<WalContenderId, WalContenderResult>;
  // The synchronous reference of ours, the slowest, goes last; the two async ones not adjacent.
  const order: WalContenderId[] = ['pgbackrestAsync', 'async', 'pgbackrest', 'sync'];
  for (const id of order) {
    const { command, stored, status } = await commands[id]();
    // A data directory of its own (pgBackRest's async push scans <pg1-path>/pg_wal only, and
    // reads global/pg_control): the cluster's pg_control, and a pg_wal folder of hard links to
    // the same segment files, every one ready.
    const dataDir = path.join(dir, id, 'data');
    const walDir = path.join(dataDir, 'pg_wal');
    mkdirSync(path.join(walDir, 'archive_status'), { recursive: true, mode: 0o700 });
    mkdirSync(path.join(dataDir, 'global'), { mode: 0o700 });
    copyFileSync(path.join(cluster.dataDir, 'global', 'pg_control'), path.join(dataDir, 'global', 'pg_control'));
    copyFileSync(path.join(cluster.dataDir, 'PG_VERSION'), path.join(dataDir, 'PG_VERSION'));
    for (const f of files) {
      linkSync(path.join(aside, f), path.join(walDir, f));
      writeFileSync(path.join(walDir, 'archive_status', `${f}.ready`), '');
    }
    await chownR(path.join(dir, id));
    const quiet = await waitForQuiet(ours);
    if (quiet.waitedMs > 1500) say(`wal: waited ${(quiet.waitedMs / 1000).toFixed(0)} s for other processes to go quiet`);
    say(`wal: ${id}: ${command.replace(/%p/g, '<segment>')}`);
    const callMs: number[] = [];
    let pusherPeakRssBytes: number | undefined;
    const t0 = performance.now();
    for (const f of files) {
      const c0 = performance.now();
      const wal = path.join(walDir, f);
      const r = await execa('sh', ['-c', command.replace(/%p/g, wal)], { ...pgOwner, extendEnv: true, cwd: dataDir, reject: false, stdin: 'ignore' });
      if (r.exitCode !== 0) throw new Error(`wal: ${id}: archive_command failed for ${f} (exit ${r.exitCode}): ${r.stderr}`);
      callMs.push(performance.now() - c0);
      renameSync(path.join(walDir, 'archive_status', `${f}.ready`), path.join(walDir, 'archive_status', `${f}.done`));
    }
    const wallMs = performance.now() - t0;
    if (status) {
      const pusher = pusherPid(status);
      pusherPeakRssBytes = pusher ? peakRss(pusher) : undefined;
      // It would end when idle (wal.async.idleSeconds); ours to end now, by its pid.
      if (pusher) process.kill(pusher, 'SIGTERM');
    }
    const storedBytes = Number((await execa('du', ['-sb', stored])).stdout.split('\t')[0]);
    runs[id] = { callMs, wallMs, pusherPeakRssBytes, storedBytes };
    const s = [...callMs].sort((a, b) => a - b);
    say(
      `wal: ${id}: ${files.length} segments in ${(wallMs / 1000).toFixed(1)} s (${((files.length * 1000) / wallMs).toFixed(1)}/s), ` +
        `call median ${s[Math.floor(s.length / 2)].toFixed(0)} ms, max ${s.at(-1)!.toFixed(0)} ms, stored ${(storedBytes / 1e6).toFixed(0)} MB` +
        (pusherPeakRssBytes ? `, pusher peak RSS ${(pusherPeakRssBytes / 2 ** 20).toFixed(0)} MiB` : ''),
    );
    // The next contender's segments are read from the page cache too; its own folder goes.
    rmSync(dataDir, { recursive: true, force: true });
  }
  return { segments: files.length, segmentBytes: 16 * 2 ** 20, produced, runs, order, pgbackrestVersion };
}

/** The pid of the pusher serving a status folder (its command line names the folder). */
function pusherPid(status: string): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('--status');
      if (argv.includes('wal-pusher') && argv[i + 1] === status && !argv[0].endsWith('flock')) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

function pgbenchPath(cluster: PgCluster): string {
  const own = path.join(cluster.binDir, 'pgbench');
  return existsSync(own) ? own : '/usr/bin/pgbench';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
