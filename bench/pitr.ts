// Point-in-time recovery, side by side with pgBackRest on one archiving cluster:
//   base    backupBase (pg_basebackup through zstd and gpg into local, nas and s3, verified)
//           vs `pgbackrest --type=full backup` (repo1 on the same disk, zst, process-max 2,
//           aes-256-cbc)
//   pitr    pointInTimeRecovery to a time, start to promoted and checked (its default
//           restore_command: WAL decrypted ahead, then bin/wal-fetch-async, wal.fetchAhead), vs
//           `pgbackrest --type=time --target-action=promote restore` + pg_ctl start + polling
//           until pg_is_in_recovery() is false (archive-get with archive-async=y), the same
//           target, the same WAL: at least REPLAY_WAL_BYTES of it after the base backups
//   rpo     under pgbench at full speed: from a commit (its LSN sampled) until the segment
//           holding it is in every repository (spool, nas, s3)
// The cluster's archive_command feeds both archives, each asynchronous: `pgbackrest archive-push
// %p && bin/wal-push-async <status> <config> %p` (one cluster, so both sides back up and replay
// exactly the same data and WAL).
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writePgbackrestConfig } from './pgbackrestConfig.js';
import { execa } from 'execa';
import pg from 'pg';
import YAML from 'yaml';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { stopAgent } from '../engine/encryption.js';
import { serverOwner } from '../engine/localCluster.js';
import { DEMO_KEY_TABLES, createDemoRoles } from '../client/dev/demoData.js';
import { PROJECT_ROOT } from '../client/dev/tools.js';
import { validateConfig } from '../common/config.js';
import { backupBase, pointInTimeRecovery, shipWal } from '../workflows/index.js';
import { walShippingQuery } from '../workflows/messages.js';
import type { BaseBackupResult, PointInTimeRecoveryResult } from '../common/pitrTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { startCluster, type PgCluster } from '../test/fixtures/postgres.js';
import { freePorts } from '../test/fixtures/ports.js';
import { benchWorkflowId, measureWorkflow, runSteps, type ContenderContext, type ContenderResult } from './contenders.js';
import type { BenchOptions } from './options.js';
import { Sampler, type SampleResult } from './procfs.js';
import { buildText, type BenchDatabase } from './referenceDatabase.js';
import { BUCKET } from './stack.js';
import { startWorkerProcess } from './workerProcess.js';
import { replayPace, watchQueue, type QueueStats, type ReplayPace } from './fetchQueue.js';
import { serverLog } from '../engine/recoveryCluster.js';
import { PREFETCH_SEGMENTS } from '../engine/walPrefetch.js';

export const PITR_HOST = 'bench-pitr';
export const STANZA = 'bench';
const S3_PREFIX = 'bench-pitr';
const PUSH_ASYNC = path.join(PROJECT_ROOT, 'bin', 'wal-push-async');

export type PitrContenderId = 'ours' | 'pgbackrest';
export const PITR_CONTENDER_IDS: PitrContenderId[] = ['ours', 'pgbackrest'];

export const BASE_LABELS: Record<PitrContenderId, string> = {
  ours: 'backupBase workflow (pg_basebackup, zstd 3, gpg; local + nas + s3, each verified)',
  pgbackrest: '`pgbackrest --type=full backup` (repo1 local, zst 3, process-max 2, aes-256-cbc)',
};
export const PITR_LABELS: Record<PitrContenderId, string> = {
  ours: `pointInTimeRecovery workflow (restore, first ${PREFETCH_SEGMENTS.beforeFetcher} segments decrypted ahead, then \`wal-fetch-async\`; replay, promoted, checked)`,
  pgbackrest: '`pgbackrest --type=time --target-action=promote restore` (archive-get `archive-async=y`) + `pg_ctl start` + poll until writable',
};

/** Asynchronous archiving, both sides: processes pushing at once (wal.async.processes, pgBackRest archive-push process-max). */
export const PUSH_PROCESSES = 2;
/** Asynchronous fetching for replay, both sides: wal.fetchAhead.processes, pgBackRest archive-get process-max. */
export const FETCH_PROCESSES = 4;
/** pgBackRest's archive-get queue; ours keeps wal.fetchAhead.maxSegments (32 x 16 MiB: 512 MiB) by default. */
export const ARCHIVE_GET_QUEUE_MAX = '128MiB';
/** WAL written between the newest base backup and the recovery target, at least: what both replay. */
export const REPLAY_WAL_BYTES = 2 * 2 ** 30;

