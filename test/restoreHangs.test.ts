// Restores that stall, race or get superseded, on real components without Temporal: a real
// PostgreSQL cluster, real gpg and zstd, filesystem repositories, and the restore activity run
// in MockActivityEnvironment (whose info names the run and the attempt). A wrapper around a
// filesystem repository plays a network that stops delivering bytes.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { EngineError, permanent } from '../engine/errors.js';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { readFirstGoodCopy } from '../engine/copySelection.js';
import { loadRecipient, stopAgent } from '../engine/encryption.js';
import { openPlaintext } from '../engine/restoreStream.js';
import { spawnStreaming } from '../engine/exec.js';
import { streamToRepositories } from '../engine/pipeline.js';
import { createRestoreActivities } from '../activities/restore.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { ownedTempPrefix, sweepDeadOwners } from '../engine/tempDirs.js';
import type { Repository } from '../engine/storage/repository.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { validateConfig, type Config } from '../common/config.js';
import type { CatalogSource } from '../common/restoreTypes.js';
import { ErrorType, type StoredObject } from '../common/types.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-hangs-'));
const workDir = path.join(dir, 'work');
const LIVE = 'live_app';
let cluster: PgCluster;
let keys: KeyPair;
let config: Config;
let dump: StoredObject;
const local = new FilesystemRepository('local', path.join(dir, 'local'));

/** A filesystem repository whose reads stop after `stallAfter` bytes until released: a network that hangs. */
class StallingRepository implements Repository {
  readonly kind = 'filesystem' as const;
  readonly location: string;
  served = 0;
  /** Set once a read is held at the stall point. */
  stalled = false;
  private releases: Array<() => void> = [];
  constructor(
    readonly name: string,
    private inner: Repository,
    private stallAfter: number,
  ) {
    this.location = inner.location;
  }
  release() {
    this.stallAfter = Infinity;
    this.releases.splice(0).forEach((r) => r());
  }
  async get(key: string, options?: { signal?: AbortSignal }): Promise<Readable> {
    const source = await this.inner.get(key, options);
    const out = new PassThrough();
    (async () => {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (this.served + chunk.length > this.stallAfter) {
          this.stalled = true;
          await new Promise<void>((resolve) => this.releases.push(resolve));
        }
        this.served += chunk.length;
        if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
      }
      out.end();
    })().catch((err) => out.destroy(err));
    return out;
  }
  put = (...args: Parameters<Repository['put']>) => this.inner.put(...args);
  stat = (key: string) => this.inner.stat(key);
  list = (prefix: string) => this.inner.list(prefix);
  remove = (key: string) => this.inner.remove(key);
  create = (key: string, body: Buffer) => this.inner.create(key, body);
  check = () => this.inner.check();
}

