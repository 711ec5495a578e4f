// What the workflow contenders need around them: a Temporal dev server, a SeaweedFS S3 server,
// a key pair, worker configurations per database (the database host's, and a restoring
// host's that sees only the S3 copy), and a client.
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import YAML from 'yaml';
import type { Client } from '@temporalio/client';
import { DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { DEMO_KEY_TABLES } from '../client/dev/demoData.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { startDevTemporal, type DevTemporal } from '../client/dev/temporalServer.js';
import { connectClient } from '../client/temporalClient.js';
import { validateConfig, type Config } from '../common/config.js';
import type { PgCluster } from '../test/fixtures/postgres.js';
import { freePorts } from '../test/fixtures/ports.js';
import { startS3Server, type S3Server } from '../test/fixtures/seaweedfs.js';

export const BENCH_HOST = 'bench';
/** The host that verifies and drills: it holds the private key and restores into scratch databases. */
export const RESTORE_HOST = 'bench-restore';
/** pg_restore -j on both sides of the restore comparison (the issue's `-j2`). */
export const RESTORE_JOBS = 2;
export const BUCKET = 'backupctl-bench';

export interface WorkflowStack {
  dir: string;
  temporal: DevTemporal;
  s3: S3Server;
  keys: KeyPair;
  client: Client;
  /**
   * The worker's configuration file for a database (written once, validated). Key tables:
   * the demo's three Django tables, or 'all' (every table counted: the default of a
   * configuration that names none).
   */
  configFor(database: string, keyTables?: 'demo' | 'all'): { file: string; config: Config };
  /**
   * The restoring host's configuration for a database: only the S3 repository (the database
   * host's prefix), so every restore fetches from S3; the private key; scratch databases on
   * the reference cluster, staged under the stack's folder.
   */
  restoreConfigFor(database: string): { file: string; config: Config };
  /** Removes every stored backup from the three repositories (between runs, untimed). */
  clearRepositories(): Promise<void>;
  stop(): Promise<void>;
}

export async function startWorkflowStack(dir: string, cluster: PgCluster, say: (line: string) => void): Promise<WorkflowStack> {
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.splice(0)) await s().catch((err) => say(`stopping: ${(err as Error).message}`));
  };
  try {
    const [port, uiPort] = await freePorts(2);
    const [temporal, s3, keys] = await Promise.all([
      startDevTemporal(path.join(dir, 'temporal'), port, uiPort).then((t) => (stops.unshift(t.stop), t)),
      startS3Server().then((s) => (stops.unshift(s.stop), s)),
      ensureKeyPair(path.join(dir, 'keys')),
    ]);
    // ensureKeyPair's gpg started an agent for the private keyring; it would outlive the folder.
    stops.push(async () => {
      await execa('gpgconf', ['--homedir', keys.privateHome, '--kill', 'gpg-agent']).catch(() => undefined);
    });
    await s3.createBucket(BUCKET);
    // The worker process inherits these (credentials; the endpoint is also in the config).
    Object.assign(process.env, s3.env);
    say(`Temporal dev server at ${temporal.address}, SeaweedFS S3 at ${s3.endpoint}`);

    const repoRoot = path.join(dir, 'repositories');
    const s3Repository = { type: 's3', bucket: BUCKET, prefix: 'bench', endpoint: s3.endpoint };
    const configs = new Map<string, { file: string; config: Config }>();
    /** Writes (once) and validates a worker configuration. */
    const writeConfig = (name: string, raw: Record<string, unknown>) => {
      let found = configs.get(name);
      if (!found) {
        const file = path.join(dir, `worker-${name}.yaml`);
        writeFileSync(file, YAML.stringify(raw), { mode: 0o600 });
        found = { file, config: validateConfig(raw, file) };
        configs.set(name, found);
      }
      return found;
    };
    const common = {
      temporal: { address: temporal.address, namespace: 'default' },
      // info: the worker says 'worker polling' when it is ready.
      logLevel: 'info',
    };
    const configFor = (database: string, keyTables: 'demo' | 'all' = 'demo') =>
      writeConfig(keyTables === 'demo' ? database : `${database}-keytables-${keyTables}`, {
        host: BENCH_HOST,
        ...common,
        database: { url: cluster.url(database), binDir: cluster.binDir, keyTables: keyTables === 'demo' ? DEMO_KEY_TABLES : 'all' },
        // local and nas are two folders on the same disk here; on a real host nas is a mount.
        repositories: {
          local: { type: 'filesystem', path: path.join(repoRoot, 'local') },
          nas: { type: 'filesystem', path: path.join(repoRoot, 'nas') },
          s3: s3Repository,
        },
        encryption: { publicKeyFile: keys.publicKeyFile },
        signing: { privateKeyFile: keys.signing.privateKeyFile },
      });
    const stagingDir = path.join(dir, 'restore-staging');
    mkdirSync(stagingDir, { recursive: true, mode: 0o700 });
    const restoreConfigFor = (database: string) =>
      writeConfig(`${RESTORE_HOST}-${database}`, {
        host: RESTORE_HOST,
        ...common,
        database: { url: cluster.url(database), binDir: cluster.binDir, keyTables: DEMO_KEY_TABLES },
        repositories: { s3: s3Repository },
        encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
        signing: { publicKeyFiles: [keys.signing.publicKeyFile] },
        // The same cluster as the reference data: the bare pg_restore restores there too.
        restore: { serverUrl: cluster.url('postgres'), jobs: RESTORE_JOBS, workDir: stagingDir },
      });

    const { client, close } = await connectClient(configFor('postgres').config);
    stops.unshift(close);

    const clearRepositories = async () => {
      await rm(path.join(repoRoot, 'local', 'database'), { recursive: true, force: true });
      await rm(path.join(repoRoot, 'nas', 'database'), { recursive: true, force: true });
      let token: string | undefined;
      do {
        const page = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'bench/', ContinuationToken: token }));
        for (const object of page.Contents ?? []) await s3.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: object.Key }));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    };

    return { dir, temporal, s3, keys, client, configFor, restoreConfigFor, clearRepositories, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
