// What the chaos runs need around them, all real: a Temporal dev server persisted to SQLite
// (so it can be killed and started again on the same file), a TCP proxy between the workers
// and Temporal (cut to isolate a worker while its children run on), PostgreSQL with the
// application's data (left unchanged during the runs, so every restore must equal it) archiving
// its WAL through `backupctl wal-push` (run by PostgreSQL itself, as the postgres OS user, into
// the local repository: the spool), SeaweedFS S3 behind a fault-injecting proxy with the
// workers' own revocable identity, a NAS repository on a small tmpfs (filled up or turned
// read-only on demand), the key pair, and the application's services as a state file.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import YAML from 'yaml';
import type { Client } from '@temporalio/client';
import { stopAgent } from '../engine/encryption.js';
import { serverOwner } from '../engine/localCluster.js';
import { createDemoRoles, seedDemoData } from '../client/dev/demoData.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { postgresReadableKeys } from '../client/dev/postgresKeys.js';
import { PROJECT_ROOT } from '../client/dev/tools.js';
import { startDevTemporal, type DevTemporal } from '../client/dev/temporalServer.js';
import { connectClient } from '../client/temporalClient.js';
import { validateConfig, type Config } from '../common/config.js';
import { startCluster, tableChecksums, type PgCluster } from '../test/fixtures/postgres.js';
import { freePorts } from '../test/fixtures/ports.js';
import { startS3Server, type S3Server } from '../test/fixtures/seaweedfs.js';
import { startTcpProxy, type TcpProxy } from '../test/fixtures/tcpProxy.js';
import { startS3FaultProxy, type S3FaultProxy } from './s3FaultProxy.js';
import { createS3Identity, type S3Identity } from './s3Identity.js';

export const HOST = 'chaos';
export const LIVE_DB = 'thesis_grey_db';
export const BUCKET = 'backupctl-chaos';
/** Where the WAL and point-in-time recovery scenarios write: never the live database. */
export const WAL_DB = 'chaos_wal';
const CLI = path.join(PROJECT_ROOT, 'bin', 'backupctl.js');
// Room for a few hundred runs of backups (nothing prunes yet: retention is issue 12); the
// full-repository fault fills whatever is left.
export const NAS_BYTES = 512 * 1024 * 1024;

export interface ChaosStack {
  dir: string;
  temporal: { address: string; restart(): Promise<void> };
  /** Between the workers and Temporal. */
  temporalProxy: TcpProxy;
  cluster: PgCluster;
  s3: S3Server;
  s3Proxy: S3FaultProxy;
  /** The workers' S3 credentials (the harness reads S3 with the server's admin identity). */
  s3Identity: S3Identity;
  keys: KeyPair;
  configFile: string;
  config: Config;
  client: Client;
  repositories: { local: string; nas: string };
  /** Whether the NAS repository is a tmpfs this run mounted (full and read-only faults need it). */
  nasIsTmpfs: boolean;
  /** restore.workDir: restore staging, and where point-in-time recoveries make their folders. */
  stagingDir: string;
  /**
   * TMPDIR of every process of ours here (workers, wal-push, wal-fetch), shared and sticky as
   * /tmp is: their temporary folders, apart from whatever else runs on this machine.
   */
  tmpDir: string;
  /** The live database's fingerprint before any run: every restore must equal it. */
  sourceSums: Record<string, string>;
  /**
   * How far a sequence may legitimately be ahead of sourceSums: PostgreSQL WAL-logs a sequence
   * 32 values ahead, so crash recovery (an immediate restart) skips up to 32 values. Grows by
   * 32 with every immediate restart.
   */
  sequenceSlack: number;
  /** What a worker (or a backupctl command) on this stack needs in its environment: the S3 credentials. */
  workerEnv: Record<string, string>;
  servicesState(): string;
  stop(): Promise<void>;
  /** Something to stop first when the stack stops (a runner's workers), even on Ctrl-C. */
  onStop(stopper: () => Promise<unknown>): void;
}

