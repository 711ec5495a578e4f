// Point-in-time recovery across more WAL than the prepare step fetches ahead, on real
// components, through the default restore_command: a cluster archiving through
// bin/wal-push-async (run by PostgreSQL itself, as its OS user), a base backup by the backupBase
// workflow, then at least PITR_LARGE_WAL_MIB (default 2048) MiB of WAL from real INSERTs, rows
// committed at known times, and the pointInTimeRecovery workflow (no pitr.restoreCommand: the
// recovery's restore_command is `cp <prefetch>/%f %p || bin/wal-fetch-async <queue> <config> %f
// %p`). A standby of the primary is promoted (timeline 2, archived through wal-push-async into
// the same spool) while the old primary goes on on timeline 1, and the recovery from the base
// backup, to a time on timeline 2, replays the whole WAL and follows the switch. Checked: the
// rows up to the target and none after (none of the old primary's after the branch), replay
// took more segments than the 64 fetched ahead (the rest from the background fetcher, timeline 1
// up to the branch and timeline 2 after it), and the fetcher's queue folder never held more than
// wal.fetchAhead.maxSegments segments.
// One configuration file for the worker (root) and for the restore_command PostgreSQL runs (its
// OS user), as a host deployed by the README runs them: the keyring it names is shared.
import { appendFileSync, chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import pg from 'pg';
import pino from 'pino';
import YAML from 'yaml';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { loadConfig } from '../common/config.js';
import type { PointInTimeRecoveryResult } from '../common/pitrTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { stopAgent } from '../engine/encryption.js';
import { serverOwner } from '../engine/localCluster.js';
import { PREFETCH_SEGMENTS } from '../engine/walPrefetch.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupBase, pointInTimeRecovery } from '../workflows/index.js';
import { freePort } from './fixtures/ports.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';
import { startTemporal } from './fixtures/temporal.js';

const HOST = 'pg-large-wal';
const PUSH = path.resolve('bin/wal-push-async');
const WAL_MIB = Number(process.env.PITR_LARGE_WAL_MIB ?? 2048);
const MAX_SEGMENTS = 8;
const SEGMENT_BYTES = 16 * 1024 * 1024;
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });
const owner = () => serverOwner();

let temporal: TestWorkflowEnvironment;
let keys: KeyPair;
let primary: PgCluster;
let dir: string;
let configFile: string;
let postgresKeys: string;
let worker: RunningWorker | undefined;
/** The standby promoted in the timeline test. */
let standby: { dataDir: string; port: number } | undefined;

const writeYaml = (file: string, value: object) => writeFileSync(file, YAML.stringify(value), { mode: 0o644 });

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-pitr-large-'));
  chmodSync(dir, 0o755);
  [temporal, keys] = await Promise.all([startTemporal(), ensureKeyPair(path.join(dir, 'keys'))]);
  for (const d of ['local', 'status']) {
    mkdirSync(path.join(dir, d), { mode: 0o700 });
    owner().chown(path.join(dir, d));
  }
  copyFileSync(keys.publicKeyFile, path.join(dir, 'public.asc'));
  chmodSync(path.join(dir, 'public.asc'), 0o644);
  copyFileSync(keys.signing.publicKeyFile, path.join(dir, 'signing-public.pem'));
  chmodSync(path.join(dir, 'signing-public.pem'), 0o644);
  // The restoring host's keyring, readable by PostgreSQL's OS user (its restore_command decrypts).
  postgresKeys = path.join(dir, 'gnupg');
  cpSync(keys.privateHome, postgresKeys, { recursive: true, filter: (src) => !/S\.gpg-agent|\.lock$/.test(src) });
  await execa('chown', ['-R', `${owner().spawn.uid}:${owner().spawn.gid}`, postgresKeys]);
  mkdirSync(path.join(dir, 'work'), { mode: 0o755 });

  // Checkpoints far apart, so the load's WAL is its rows (no full-page images to pad it).
  primary = await startCluster({ archive: true, extraConf: ["max_wal_size = '8GB'", 'checkpoint_timeout = 1h', 'wal_compression = off'] });
  await primary.query('postgres', 'CREATE DATABASE appdb');
  await primary.query('appdb', 'CREATE TABLE event (id int PRIMARY KEY, label text NOT NULL)');
  await primary.query('appdb', 'CREATE TABLE ballast (id bigint, body text NOT NULL)');
  configFile = path.join(dir, 'backupctl.yaml');
  writeYaml(configFile, {
    host: HOST,
    temporal: { address: temporal.address, namespace: 'default' },
    database: { url: primary.url('appdb'), keyTables: ['event'] },
    repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') } },
    encryption: { publicKeyFile: path.join(dir, 'public.asc'), privateKeyHome: postgresKeys },
    signing: { privateKeyFile: keys.signing.privateKeyFile, publicKeyFiles: [path.join(dir, 'signing-public.pem')] },
    restore: { serverUrl: primary.url('postgres'), workDir: path.join(dir, 'work') },
    wal: { spool: 'local', async: { processes: 2, idleSeconds: 5 }, fetchAhead: { processes: 2, maxSegments: MAX_SEGMENTS, idleSeconds: 2 } },
    logLevel: 'warn',
  });
  await primary.query('postgres', `ALTER SYSTEM SET archive_command = '${archiveCommand(path.join(dir, 'status'))}'`);
  await primary.query('postgres', 'SELECT pg_reload_conf()');
  worker = await startWorker(await loadConfig(configFile, {}), logger, { bundleInProcess: true, configFile });
}, 180_000);