/** archive_timeout while the RPO is measured (the rest of the phase runs with 60 s). */
export const RPO_ARCHIVE_TIMEOUT = 10;
export const RPO_SHIP_INTERVAL = 2;
export const RPO_LOAD_SECONDS = 60;
/** pgbench clients during the RPO part, at full speed (no -R). */
export const RPO_PGBENCH_CLIENTS = 2;
const RPO_SAMPLE_MS = 2000;
/** pgbench transactions between the base backups and the recovery target: the WAL both replay. */
export const REPLAY_TRANSACTIONS = 10_000;
/** How often the pgBackRest side asks pg_is_in_recovery() (ours asks every 250 ms too). */
export const BASELINE_POLL_MS = 250;

export interface RpoSample {
  at: string;
  lsn: string;
  segment: string;
  /** When the segment was in each repository (spool: archivedAt; nas: file mtime; s3: LastModified). */
  arrived: Record<string, string | null>;
  delaySeconds: number | null;
}

export interface PitrResults {
  db: BenchDatabase;
  base: Record<PitrContenderId, ContenderResult[]>;
  baseOrders: PitrContenderId[][];
  pitrOrders: PitrContenderId[][];
  pitr: Record<PitrContenderId, PitrRun[]>;
  /** The recovery target and how much WAL lay between the newest base backup and it. */
  target: string;
  replayWalBytes: number;
  /** How that WAL was written (untimed): pgbench transactions, then bulk INSERT rows until REPLAY_WAL_BYTES. */
  replayLoad: { transactions: number; bulkRows: number; seconds: number; segments: number };
  rpo: {
    samples: RpoSample[];
    sampleSeconds: number;
    loadSeconds: number;
    archiveTimeout: number;
    shipInterval: number;
    clients: number;
    transactions: number;
    /** WAL pgbench wrote during the RPO part. */
    walBytes: number;
  };
  pgbackrestVersion: string;
}

/** A recovery run, with what was seen of its fetching and replay from outside. */
export interface PitrRun extends ContenderResult {
  queue?: QueueStats;
  pace?: ReplayPace;
}

type Measure = <R extends ContenderResult>(db: BenchDatabase, label: string, id: string, contender: () => Promise<R>) => Promise<R>;

function orderOf<Id>(ids: Id[], round: number): Id[] {
  return ids.map((_, i) => ids[(i + round) % ids.length]);
}

/**
 * The whole phase: its own archiving cluster holding `bench_text` at the scale, both archives,
 * base backups and recoveries in alternating order, then the RPO under load. Everything it
 * starts is registered in `cleanups` before it is used.
 */
