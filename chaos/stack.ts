// What the chaos runs need around them, all real: a Temporal dev server persisted to SQLite
// (so it can be killed and started again on the same file), a TCP proxy between the workers
// and Temporal (cut to isolate a worker while its children run on), PostgreSQL with the
// application's data (left unchanged during the runs, so every restore must equal it), SeaweedFS
// S3 behind a fault-injecting proxy, a NAS repository on a small tmpfs (filled up or turned
// read-only on demand), the key pair, and the application's services as a state file.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import YAML from 'yaml';
import type { Client } from '@temporalio/client';
import { createDemoRoles, seedDemoData } from '../client/dev/demoData.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { startDevTemporal, type DevTemporal } from '../client/dev/temporalServer.js';
import { connectClient } from '../client/temporalClient.js';
import { validateConfig, type Config } from '../workers/config.js';
import { startCluster, tableChecksums, type PgCluster } from '../test/fixtures/postgres.js';
import { freePorts } from '../test/fixtures/ports.js';
import { startS3Server, type S3Server } from '../test/fixtures/seaweedfs.js';
import { startTcpProxy, type TcpProxy } from '../test/fixtures/tcpProxy.js';
import { startS3FaultProxy, type S3FaultProxy } from './s3FaultProxy.js';

export const HOST = 'chaos';
export const LIVE_DB = 'thesis_grey_db';
export const BUCKET = 'backupctl-chaos';
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
  keys: KeyPair;
  configFile: string;
  config: Config;
  client: Client;
  repositories: { local: string; nas: string };
  /** Whether the NAS repository is a tmpfs this run mounted (full and read-only faults need it). */
  nasIsTmpfs: boolean;
  stagingDir: string;
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
}

export async function startChaosStack(say: (line: string) => void, size = { users: 60, sessionsPerUser: 3, activitiesPerSession: 4 }): Promise<ChaosStack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'backupctl-chaos-'));
  const stops: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    for (const s of stops.splice(0)) await s().catch((err) => say(`stopping: ${(err as Error).message}`));
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    const [port, uiPort] = await freePorts(2);
    const temporalDir = path.join(dir, 'temporal');
    let server: DevTemporal = await startDevTemporal(temporalDir, port, uiPort);
    stops.unshift(() => server.stop());
    const temporal = {
      address: server.address,
      async restart() {
        await server.kill();
        server = await startDevTemporal(temporalDir, port, uiPort);
      },
    };
    const temporalProxy = await startTcpProxy(port);
    stops.unshift(() => temporalProxy.stop());

    const [cluster, s3, keys] = await Promise.all([startCluster(), startS3Server(), ensureKeyPair(path.join(dir, 'keys'))]);
    stops.unshift(() => cluster.stop(), () => s3.stop());
    stops.push(() => execa('gpgconf', ['--homedir', keys.privateHome, '--kill', 'gpg-agent']));
    await s3.createBucket(BUCKET);
    const s3Proxy = await startS3FaultProxy(s3.endpoint);
    stops.unshift(() => s3Proxy.stop());

    await seed(cluster, size);
    const sourceSums = await tableChecksums(cluster, LIVE_DB);

    const local = path.join(dir, 'local');
    const nas = path.join(dir, 'nas');
    mkdirSync(local, { mode: 0o700 });
    mkdirSync(nas, { mode: 0o700 });
    const nasIsTmpfs = await execa('mount', ['-t', 'tmpfs', '-o', `size=${NAS_BYTES},mode=0700`, 'chaos-nas', nas]).then(
      () => true,
      (err) => (say(`NAS not on tmpfs (${err.shortMessage}): the full and read-only faults are skipped`), false),
    );
    if (nasIsTmpfs) stops.push(() => execa('umount', ['-l', nas]));

    const stagingDir = path.join(dir, 'staging');
    mkdirSync(stagingDir, { mode: 0o700 });
    const servicesFile = path.join(dir, 'services.state');
    writeFileSync(servicesFile, 'running\n');
    const systemctl = path.join(dir, 'systemctl');
    // stop -> stopped, start -> running: the state the invariants read.
    writeFileSync(systemctl, `#!/bin/bash\ncase "$1" in stop) echo stopped > ${servicesFile};; start) echo running > ${servicesFile};; esac\n`);
    chmodSync(systemctl, 0o755);

    const raw = {
      host: HOST,
      temporal: { address: `127.0.0.1:${temporalProxy.port}`, namespace: 'default' },
      database: { url: cluster.url(LIVE_DB), binDir: cluster.binDir },
      repositories: {
        local: { type: 'filesystem', path: local },
        nas: { type: 'filesystem', path: nas },
        s3: { type: 's3', bucket: BUCKET, prefix: HOST, endpoint: s3Proxy.endpoint, partSizeMiB: 5 },
      },
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
      keys,
      configFile,
      config,
      client,
      repositories: { local, nas },
      nasIsTmpfs,
      stagingDir,
      sourceSums,
      sequenceSlack: 0,
      workerEnv: { ...s3.env },
      servicesState: () => readFileSync(servicesFile, 'utf8').trim(),
      stop,
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
}