afterAll(async () => {
  await worker?.shutdown().catch(() => undefined);
  for (const run of existsSync(path.join(dir, 'work')) ? readdirSync(path.join(dir, 'work')) : []) {
    await execa(path.join(primary.binDir, 'pg_ctl'), ['-D', path.join(dir, 'work', run, 'data'), '-m', 'immediate', '-w', 'stop'], { reject: false, uid: owner().spawn.uid, gid: owner().spawn.gid });
  }
  if (standby) await asOwner('pg_ctl', ['-D', standby.dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
  await primary?.stop();
  await stopAgent(postgresKeys);
  await stopAgent(keys?.privateHome ?? '/nonexistent');
  await temporal?.teardown();
  if (!process.env.KEEP_PITR_LARGE) rmSync(dir, { recursive: true, force: true });
}, 120_000);

const asOwner = (tool: string, args: string[]) =>
  execa(path.join(primary.binDir, tool), args, { uid: owner().spawn.uid, gid: owner().spawn.gid, cwd: '/', env: { LC_ALL: 'C.UTF-8' }, extendEnv: true });

function archiveCommand(status: string): string {
  return `BACKUPCTL_NODE=${process.execPath} ${PUSH} ${status} ${configFile} %p`;
}

async function onStandby<R extends pg.QueryResultRow>(sql: string, db = 'postgres'): Promise<R> {
  const client = new pg.Client({ host: '127.0.0.1', port: standby!.port, user: 'postgres', database: db });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows[0];
  } finally {
    await client.end();
  }
}

async function one<R extends pg.QueryResultRow>(sql: string, db = 'postgres'): Promise<R> {
  return (await primary.query<R>(db, sql)).rows[0];
}

async function until(what: string, check: () => Promise<boolean>, seconds = 600): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${primary.log().split('\n').slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Everything written so far switched out and archived (in the spool); the last segment's name. */
async function archiveAll(): Promise<string> {
  const { name } = await one<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
  await until('the archiver to drain', async () => ((await one<{ w: string | null }>('SELECT last_archived_wal AS w FROM pg_stat_archiver')).w ?? '') >= name);
  return name;
}

async function commitRow(id: number, label: string): Promise<string> {
  const { at } = await one<{ at: Date }>(`INSERT INTO event VALUES (${id}, '${label}') RETURNING clock_timestamp() AS at`, 'appdb');
  return at.toISOString();
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function labels(port: number): Promise<string[]> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'appdb' });
  await client.connect();
  try {
    return (await client.query<{ label: string }>('SELECT label FROM event ORDER BY id')).rows.map((r) => r.label);
  } finally {
    await client.end();
  }
}

/** What a recovery's fetch queues (work/<run>/.data.backupctl/wal-queue-N) hold now: segments (whole or being written) and bytes. */
function queueUse(workflowId: string): { queues: string[]; segments: number; bytes: number } {
  const queues: string[] = [];
  let segments = 0;
  let bytes = 0;
  for (const run of readdirSync(path.join(dir, 'work')).filter((r) => r.startsWith(`backupctl-pitr-${workflowId}-`))) {
    const work = path.join(dir, 'work', run, '.data.backupctl');
    for (const queue of existsSync(work) ? readdirSync(work).filter((f) => /^wal-queue-\d+$/.test(f)) : []) {
      queues.push(path.join(work, queue));
      for (const file of readdirSync(path.join(work, queue))) {
        // A segment waiting (its name), or being written (fetchSegment's temp name beside it).
        if (/^[0-9A-F]{24}($|\.backupctl-)/.test(file)) segments++;
        bytes += (() => {
          try {
            return lstatSync(path.join(work, queue, file)).size;
          } catch {
            return 0; // taken by restore_command meanwhile
          }
        })();
      }
    }
  }
  return { queues, segments, bytes };
}