export async function runPitrPhase(
  base: ContenderContext,
  options: BenchOptions,
  measure: Measure,
  cleanups: Array<() => Promise<void>>,
  say: (line: string) => void,
): Promise<PitrResults> {
  const owner = serverOwner();
  const asPostgres = { uid: owner.spawn.uid, gid: owner.spawn.gid };
  const pgOwner = { ...asPostgres, env: owner.spawn.env };
  // Everything PostgreSQL's processes read (archive_command, restore_command, pgBackRest) is here.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-bench-pitr-'));
  chmodSync(dir, 0o755);
  cleanups.unshift(async () => rmSync(dir, { recursive: true, force: true }));
  const workDir = path.join(dir, 'work');
  mkdirSync(workDir, { mode: 0o755 });
  // Recovered clusters (ours and pgBackRest's) still running at the end: stopped before the folder goes.
  const stopRecovered = async () => {
    for (const entry of existsSync(workDir) ? readdirSync(workDir) : []) {
      const data = path.join(workDir, entry, 'data');
      if (existsSync(path.join(data, 'postmaster.pid'))) await pgCtl(base.cluster, ['-D', data, '-m', 'immediate', '-w', 'stop'], pgOwner).catch(() => undefined);
    }
  };
  cleanups.unshift(stopRecovered);

  say('pitr: starting the archiving cluster');
  const cluster = await startCluster({
    archive: true,
    extraConf: ['archive_timeout = 60', "archive_command = '/bin/true'", 'max_wal_size = 8GB', 'checkpoint_timeout = 30min', 'maintenance_work_mem = 256MB'],
  });
  cleanups.unshift(() => cluster.stop());
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  try {
    await createDemoRoles(admin);
  } finally {
    await admin.end();
  }
  const db = await buildText(cluster, 'bench_text', options.scale, 'main');
  await cluster.query('postgres', 'CHECKPOINT');
  say(`pitr: built ${db.name} on port ${cluster.port} in ${db.buildSeconds.toFixed(0)} s: ${(db.bytes / 1e6).toFixed(0)} MB`);

  // The benchmark's own processes: this one, the reference postmaster, the archiving one, every
  // recovered postmaster as soon as its pid file shows (pg_ctl detaches them), and the
  // daemons both sides' asynchronous commands detach (our wal-pusher and wal-fetcher,
  // pgBackRest's async archive-push and archive-get, the postgres user's gpg-agent): each names
  // a file under this phase's folder on its command line.
  const ours = [...base.ours, postmasterPid(cluster.dataDir) ?? process.pid];
  const watcher = setInterval(() => {
    for (const entry of existsSync(workDir) ? readdirSync(workDir) : []) {
      const pid = postmasterPid(path.join(workDir, entry, 'data'));
      if (pid && !ours.includes(pid)) ours.push(pid);
    }
    for (const pid of daemonsUnder(dir)) if (!ours.includes(pid)) ours.push(pid);
  }, 200);
  cleanups.unshift(async () => clearInterval(watcher));
  const ctx: ContenderContext = { ...base, ours };

  // ---- our side: repositories, keys and configurations -----------------------------------
  const { stack } = base;
  const spool = path.join(dir, 'local');
  mkdirSync(spool, { mode: 0o700 });
  owner.chown(spool);
  const publicKey = path.join(dir, 'public.asc');
  copyFileSync(stack.keys.publicKeyFile, publicKey);
  chmodSync(publicKey, 0o644);
  const postgresKeys = path.join(dir, 'gnupg-postgres');
  cpSync(stack.keys.privateHome, postgresKeys, { recursive: true, filter: (src) => !/S\.gpg-agent|\.lock$/.test(src) });
  await execa('chown', ['-R', `${asPostgres.uid}:${asPostgres.gid}`, postgresKeys]);
  cleanups.unshift(() => stopAgent(postgresKeys));
  // Our default restore_command hands the worker's own configuration to the fetcher, which runs
  // as the postgres OS user: so the worker's keyring is this postgres-owned copy, its gpg-agent
  // started by postgres now (root's gpg may use an agent of another user; the reverse is refused).
  await execa('gpg-connect-agent', ['--homedir', postgresKeys, '/bye'], { ...pgOwner, extendEnv: true });
  // wal-push-async's status folder: the server's OS user's alone.
  const pushStatus = path.join(dir, 'push-status');
  mkdirSync(pushStatus, { mode: 0o700 });
  owner.chown(pushStatus);
  const common = {
    host: PITR_HOST,
    temporal: { address: stack.temporal.address, namespace: 'default' },
    database: { url: cluster.url(db.name), binDir: cluster.binDir, keyTables: DEMO_KEY_TABLES },
    baseBackup: { url: cluster.url('postgres') },
    repositories: {
      local: { type: 'filesystem', path: spool },
      nas: { type: 'filesystem', path: path.join(dir, 'nas') },
      s3: { type: 's3', bucket: BUCKET, prefix: S3_PREFIX, endpoint: stack.s3.endpoint },
    },
    // The host's own spool, named: wal-fetch replays its unsigned entries. Archiving and
    // fetching asynchronous, as both sides run here.
    wal: { spool: 'local', async: { processes: PUSH_PROCESSES, idleSeconds: 60 }, fetchAhead: { processes: FETCH_PROCESSES, idleSeconds: 30 } },
    logLevel: 'info',
  };
  const postgresConfig = path.join(dir, 'postgres.yaml');
  // The signing key's public half: wal-fetch checks the entries shipped to the NAS and S3.
  const signingPublic = path.join(dir, 'signing-public.pem');
  copyFileSync(stack.keys.signing.publicKeyFile, signingPublic);
  chmodSync(signingPublic, 0o644);
  writeYaml(postgresConfig, { ...common, logLevel: 'warn', encryption: { publicKeyFile: publicKey, privateKeyHome: postgresKeys }, signing: { publicKeyFiles: [signingPublic] } });
  const workerConfig = path.join(dir, 'worker.yaml');
  // No pitr.restoreCommand: the default, bin/wal-fetch-async with this file, read by the postgres OS user too.
  writeYaml(workerConfig, {
    ...common,
    encryption: { publicKeyFile: publicKey, privateKeyHome: postgresKeys },
    signing: { privateKeyFile: stack.keys.signing.privateKeyFile, publicKeyFiles: [signingPublic] },
    restore: { serverUrl: cluster.url('postgres'), workDir },
    wal: { ...common.wal, shipIntervalSeconds: RPO_SHIP_INTERVAL },
  });

  // ---- pgBackRest: its own configuration, repository, lock and log folders ---------------
  const brDir = path.join(dir, 'pgbackrest');
  const brConf = writePgbackrestConfig(
    brDir,
    cluster,
    STANZA,
    [
      'repo1-retention-full=2',
      'process-max=2',
      // Ours takes a fast checkpoint too (baseBackup.checkpoint: fast).
      'start-fast=y',
      // Asynchronous archive-push and archive-get, through the spool folder, as ours.
      'archive-async=y',
      `archive-get-queue-max=${ARCHIVE_GET_QUEUE_MAX}`,
    ],
    [`[global:archive-push]`, `process-max=${PUSH_PROCESSES}`, '', `[global:archive-get]`, `process-max=${FETCH_PROCESSES}`],
  );
  await execa('chown', ['-R', `${asPostgres.uid}:${asPostgres.gid}`, brDir]);
  const pgbackrest = (args: string[]) => execa('pgbackrest', [`--config=${brConf}`, `--stanza=${STANZA}`, ...args], { ...pgOwner, cwd: dir, extendEnv: true });
  const pgbackrestVersion = (await execa('pgbackrest', ['version'])).stdout.trim();
  await pgbackrest(['stanza-create']);

  // Both archives from now on, each asynchronous. pgBackRest's push first: its backup ends by
  // waiting for its own archive to hold the backup's last segment, and must not wait for ours
  // too; ours (whose backup does not wait for the archive) pays for its push instead.
  const archiveCommand = `pgbackrest --config=${brConf} --stanza=${STANZA} archive-push %p && BACKUPCTL_NODE=${process.execPath} ${PUSH_ASYNC} ${pushStatus} ${postgresConfig} %p`;
  await cluster.query('postgres', `ALTER SYSTEM SET archive_command = '${archiveCommand}'`);
  await cluster.query('postgres', 'SELECT pg_reload_conf()');
  await pgbackrest(['check']).catch((err) => {
    throw new Error(`pgbackrest check failed: ${(err as { stderr?: string }).stderr ?? err}\n--- server log ---\n${cluster.log().split('\n').slice(-20).join('\n')}`);
  });
  say(`pitr: ${pgbackrestVersion}, stanza ${STANZA} created and checked; archive_command feeds both archives`);

  // ---- base backups ----------------------------------------------------------------------
  const runOurBase = async (): Promise<ContenderResult> => {
    const workflowId = benchWorkflowId('base', db);
    const { result, ...run } = await measureWorkflow<BaseBackupResult>(ctx, workerConfig, workflowId, () =>
      stack.client.workflow.execute(backupBase, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue(PITR_HOST) }] }),
    );
    if (!result.copies.every((c) => c.verified)) throw new Error(`base backup ${workflowId}: a copy was not verified: ${JSON.stringify(result.copies)}`);
    return { ...run, storedBytes: result.bytes };
  };
  const runPgbackrestBase = async (): Promise<ContenderResult> => {
    const run = await runSteps(
      ctx,
      [{ name: 'pgbackrest backup --type=full', file: 'pgbackrest', args: [`--config=${brConf}`, `--stanza=${STANZA}`, '--type=full', 'backup'], ...pgOwner }],
      dir,
    );
    const info = JSON.parse((await pgbackrest(['--output=json', 'info'])).stdout) as Array<{ backup: Array<{ info: { repository: { delta: number } } }> }>;
    return { ...run, storedBytes: info[0].backup.at(-1)!.info.repository.delta };
  };
  const baseContenders: Record<PitrContenderId, () => Promise<ContenderResult>> = { ours: runOurBase, pgbackrest: runPgbackrestBase };
  const baseRuns: Record<PitrContenderId, ContenderResult[]> = { ours: [], pgbackrest: [] };
  const baseOrders: PitrContenderId[][] = [];
  say('pitr: base backup warm-up pass');
  for (const id of PITR_CONTENDER_IDS) await measure(db, 'base warm-up', id, baseContenders[id]);
  for (let round = 0; round < options.rounds; round++) {
    const order = orderOf(PITR_CONTENDER_IDS, round);
    baseOrders.push(order);
    for (const id of order) baseRuns[id].push(await measure(db, `base round ${round + 1}/${options.rounds}`, id, baseContenders[id]));
  }

  // ---- the WAL both replay, and the target ---------------------------------------------------
  const lsnBefore = (await cluster.query<{ lsn: string }>('postgres', 'SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
  const walSince = async () => Number((await cluster.query<{ n: string }>('postgres', `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${lsnBefore}')::text AS n`)).rows[0].n);
  say(`pitr: ${REPLAY_TRANSACTIONS} pgbench transactions, then bulk INSERTs until ${(REPLAY_WAL_BYTES / 2 ** 30).toFixed(1)} GiB of WAL after the base backups (the WAL to replay)`);
  const l0 = performance.now();
  await execa(pgbenchPath(cluster), ['-n', '-c', '2', '-j', '2', '-t', String(REPLAY_TRANSACTIONS / 2), db.name], { env: cluster.env(db.name) });
  // Rows of about 100 bytes, a million at a time (about 130 MB of WAL each); both archivers
  // keep up meanwhile (pg_wal holds what they have not taken).
  await cluster.query(db.name, 'CREATE TABLE bench_pitr_bulk (id bigint, filler text)');
  let bulkRows = 0;
  while ((await walSince()) < REPLAY_WAL_BYTES) {
    const rows = 1_000_000;
    await cluster.query(db.name, `INSERT INTO bench_pitr_bulk SELECT g, md5(g::text) || repeat('x', 60) FROM generate_series(${bulkRows + 1}, ${bulkRows + rows}) g`);
    bulkRows += rows;
  }
  const loadSeconds = (performance.now() - l0) / 1000;
  await cluster.query(db.name, 'CREATE TABLE bench_pitr_marker (label text PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())');
  await cluster.query(db.name, "INSERT INTO bench_pitr_marker (label) VALUES ('before')");
  await sleep(1100);
  const target = (await cluster.query<{ at: Date }>('postgres', 'SELECT clock_timestamp() AS at')).rows[0].at.toISOString();
  await sleep(1100);
  await cluster.query(db.name, "INSERT INTO bench_pitr_marker (label) VALUES ('after')");
  const lsnAfter = (await cluster.query<{ lsn: string }>('postgres', 'SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
  const replayWalBytes = Number((await cluster.query<{ n: string }>('postgres', `SELECT pg_wal_lsn_diff('${lsnAfter}', '${lsnBefore}')::text AS n`)).rows[0].n);
  const first = (await cluster.query<{ name: string }>('postgres', `SELECT pg_walfile_name('${lsnBefore}') AS name`)).rows[0].name;
  const last = (await cluster.query<{ name: string }>('postgres', 'SELECT pg_walfile_name(pg_switch_wal()) AS name')).rows[0].name;
  const replayLoad = { transactions: REPLAY_TRANSACTIONS, bulkRows, seconds: loadSeconds, segments: parseInt(last.slice(16), 16) - parseInt(first.slice(16), 16) + 1 + 256 * (parseInt(last.slice(8, 16), 16) - parseInt(first.slice(8, 16), 16)) };
  const a0 = performance.now();
  await until('the target segment in both archives', 900, async () => {
    const archived = (await cluster.query<{ w: string | null }>('postgres', 'SELECT last_archived_wal AS w FROM pg_stat_archiver')).rows[0].w;
    return (archived ?? '') >= last;
  });
  say(
    `pitr: target ${target}; ${(replayWalBytes / 1e9).toFixed(2)} GB of WAL (${replayLoad.segments} segments) after the base backups, written in ${loadSeconds.toFixed(0)} s ` +
      `(${bulkRows.toLocaleString('en')} bulk rows); both archives had it ${((performance.now() - a0) / 1000).toFixed(0)} s after the last write`,
  );

  /** The recovered cluster has the row before the target and not the one after: else the run is void. */
  const checkRecovered = async (port: number) => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: db.name });
    await client.connect();
    try {
      const { rows } = await client.query<{ label: string }>('SELECT label FROM bench_pitr_marker ORDER BY label');
      const labels = rows.map((r) => r.label).join(',');
      if (labels !== 'before') throw new Error(`the cluster recovered on port ${port} holds markers [${labels}], expected [before]`);
    } finally {
      await client.end();
    }
  };
  const dispose = async (dataDir: string) => {
    await pgCtl(cluster, ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], pgOwner).catch(() => undefined);
    const pid = postmasterPid(dataDir);
    if (pid) ours.splice(ours.indexOf(pid), 1);
    rmSync(path.dirname(dataDir), { recursive: true, force: true });
  };

  // Our recovery's queue folder: <workDir>/backupctl-pitr-<id>/.data.backupctl/wal-queue-<attempt>.
  const ourQueue = () => {
    for (const entry of existsSync(workDir) ? readdirSync(workDir) : []) {
      if (!entry.startsWith('backupctl-pitr-')) continue;
      const work = path.join(workDir, entry, '.data.backupctl');
      const queue = existsSync(work) ? readdirSync(work).filter((n) => n.startsWith('wal-queue-')).sort().at(-1) : undefined;
      if (queue) return path.join(work, queue);
    }
    return undefined;
  };
  const runOurPitr = async (): Promise<PitrRun> => {
    const workflowId = benchWorkflowId('pitr', db);
    let dataDir: string | undefined;
    const queue = watchQueue(ourQueue, true);
    try {
      const { result, ...run } = await measureWorkflow<PointInTimeRecoveryResult>(ctx, workerConfig, workflowId, () =>
        stack.client.workflow.execute(pointInTimeRecovery, {
          taskQueue: SHARED_TASK_QUEUE,
          workflowId,
          args: [{ hostTaskQueue: hostTaskQueue(PITR_HOST), target: { kind: 'time', value: target } }],
        }),
      );
      dataDir = result.cluster.dataDir;
      await checkRecovered(result.cluster.port);
      run.steps['restore (workflow timing)'] = result.timing.restoreSeconds;
      run.steps['replay until promoted (workflow timing)'] = result.timing.replaySeconds;
      // What the fetcher said (its failures ahead of replay, say), before the folder goes.
      const fetcherLog = path.join(ourQueue() ?? '', 'fetcher.log');
      const said = existsSync(fetcherLog) ? readFileSync(fetcherLog, 'utf8').split('\n').filter((l) => /wal-fetch|failed|error/i.test(l)) : [];
      if (said.length) say(`pitr: the fetcher's log: ${said.slice(0, 20).join(' | ')}`);
      return { ...run, storedBytes: 0, queue: queue.stop(), pace: replayPace(serverLog(dataDir)) };
    } finally {
      queue.stop();
      if (dataDir) await dispose(dataDir);
      else await stopRecovered();
    }
  };
  let baselineRun = 0;
  const theirQueue = path.join(brDir, 'spool', 'archive', STANZA, 'in');
  const runPgbackrestPitr = async (): Promise<PitrRun> => {
    const root = path.join(workDir, `pgbackrest-${++baselineRun}`);
    const dataDir = path.join(root, 'data');
    const sockets = path.join(root, 'sockets');
    for (const d of [root, dataDir, sockets]) {
      mkdirSync(d, { mode: 0o700 });
      owner.chown(d);
    }
    const [port] = await freePorts(1);
    const queue = watchQueue(() => theirQueue, false);
    try {
      const run = await timedBaseline(ctx, async (step) => {
        await step('pgbackrest restore', 'pgbackrest', [
          `--config=${brConf}`,
          `--stanza=${STANZA}`,
          `--pg1-path=${dataDir}`,
          '--type=time',
          // pgBackRest parses the time to pick the backup set: its own format, the same instant.
          `--target=${target.replace('T', ' ').replace('Z', '+00')}`,
          '--target-action=promote',
          // Like ours, the recovered cluster must not archive into the live cluster's archive.
          '--archive-mode=off',
          'restore',
        ]);
        await step('pg_ctl start', path.join(cluster.binDir, 'pg_ctl'), [
          '-D',
          dataDir,
          '-l',
          path.join(root, 'server.log'),
          '-o',
          `-p ${port} -k ${sockets} -c listen_addresses=127.0.0.1`,
          '-w',
          '-t',
          '600',
          'start',
        ]);
        const p0 = performance.now();
        await until('pg_is_in_recovery() = false', 600, async () => {
          const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
          try {
            await client.connect();
            return !(await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0].r;
          } catch {
            return false;
          } finally {
            await client.end().catch(() => undefined);
          }
        }, BASELINE_POLL_MS);
        await checkRecovered(port);
        return { 'replay until promoted (polled), marker check': (performance.now() - p0) / 1000 };
      }, pgOwner, dir);
      return { ...run, queue: queue.stop(), pace: replayPace(path.join(root, 'server.log')) };
    } catch (err) {
      const log = path.join(root, 'server.log');
      throw new Error(`${(err as Error).message}${existsSync(log) ? `\n--- recovered server log ---\n${readFileSync(log, 'utf8').split('\n').slice(-20).join('\n')}` : ''}`, { cause: err });
    } finally {
      queue.stop();
      await dispose(dataDir);
    }
  };
  const pitrContenders: Record<PitrContenderId, () => Promise<PitrRun>> = { ours: runOurPitr, pgbackrest: runPgbackrestPitr };
  const pitrRuns: Record<PitrContenderId, PitrRun[]> = { ours: [], pgbackrest: [] };
  const pitrOrders: PitrContenderId[][] = [];
  say('pitr: recovery warm-up pass');
  for (const id of PITR_CONTENDER_IDS) await measure(db, 'pitr warm-up', id, pitrContenders[id]);
  for (let round = 0; round < options.rounds; round++) {
    const order = orderOf(PITR_CONTENDER_IDS, round);
    pitrOrders.push(order);
    for (const id of order) pitrRuns[id].push(await measure(db, `pitr round ${round + 1}/${options.rounds}`, id, pitrContenders[id]));
  }

  // ---- RPO under a write load --------------------------------------------------------------
  const rpo = await measureRpo(ctx, cluster, db, workerConfig, dir, say);
  clearInterval(watcher);
  // The asynchronous commands' daemons would end when idle; ours to end now, by pid, before the folder goes.
  for (const pid of daemonsUnder(dir)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
  }
  return { db, base: baseRuns, baseOrders, pitr: pitrRuns, pitrOrders, target, replayWalBytes, replayLoad, rpo, pgbackrestVersion };
}