beforeAll(async () => {
  mkdirSync(workDir, { recursive: true });
  [cluster, keys] = await Promise.all([startCluster(), ensureKeyPair(path.join(dir, 'keys'))]);
  await cluster.query('postgres', `CREATE DATABASE ${LIVE}`);
  await cluster.query('postgres', 'CREATE DATABASE dump_source');
  // About 8 MB of text that compresses little: more than every pipe and stream buffer holds.
  await cluster.query('dump_source', `CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((g * 3)::text) || md5((g * 7)::text) AS a FROM generate_series(1, 80000) g`);
  config = validateConfig(
    {
      host: 'hangs',
      temporal: { address: '127.0.0.1:7233', namespace: 'default' },
      database: { url: cluster.url(LIVE) },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      restore: { serverUrl: cluster.url('postgres'), workDir, jobs: 1 },
      logLevel: 'warn',
    },
    'test config',
  );
  const recipient = await loadRecipient(keys.publicKeyFile);
  try {
    const abort = new AbortController();
    const key = 'database/hangs/dump.pgcustom.zst.gpg';
    const stored = await streamToRepositories({
      producer: spawnStreaming(path.join(cluster.binDir, 'pg_dump'), ['--format=custom', '--compress=0', '--no-password'], { env: cluster.env('dump_source'), signal: abort.signal }),
      classifyProducerError: (err) => permanent(ErrorType.DumpFailed, String(err)),
      compression: { algorithm: 'zstd', level: 3, threads: 0 },
      recipient,
      repositories: [local],
      key,
      abort,
    });
    dump = { role: 'dump', key, bytes: stored.bytes, sha256: stored.sha256, plainBytes: stored.plainBytes };
  } finally {
    await recipient.dispose();
  }
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

function source(repositories: string[]): CatalogSource {
  return {
    kind: 'backup',
    backupId: 'hangs',
    takenAt: new Date().toISOString(),
    database: 'dump_source',
    compression: 'zstd',
    recipientFingerprint: keys.fingerprint,
    objects: [dump],
    rowCounts: { t: 80000 },
    repositories,
  };
}

const RUN = '11111111-2222-3333-4444-555555555555';
function attemptEnv(attempt: number) {
  return new MockActivityEnvironment({ attempt, workflowExecution: { workflowId: 'restore-hangs', runId: RUN }, heartbeatTimeoutMs: 15_000 });
}

async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown; timedOut?: true }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ timedOut: true }>((resolve) => (timer = setTimeout(() => resolve({ timedOut: true }), ms)));
  try {
    return await Promise.race([promise.then((value) => ({ value }), (error) => ({ error })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function childProcesses(): string[] {
  try {
    return execFileSync('ps', ['-o', 'comm=', '--ppid', String(process.pid)], { encoding: 'utf8' })
      .split('\n')
      .filter((c) => ['gpg', 'zstd', 'pg_restore'].includes(c.trim()));
  } catch {
    return [];
  }
}

async function databaseOid(name: string): Promise<number | undefined> {
  const { rows } = await cluster.query<{ oid: number }>('postgres', 'SELECT oid::int FROM pg_database WHERE datname = $1', [name]);
  return rows[0]?.oid;
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a stalled copy: heartbeats stop when bytes stop; cancelling ends the restore at once and leaves no plaintext or process', async () => {
  const stalling = new StallingRepository('local', local, 2 * 1024 * 1024);
  const env = attemptEnv(1);
  const beats: number[] = [];
  env.on('heartbeat', () => beats.push(Date.now()));
  const restore = createRestoreActivities({ config, repositories: [stalling], binDir: cluster.binDir });
  const running = env.run(restore.restoreIntoNewDatabase, { workflowId: 'restore-hangs', source: source(['local']), database: 'stalled_target' });
  running.catch(() => undefined);
  try {
    await waitFor(() => stalling.stalled && readdirSync(workDir).length > 0, 'the restore to stall');
    // What was buffered downstream flows out within a moment, and is reported; then nothing moves.
    await new Promise((r) => setTimeout(r, 1500));
    expect(beats.length).toBeGreaterThan(0);
    const quietFrom = Date.now();
    await new Promise((r) => setTimeout(r, 4000));
    // One tick may still report the last bytes; none after it.
    expect(beats.filter((t) => t > quietFrom + 1100)).toEqual([]);
    expect(readdirSync(workDir)[0]).toMatch(new RegExp(`^backupctl-restore-${process.pid}-`));
    env.cancel();
    const outcome = await settledWithin(running, 10_000);
    expect(outcome.timedOut).toBeUndefined();
    expect(outcome.error).toBeDefined();
    // The decrypted archive went with the activity, and so did gpg, zstd and pg_restore.
    expect(readdirSync(workDir)).toEqual([]);
    await waitFor(() => childProcesses().length === 0, 'child processes to end', 6000);
  } finally {
    stalling.release();
    await running.catch(() => undefined);
    await cluster.query('postgres', 'DROP DATABASE IF EXISTS stalled_target WITH (FORCE)');
  }
}, 60_000);

test("a consumer's own refusal ends every stage: the read settles at once with that error, not a hang", async () => {
  const outcome = await settledWithin(
    readFirstGoodCopy({
      object: dump,
      repositories: [local],
      compression: 'zstd',
      privateKeyHome: keys.privateHome,
      passphraseFile: undefined,
      signal: new AbortController().signal,
      // As a restore that lost the race for its target name: it refuses before reading a byte.
      consume: async () => {
        await new Promise((r) => setTimeout(r, 200));
        throw permanent(ErrorType.TargetDatabaseExists, 'database "x" already exists');
      },
      consumerFailure: (err) => permanent(ErrorType.RestoreFailed, String(err)),
    }),
    15_000,
  );
  expect(outcome.timedOut).toBeUndefined();
  expect(outcome.error).toBeInstanceOf(EngineError);
  expect((outcome.error as EngineError).type).toBe('TargetDatabaseExists');
  await waitFor(() => childProcesses().length === 0, 'gpg and zstd to end', 6000);
}, 30_000);

test('a copy whose decompression fails midway (zstd dies while gpg still writes): every stage ends at once, DumpUnreadable', async () => {
  // A whole, correctly encrypted copy (its checksum matches) of bytes that are valid zstd for
  // 1 MB and garbage after: zstd exits while gpg has megabytes left to write.
  const key = 'database/hangs/broken-inside.zst.gpg';
  const zstdPart = execFileSync('zstd', ['-q', '-c'], { input: Buffer.alloc(1024 * 1024, 'a') });
  const garbage = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 2654435761) >>> 24;
  const broken = new FilesystemRepository('broken', path.join(dir, 'broken'));
  const recipient = await loadRecipient(keys.publicKeyFile);
  try {
    const encrypted = execFileSync(
      'gpg',
      ['--homedir', recipient.homeDir, '--batch', '--no-tty', '--quiet', '--no-autostart', '--trust-model', 'always', '--compress-algo', 'none', '--recipient', recipient.fingerprint, '--encrypt'],
      { input: Buffer.concat([zstdPart, garbage]), maxBuffer: 64 * 1024 * 1024 },
    );
    await broken.put(key, Readable.from([encrypted]));
  } finally {
    await recipient.dispose();
  }
  const stored = readFileSync(path.join(dir, 'broken', key));
  const object = { key, bytes: stored.length, sha256: createHash('sha256').update(stored).digest('hex') };
  const outcome = await settledWithin(openAndDrain(broken, object), 20_000);
  expect(outcome.timedOut).toBeUndefined();
  expect((outcome.error as EngineError)?.type).toBe('DumpUnreadable');
  await waitFor(() => childProcesses().length === 0, 'gpg and zstd to end', 6000);
}, 60_000);

/** Opens a copy and reads its plaintext to the end, as a restore does. */
async function openAndDrain(repository: Repository, object: Pick<StoredObject, 'key' | 'bytes' | 'sha256'>) {
  const opened = await openPlaintext({ repository, object, compression: 'zstd', privateKeyHome: keys.privateHome, passphraseFile: undefined, signal: new AbortController().signal });
  opened.stream.resume();
  return opened.done;
}

test("a stale attempt that starts late refuses, and touches neither the newer attempt's staging file nor its database", async () => {
  const stalling = new StallingRepository('local', local, 3 * 1024 * 1024);
  const newer = attemptEnv(2);
  const restoreNewer = createRestoreActivities({ config, repositories: [stalling], binDir: cluster.binDir });
  const input = { workflowId: 'restore-hangs', source: source(['local']), database: 'raced_target' };
  const running = newer.run(restoreNewer.restoreIntoNewDatabase, input);
  running.catch(() => undefined);
  try {
    // Attempt 2 is mid-stream: its database exists and its staging file is being written.
    await waitFor(() => stalling.served > 2 * 1024 * 1024 && readdirSync(workDir).length > 0, 'attempt 2 to be streaming');
    const staging = readdirSync(workDir).map((d) => path.join(workDir, d, 'dump.pgcustom'));
    await waitFor(() => existsSync(staging[0]), 'the staging file');
    const oid = await databaseOid('raced_target');
    expect(oid).toBeDefined();

    // Attempt 1 wakes up (a frozen worker resumed) and runs from its start.
    const stale = attemptEnv(1);
    const restoreStale = createRestoreActivities({ config, repositories: [local], binDir: cluster.binDir });
    const staleOutcome = await settledWithin(stale.run(restoreStale.restoreIntoNewDatabase, input), 30_000);
    expect(staleOutcome.timedOut).toBeUndefined();
    expect((staleOutcome.error as EngineError)?.type).toBe('AttemptSuperseded');
    expect(existsSync(staging[0])).toBe(true);
    expect(await databaseOid('raced_target')).toBe(oid);

    // Attempt 2 finishes its restore, whole.
    stalling.release();
    const restored = (await running) as { database: string };
    expect(restored.database).toBe('raced_target');
    const { rows } = await cluster.query<{ n: number }>('raced_target', 'SELECT count(*)::int AS n FROM t');
    expect(rows[0].n).toBe(80000);
    // The stale attempt cannot drop it either; the run's own cleanup (any attempt) can.
    const dropStale = await attemptEnv(1).run(restoreStale.dropRestoredDatabase, { database: 'raced_target', workflowId: 'restore-hangs' });
    expect(dropStale).toBe(true);
  } finally {
    stalling.release();
    await running.catch(() => undefined);
    await cluster.query('postgres', 'DROP DATABASE IF EXISTS raced_target WITH (FORCE)');
  }
}, 90_000);

test('the live database: never created over, never dropped, whatever run asks', async () => {
  const restore = createRestoreActivities({ config, repositories: [local], binDir: cluster.binDir });
  const oid = await databaseOid(LIVE);
  const into = await settledWithin(attemptEnv(1).run(restore.restoreIntoNewDatabase, { workflowId: 'restore-hangs', source: source(['local']), database: LIVE }), 20_000);
  expect(into.error).toMatchObject({ type: 'TargetDatabaseExists', nonRetryable: true });
  const drop = await settledWithin(attemptEnv(1).run(restore.dropRestoredDatabase, { database: LIVE, workflowId: 'restore-hangs' }), 20_000);
  expect(drop.error).toMatchObject({ type: 'LiveDatabaseProtected', nonRetryable: true });
  expect(await databaseOid(LIVE)).toBe(oid);
}, 60_000);

test("the startup sweep removes only our folders of dead processes on this host: never a live process's, another host's, or a stranger's", async () => {
  const root = mkdtempSync(path.join(dir, 'sweep-'));
  const dead = execa('true');
  await dead;
  const alive = execa('sleep', ['30']);
  try {
    const tag = ownedTempPrefix('gpg').split('-')[3];
    const names = {
      dead: `backupctl-gpg-${dead.pid}-${tag}-AbC123`,
      deadStaging: `backupctl-restore-${dead.pid}-${tag}-XyZ789`,
      alive: `backupctl-bundle-${alive.pid}-${tag}-Qwe456`,
      otherHost: `backupctl-gpg-${dead.pid}-00000000-AbC123`,
      old: 'backupctl-gpg-AbC123',
      stranger: `someone-gpg-${dead.pid}-${tag}-AbC123`,
    };
    for (const name of Object.values(names)) mkdirSync(path.join(root, name));
    const removed = await sweepDeadOwners([root]);
    expect(removed.map((r) => path.basename(r)).sort()).toEqual([names.dead, names.deadStaging].sort());
    expect(readdirSync(root).sort()).toEqual([names.alive, names.otherHost, names.old, names.stranger].sort());
  } finally {
    alive.kill('SIGKILL');
    await alive.catch(() => undefined);
  }
});