export async function startChaosStack(say: (line: string) => void, size = { users: 60, sessionsPerUser: 3, activitiesPerSession: 4 }): Promise<ChaosStack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'backupctl-chaos-'));
  const stops: Array<() => Promise<unknown>> = [];
  // One stop, however many ask (Ctrl-C and the runner's own end): a second caller waits for
  // the first to finish instead of finding nothing left to stop and exiting mid-way.
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      for (const s of stops.splice(0)) await s().catch((err) => say(`stopping: ${(err as Error).message}`));
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    })());
  try {
    const temporalDir = path.join(dir, 'temporal');
    // The dev server also binds ports of its own choosing (metrics, its services' membership):
    // one taken between its choice and its bind ends it at start. Then again, on other ports.
    let [port, uiPort] = await freePorts(2);
    let server: DevTemporal | undefined;
    for (let attempt = 1; !server; attempt++) {
      server = await startDevTemporal(temporalDir, port, uiPort).catch(async (err: Error) => {
        if (attempt >= 3) throw err;
        say(`the Temporal dev server did not start (${err.message.split('\n')[0]}): again on other ports`);
        [port, uiPort] = await freePorts(2);
        return undefined;
      });
    }
    stops.unshift(() => server!.stop());
    const temporal = {
      address: server.address,
      async restart() {
        await server!.kill();
        server = await startDevTemporal(temporalDir, port, uiPort);
      },
    };
    const temporalProxy = await startTcpProxy(port);
    stops.unshift(() => temporalProxy.stop());

    const [cluster, s3, keys] = await Promise.all([startCluster({ archive: true }), startS3Server(), ensureKeyPair(path.join(dir, 'keys'))]);
    stops.unshift(() => cluster.stop(), () => s3.stop());
    stops.push(() => execa('gpgconf', ['--homedir', keys.privateHome, '--kill', 'gpg-agent']));
    await s3.createBucket(BUCKET);
    // The workers (started by the runner) take their credentials from workerEnv: a key of
    // their own, which s3-revoke revokes.
    const s3Identity = await createS3Identity(s3, BUCKET);
    const s3Proxy = await startS3FaultProxy(s3.endpoint);
    stops.unshift(() => s3Proxy.stop());

    await seed(cluster, size);
    const sourceSums = await tableChecksums(cluster, LIVE_DB);

    // PostgreSQL's own processes (archive_command, recovered clusters) pass through; only the
    // postgres OS user's folders below are open to it.
    chmodSync(dir, 0o711);
    const owner = serverOwner();
    const local = path.join(dir, 'local');
    const nas = path.join(dir, 'nas');
    mkdirSync(local, { mode: 0o700 });
    // The spool: wal-push writes here as the postgres OS user.
    owner.chown(local);
    mkdirSync(nas, { mode: 0o700 });
    const nasIsTmpfs = await execa('mount', ['-t', 'tmpfs', '-o', `size=${NAS_BYTES},mode=0700`, 'chaos-nas', nas]).then(
      () => true,
      (err) => (say(`NAS not on tmpfs (${err.shortMessage}): the full and read-only faults are skipped`), false),
    );
    if (nasIsTmpfs) stops.push(() => execa('umount', ['-l', nas]));

    const stagingDir = path.join(dir, 'staging');
    // Recovered clusters run from folders in here, as the postgres OS user: it must pass through.
    mkdirSync(stagingDir, { mode: 0o711 });
    chmodSync(stagingDir, 0o711);
    const servicesFile = path.join(dir, 'services.state');
    writeFileSync(servicesFile, 'running\n');
    const systemctl = path.join(dir, 'systemctl');
    // stop -> stopped, start -> running: the state the invariants read.
    writeFileSync(systemctl, `#!/bin/bash\ncase "$1" in stop) echo stopped > ${servicesFile};; start) echo running > ${servicesFile};; esac\n`);
    chmodSync(systemctl, 0o755);

    const repositories = {
      local: { type: 'filesystem', path: local },
      nas: { type: 'filesystem', path: nas },
      s3: { type: 's3', bucket: BUCKET, prefix: HOST, endpoint: s3Proxy.endpoint, partSizeMiB: 5 },
    };
    // What PostgreSQL's archive_command and restore_command read, as the postgres OS user: a
    // configuration of their own with the public key, and a keyring of their own for wal-fetch.
    const postgresDir = path.join(dir, 'postgres');
    const { publicKeyFile: postgresPublicKey, signingPublicKeyFile: postgresSigningKey, privateHome: postgresKeys } = await postgresReadableKeys(postgresDir, keys);
    stops.push(() => stopAgent(postgresKeys));
    const postgresConfig = path.join(postgresDir, 'backupctl.yaml');
    writeFileSync(
      postgresConfig,
      YAML.stringify({
        host: HOST,
        temporal: { address: `127.0.0.1:${temporalProxy.port}`, namespace: 'default' },
        database: { url: cluster.url(LIVE_DB), binDir: cluster.binDir },
        repositories,
        encryption: { publicKeyFile: postgresPublicKey, privateKeyHome: postgresKeys },
        signing: { publicKeyFiles: [postgresSigningKey] },
        wal: { spool: 'local' },
      }),
      { mode: 0o644 },
    );
    const tmpDir = path.join(dir, 'tmp');
    mkdirSync(tmpDir);
    chmodSync(tmpDir, 0o1777);
    const walCommand = (args: string) => `TMPDIR=${tmpDir} ${process.execPath} ${CLI} --config ${postgresConfig} ${args}`;
    await cluster.query('postgres', `ALTER SYSTEM SET archive_command = '${walCommand('wal-push %p')}'`);
    await cluster.query('postgres', 'SELECT pg_reload_conf()');

    const raw = {
      host: HOST,
      temporal: { address: `127.0.0.1:${temporalProxy.port}`, namespace: 'default' },
      database: { url: cluster.url(LIVE_DB), binDir: cluster.binDir },
      repositories,
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      signing: { privateKeyFile: keys.signing.privateKeyFile, publicKeyFiles: [keys.signing.publicKeyFile] },
      baseBackup: { url: cluster.url('postgres') },
      restore: {
        serverUrl: cluster.url('postgres'),
        workDir: stagingDir,
        jobs: 1,
        services: { units: ['thesis-grey'], stopCommand: [systemctl, 'stop'], startCommand: [systemctl, 'start'] },
      },
      drill: { repository: 's3' },
      wal: { spool: 'local', shipIntervalSeconds: 1 },
      pitr: { restoreCommand: walCommand('wal-fetch %f %p') },
      // info: the worker says 'worker polling' when it is ready.
      logLevel: 'info',
    };
    const configFile = path.join(dir, 'worker.yaml');
    writeFileSync(configFile, YAML.stringify(raw), { mode: 0o600 });
    const config = validateConfig(raw, configFile);
    // The operator's client goes straight to Temporal: only the workers are cut off.
    const direct = validateConfig({ ...raw, temporal: { address: temporal.address, namespace: 'default' } }, configFile);
    const { client, close } = await connectClient(direct);
    stops.unshift(close);
    say(`stack in ${dir}: Temporal ${temporal.address} (workers via :${temporalProxy.port}), PostgreSQL :${cluster.port}, S3 ${s3.endpoint} (via ${s3Proxy.endpoint})`);
    return {
      dir,
      temporal,
      temporalProxy,
      cluster,
      s3,
      s3Proxy,
      s3Identity,
      keys,
      configFile,
      config,
      client,
      repositories: { local, nas },
      nasIsTmpfs,
      stagingDir,
      tmpDir,
      sourceSums,
      sequenceSlack: 0,
      // The workers' temporary folders in this stack's own TMPDIR (its invariants read it).
      workerEnv: { ...s3.env, AWS_ACCESS_KEY_ID: s3Identity.accessKeyId, AWS_SECRET_ACCESS_KEY: s3Identity.secretAccessKey, TMPDIR: tmpDir },
      servicesState: () => readFileSync(servicesFile, 'utf8').trim(),
      stop,
      onStop: (stopper) => stops.unshift(stopper),
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function seed(cluster: PgCluster, size: { users: number; sessionsPerUser: number; activitiesPerSession: number }): Promise<void> {
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  try {
    await createDemoRoles(admin);
    await admin.query(`CREATE DATABASE ${LIVE_DB} OWNER thesis_grey_user`);
  } finally {
    await admin.end();
  }
  const db = new pg.Client({ connectionString: cluster.url(LIVE_DB) });
  await db.connect();
  try {
    await seedDemoData(db, size);
  } finally {
    await db.end();
  }
  await cluster.query('postgres', `CREATE DATABASE ${WAL_DB}`);
  // Rows the WAL and recovery scenarios write; `at` orders them against a recovery target.
  await cluster.query(WAL_DB, 'CREATE TABLE marks (id bigserial PRIMARY KEY, label text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())');
}