/**
 * Runs the pointInTimeRecovery workflow to `target` (a time), sampling the fetcher's queue folder
 * every 50 ms while it runs, and checks what every recovery here must show: replay took more
 * segments than the prepare fetched ahead, the rest came through the background fetcher, whose
 * queue never held more than wal.fetchAhead.maxSegments segments. Returns the result and the
 * names of the segments replay restored.
 */
async function recoverTo(workflowId: string, target: string): Promise<{ recovered: PointInTimeRecoveryResult; restored: string[] }> {
  const handle = await temporal.client.workflow.start(pointInTimeRecovery, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId,
    args: [{ hostTaskQueue: hostTaskQueue(HOST), target: { kind: 'time', value: target } }],
  });
  let most = { segments: 0, bytes: 0 };
  let seenQueue = false;
  let done = false;
  const result = handle.result().finally(() => (done = true));
  while (!done) {
    const use = queueUse(workflowId);
    seenQueue ||= use.queues.length > 0;
    most = { segments: Math.max(most.segments, use.segments), bytes: Math.max(most.bytes, use.bytes) };
    await pause(50);
  }
  const recovered = (await result) as PointInTimeRecoveryResult;
  const work = path.join(path.dirname(recovered.cluster.dataDir), '.data.backupctl');
  const restored = [...readFileSync(path.join(work, 'server.log'), 'utf8').matchAll(/restored log file "([0-9A-F]{24})" from archive/g)].map((m) => m[1]);
  const prefetched = readdirSync(path.join(work, 'wal-prefetch')).filter((f) => /^[0-9A-F]{24}$/.test(f)).length;
  expect(prefetched).toBe(PREFETCH_SEGMENTS.beforeFetcher);
  expect(restored.length).toBeGreaterThanOrEqual(Math.floor(WAL_MIB / 16));
  // The segments past the prefetch came from the background fetcher, through its queue folder.
  const queue = readdirSync(work).filter((f) => /^wal-queue-\d+$/.test(f));
  expect(queue).toHaveLength(1);
  const fetcherLog = path.join(work, queue[0], 'fetcher.log');
  // Its last words are written when it ends, idle: then nobody holds the queue folder's lock.
  await until('the fetcher to end (idle)', async () => (await execa('flock', ['-n', path.join(work, queue[0]), 'true'], { reject: false })).exitCode === 0, 60);
  const fetched = [...readFileSync(fetcherLog, 'utf8').matchAll(/ended: (\d+) fetched, (\d+) missing, (\d+) failed/g)].reduce((n, m) => n + Number(m[1]), 0);
  // (Every segment past the prefetch's came through the queue; one asked for twice, as the
  // last is at the end of recovery, counts once.)
  expect(fetched).toBeGreaterThanOrEqual(new Set(restored).size - PREFETCH_SEGMENTS.beforeFetcher);
  expect(seenQueue).toBe(true);
  expect(most.segments).toBeGreaterThan(0);
  expect(most.segments).toBeLessThanOrEqual(MAX_SEGMENTS);
  expect(most.bytes).toBeLessThanOrEqual(MAX_SEGMENTS * SEGMENT_BYTES + 1024 * 1024);
  process.stderr.write(
    `pitrLargeWal ${workflowId}: ${restored.length} segments restored (${prefetched} fetched ahead by the prepare, ${fetched} by the fetcher), queue at most ${most.segments} segments / ${(most.bytes / 1024 / 1024).toFixed(0)} MiB; restore ${recovered.timing.restoreSeconds} s, replay ${recovered.timing.replaySeconds} s\n`,
  );
  return { recovered, restored };
}