async function measureRpo(ctx: ContenderContext, cluster: PgCluster, db: BenchDatabase, workerConfig: string, dir: string, say: (line: string) => void): Promise<PitrResults['rpo']> {
  const { stack } = ctx;
  await cluster.query('postgres', `ALTER SYSTEM SET archive_timeout = ${RPO_ARCHIVE_TIMEOUT}`);
  await cluster.query('postgres', 'SELECT pg_reload_conf()');
  const worker = await startWorkerProcess(workerConfig);
  const shipping = await stack.client.workflow.start(shipWal, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId: benchWorkflowId('ship-wal', db),
    args: [{ hostTaskQueue: hostTaskQueue(PITR_HOST), intervalSeconds: RPO_SHIP_INTERVAL }],
  });
  const samples: Array<{ at: string; lsn: string; segment: string }> = [];
  let transactions: number;
  let walBytes: number;
  try {
    say(`pitr: RPO under load: pgbench -c ${RPO_PGBENCH_CLIENTS} at full speed for ${RPO_LOAD_SECONDS} s, archive_timeout ${RPO_ARCHIVE_TIMEOUT} s, shipping every ${RPO_SHIP_INTERVAL} s`);
    const lsn0 = (await cluster.query<{ lsn: string }>('postgres', 'SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
    const clients = String(RPO_PGBENCH_CLIENTS);
    const load = execa(pgbenchPath(cluster), ['-n', '-c', clients, '-j', clients, '-T', String(RPO_LOAD_SECONDS), db.name], { env: cluster.env(db.name) });
    let done = false;
    void load.finally(() => (done = true)).catch(() => undefined);
    while (!done) {
      const { rows } = await cluster.query<{ at: Date; lsn: string; segment: string }>(
        'postgres',
        'SELECT clock_timestamp() AS at, pg_current_wal_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_lsn()) AS segment',
      );
      samples.push({ at: rows[0].at.toISOString(), lsn: rows[0].lsn, segment: rows[0].segment });
      await Promise.race([sleep(RPO_SAMPLE_MS), load.catch(() => undefined)]);
    }
    const out = await load;
    transactions = Number(/number of transactions actually processed: (\d+)/.exec(out.stdout)?.[1] ?? NaN);
    walBytes = Number((await cluster.query<{ n: string }>('postgres', `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${lsn0}')::text AS n`)).rows[0].n);
    say(`pitr: RPO load done: ${transactions} transactions, ${(walBytes / 1e6).toFixed(0)} MB of WAL; waiting for the last sampled segment everywhere`);
    // No forced switch: archive_timeout closes the last segment, as it would in production.
    const newest = samples.at(-1)!.segment;
    await until('the last sampled segment in every repository', RPO_ARCHIVE_TIMEOUT + 600, async () => {
      const state = await shipping.query(walShippingQuery).catch(() => undefined);
      return Boolean(state && ['nas', 's3'].every((r) => (state.repositories[r]?.newestSegment ?? '') >= newest && state.repositories[r].behind === 0));
    });
  } finally {
    await shipping.terminate().catch(() => undefined);
    await worker.stop();
    await cluster.query('postgres', 'ALTER SYSTEM SET archive_timeout = 60').catch(() => undefined);
    await cluster.query('postgres', 'SELECT pg_reload_conf()').catch(() => undefined);
  }

  // When each segment arrived where: the spool's entry says archivedAt; nas's entry file was
  // written last (after the object, verified); S3's entry object likewise (LastModified, whole seconds).
  const s3Times = new Map<string, number>();
  let token: string | undefined;
  do {
    const page = await stack.s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${S3_PREFIX}/wal/`, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key?.endsWith('.json') && o.LastModified) s3Times.set(path.basename(o.Key, '.json'), o.LastModified.getTime());
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const arrivedAt = (segment: string): Record<string, number | null> => {
    const spoolEntry = path.join(dir, 'local', 'wal', `${segment}.json`);
    const nasEntry = path.join(dir, 'nas', 'wal', `${segment}.json`);
    return {
      local: existsSync(spoolEntry) ? Date.parse((JSON.parse(readFileSync(spoolEntry, 'utf8')) as { archivedAt: string }).archivedAt) : null,
      nas: existsSync(nasEntry) ? statSync(nasEntry).mtimeMs : null,
      s3: s3Times.get(segment) ?? null,
    };
  };
  const result: RpoSample[] = samples.map((s) => {
    const arrived = arrivedAt(s.segment);
    const times = Object.values(arrived);
    const everywhere = times.every((t) => t !== null) ? Math.max(...(times as number[])) : null;
    return {
      ...s,
      arrived: Object.fromEntries(Object.entries(arrived).map(([k, v]) => [k, v === null ? null : new Date(v).toISOString()])),
      delaySeconds: everywhere === null ? null : (everywhere - Date.parse(s.at)) / 1000,
    };
  });
  return { samples: result, sampleSeconds: RPO_SAMPLE_MS / 1000, loadSeconds: RPO_LOAD_SECONDS, archiveTimeout: RPO_ARCHIVE_TIMEOUT, shipInterval: RPO_SHIP_INTERVAL, clients: RPO_PGBENCH_CLIENTS, transactions, walBytes };
}

/**
 * The baseline's recovery as one measured run: commands as the postgres OS user (followed by
 * the sampler), plus whatever the body does in between (polling); steps in seconds.
 */
async function timedBaseline(
  ctx: ContenderContext,
  body: (step: (name: string, file: string, args: string[]) => Promise<void>) => Promise<Record<string, number>>,
  as: { uid?: number; gid?: number; env?: Record<string, string> },
  cwd: string,
): Promise<ContenderResult> {
  const sampler = new Sampler(undefined, new Map([[process.pid, 'node (bench)']]), ctx.sampleMs, ctx.ours);
  const steps: Record<string, number> = {};
  const t0 = performance.now();
  let usage: SampleResult;
  try {
    const more = await body(async (name, file, args) => {
      const s0 = performance.now();
      const child = execa(file, args, { cwd, env: as.env, extendEnv: true, uid: as.uid, gid: as.gid, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
      sampler.setRoot(child.pid);
      try {
        await child;
      } catch (err) {
        throw new Error(`${name} failed: ${(err as { stderr?: string }).stderr || (err as Error).message}`, { cause: err });
      }
      steps[name] = (performance.now() - s0) / 1000;
    });
    Object.assign(steps, more);
  } finally {
    usage = sampler.stop();
  }
  return { wallMs: performance.now() - t0, storedBytes: 0, treePeakRssBytes: usage.treePeakRssBytes, usage, steps };
}

function writeYaml(file: string, value: Record<string, unknown>): void {
  writeFileSync(file, YAML.stringify(value), { mode: 0o644 });
  validateConfig(value, file);
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function pgCtl(cluster: PgCluster, args: string[], as: { uid?: number; gid?: number; env?: Record<string, string> }) {
  return execa(path.join(cluster.binDir, 'pg_ctl'), args, { uid: as.uid, gid: as.gid, env: as.env, extendEnv: true, stdin: 'ignore' });
}

function pgbenchPath(cluster: PgCluster): string {
  const own = path.join(cluster.binDir, 'pgbench');
  return existsSync(own) ? own : '/usr/bin/pgbench';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, seconds: number, check: () => Promise<boolean>, everyMs = 500): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Processes (other than this one) whose command line names a path under `dir`. */
export function daemonsUnder(dir: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(dir + '/')) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