test(`${WAL_MIB} MiB of WAL after a base backup, from real INSERTs, archived through wal-push-async`, async () => {
  const base = await temporal.client.workflow.execute(backupBase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'backup-base-large-wal', args: [{ hostTaskQueue: hostTaskQueue(HOST) }] });
  expect(base.copies.every((c) => c.verified)).toBe(true);
  const { start } = await one<{ start: string }>('SELECT pg_current_wal_lsn()::text AS start');
  await commitRow(1, 'before-load');

  // Real rows, about 2 KB each (below the TOAST threshold, so written whole), until the WAL
  // since the base backup reaches the size asked for.
  // (A batch of at most 200 000 rows, about 400 MiB, and no more than the rest needs: some
  // 2 KB of WAL a row.)
  let next = 1;
  for (;;) {
    const { mib } = await one<{ mib: string }>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${start}') / 1048576 AS mib`);
    if (Number(mib) >= WAL_MIB) break;
    const batch = Math.min(200_000, Math.max(5_000, Math.ceil(((WAL_MIB - Number(mib)) * 1048576) / 1900)));
    await primary.query('appdb', `INSERT INTO ballast SELECT g, lpad(g::text, 1900, md5(g::text)) FROM generate_series(${next}, ${next + batch - 1}) g`);
    next += batch;
  }
  await commitRow(2, 'after-load');
  await commitRow(3, 'after-load-2');
  const { bytes } = await one<{ bytes: string }>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${start}') AS bytes`);
  expect(Number(bytes)).toBeGreaterThanOrEqual(WAL_MIB * 1024 * 1024);
  const last = await archiveAll();
  process.stderr.write(`pitrLargeWal: ${(Number(bytes) / 1024 / 1024).toFixed(0)} MiB of WAL after the base backup, archived up to ${last}\n`);

  // Recovered below, past a timeline switch: one recovery across the whole WAL serves both
  // (a recovery of its own here cost the suite 35-115 s more).
}, 1_200_000);

test('a recovery to a time on the timeline a promoted standby began, past the same WAL: replay follows the switch, through the fetcher', async () => {
  // The load's rows go (the recovery below replays them, then this): the standby's copy is small.
  await primary.query('appdb', 'TRUNCATE ballast');
  // A standby of the primary, archiving into the same spool through its own status folder once
  // promoted (as walAsyncTimeline.integration's).
  const own = path.join(dir, 'standby');
  for (const d of [own, path.join(dir, 'status-standby')]) {
    mkdirSync(d, { mode: 0o700 });
    owner().chown(d);
  }
  standby = { dataDir: path.join(own, 'data'), port: await freePort() };
  await asOwner('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', standby.dataDir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync']);
  appendFileSync(
    path.join(standby.dataDir, 'postgresql.auto.conf'),
    `\nport = ${standby.port}\nunix_socket_directories = '${own}'\narchive_command = '${archiveCommand(path.join(dir, 'status-standby'))}'\n`,
  );
  await asOwner('pg_ctl', ['start', '-D', standby.dataDir, '-l', path.join(own, 'server.log'), '-w', '-t', '120']);
  await commitRow(4, 'tl1-before-branch');
  // The insert position: the write position may lag a commit (the fixture's clusters do not wait on commits).
  const { lsn } = await one<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  await until('the standby to replay the primary', async () => (await onStandby<{ ok: boolean }>(`SELECT pg_last_wal_replay_lsn() >= '${lsn}' AS ok`)).ok);
  await asOwner('pg_ctl', ['promote', '-D', standby.dataDir, '-w']);
  // The old primary goes on on timeline 1: a row that is not on timeline 2.
  await commitRow(5, 'tl1-after-branch');
  await onStandby("INSERT INTO event VALUES (6, 'tl2-before-target')", 'appdb');
  await pause(1100);
  const target = (await onStandby<{ at: Date }>('SELECT clock_timestamp() AS at')).at.toISOString();
  await pause(1100);
  await onStandby("INSERT INTO event VALUES (7, 'tl2-after-target')", 'appdb');
  const { name } = await onStandby<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
  expect(name.slice(0, 8)).toBe('00000002');
  await until('the promoted standby to archive timeline 2', async () => ((await onStandby<{ w: string | null }>('SELECT last_archived_wal AS w FROM pg_stat_archiver')).w ?? '') >= name);
  await archiveAll();
  expect(existsSync(path.join(dir, 'local', 'wal', '00000002.history.json'))).toBe(true);

  const { recovered, restored } = await recoverTo('pitr-timeline-2', target);
  expect(await labels(recovered.cluster.port)).toEqual(['before-load', 'after-load', 'after-load-2', 'tl1-before-branch', 'tl2-before-target']);
  expect(recovered.timeline).toBe(3);
  // Timeline 1 up to the branch, then timeline 2 from the branch segment on, all of timeline
  // 2's past the prefetch: the fetcher crossed the switch.
  const first2 = restored.findIndex((n) => n.startsWith('00000002'));
  expect(first2).toBeGreaterThan(PREFETCH_SEGMENTS.beforeFetcher);
  expect(restored.slice(0, first2).every((n) => n.startsWith('00000001'))).toBe(true);
  expect(restored.slice(first2).every((n) => n.startsWith('00000002'))).toBe(true);
}, 1_200_000);
