// The embedded stack's offsite repository: SeaweedFS (master, volume, filer and S3 gateway in
// one `weed server`), its data kept under the dev state folder, on fixed loopback ports, with
// credentials of its own made once and kept beside it (mode 0600). An S3 API already answering
// on its port (an earlier `backupctl dev` still serving) is reused, as the Temporal dev server is.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateBucketCommand, HeadBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { execa, type ResultPromise } from 'execa';
import { projectTool } from './tools.js';

const START_TIMEOUT_MS = 90_000;

export interface WeedPorts {
  master: number;
  masterGrpc: number;
  volume: number;
  volumeGrpc: number;
  filer: number;
  filerGrpc: number;
  s3: number;
  s3Grpc: number;
}

/**
 * `weed server`'s arguments: everything on loopback, every port explicit (weed derives gRPC
 * ports as http+10000 otherwise, which may be taken), no bucket made by an upload (as on AWS).
 * The test fixture (test/fixtures/seaweedfs.ts) starts its servers with the same.
 */
export function weedServerArgs(ports: WeedPorts, dirs: { data: string; tmp: string }, s3ConfigFile: string): string[] {
  return [
    'server',
    `-dir=${dirs.data}`,
    '-ip=127.0.0.1',
    '-ip.bind=127.0.0.1',
    `-master.port=${ports.master}`,
    `-master.port.grpc=${ports.masterGrpc}`,
    `-volume.port=${ports.volume}`,
    `-volume.port.grpc=${ports.volumeGrpc}`,
    '-filer',
    `-filer.port=${ports.filer}`,
    `-filer.port.grpc=${ports.filerGrpc}`,
    `-filer.localSocket=${path.join(dirs.tmp, 'filer.sock')}`,
    '-s3',
    `-s3.port=${ports.s3}`,
    `-s3.port.grpc=${ports.s3Grpc}`,
    `-s3.localSocket=${path.join(dirs.tmp, 's3.sock')}`,
    `-s3.config=${s3ConfigFile}`,
    '-s3.autoCreateBucket=false',
    // Iceberg and Lance catalogs would listen on fixed default ports and collide.
    '-s3.port.iceberg=0',
    '-s3.port.lance=0',
    '-master.telemetry=false',
    // Single-master: without it the master waits for raft peers that never come.
    '-master.peers=none',
    // The default 30 GiB volumes and a cap of 8 volumes run out once a few buckets exist.
    '-master.volumeSizeLimitMB=64',
    '-volume.max=0',
    '-volume.preStopSeconds=0',
  ];
}

/** The S3 identities file weed reads (-s3.config): one identity with these keys. */
export function weedS3Identities(name: string, accessKeyId: string, secretAccessKey: string): string {
  return JSON.stringify({ identities: [{ name, credentials: [{ accessKey: accessKeyId, secretKey: secretAccessKey }], actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'] }] });
}

export interface DevS3 {
  endpoint: string;
  bucket: string;
  region: string;
  /** An AWS shared-credentials file with the server's keys (profile `default`). */
  credentialsFile: string;
  started: boolean;
  stop(): Promise<void>;
}

/** Starts (or reuses) the dev SeaweedFS under `dir`; its S3 API on 127.0.0.1:`s3Port`, the other ports just above it. */
export async function startDevS3(dir: string, s3Port: number, bucket: string): Promise<DevS3> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keys = devKeys(dir);
  const credentialsFile = path.join(dir, 'credentials');
  writeFileSync(credentialsFile, `[default]\naws_access_key_id = ${keys.accessKeyId}\naws_secret_access_key = ${keys.secretAccessKey}\n`, { mode: 0o600 });
  const region = 'us-east-1';
  const endpoint = `http://127.0.0.1:${s3Port}`;
  const s3Client = (credentials: typeof keys) =>
    new S3Client({ region, endpoint, forcePathStyle: true, credentials, maxAttempts: 1, requestHandler: { connectionTimeout: 1_000, requestTimeout: 5_000 } });
  const client = s3Client(keys);
  let server: ResultPromise | undefined;
  try {
    const answering = await client.send(new ListBucketsCommand({})).then(
      () => true,
      () => false,
    );
    // Ours knows the secret: it refuses the same key id signed with another. A server that takes
    // both (another user's, one without identities, anything that says 200) would be handed the
    // stack's backups and WAL: refused.
    if (answering && !(await refusesWrongSecret(s3Client({ accessKeyId: keys.accessKeyId, secretAccessKey: randomBytes(20).toString('hex') })))) {
      throw new Error(`an S3 API answers on ${endpoint} that takes requests signed with any secret: not this stack's SeaweedFS (its keys are in ${path.join(dir, 'keys.json')}); stop it, or move the stack's ports (--port-offset)`);
    }
    if (!answering) {
      const data = path.join(dir, 'data');
      const tmp = path.join(dir, 'tmp');
      mkdirSync(data, { recursive: true, mode: 0o700 });
      mkdirSync(tmp, { recursive: true, mode: 0o700 });
      const s3Config = path.join(dir, 's3.json');
      writeFileSync(s3Config, weedS3Identities('backupctl-dev', keys.accessKeyId, keys.secretAccessKey), { mode: 0o600 });
      const ports: WeedPorts = { s3: s3Port, s3Grpc: s3Port + 1, master: s3Port + 2, masterGrpc: s3Port + 3, volume: s3Port + 4, volumeGrpc: s3Port + 5, filer: s3Port + 6, filerGrpc: s3Port + 7 };
      server = execa(projectTool('weed'), weedServerArgs(ports, { data, tmp }, s3Config), {
        cwd: dir,
        stdio: ['ignore', 'ignore', 'pipe'],
        buffer: false,
        env: { ...process.env, TMPDIR: tmp },
      });
      let tail = '';
      server.stderr?.on('data', (chunk: Buffer) => (tail = (tail + chunk.toString()).slice(-2000)));
      let exited: string | undefined;
      server.catch((err: Error) => (exited = `weed exited: ${err.message}`));
      const deadline = Date.now() + START_TIMEOUT_MS;
      // The S3 API answers before the volume server has joined: the bucket's first write would stall.
      while (!(await ready(client, ports.master))) {
        if (exited || Date.now() > deadline) throw new Error(`SeaweedFS did not start on ${endpoint}: ${exited ?? `not ready within ${START_TIMEOUT_MS / 1000} s`}${tail.trim() ? `\n${tail.trim()}` : ''}`);
        await sleep(300);
      }
    }
    const exists = await client.send(new HeadBucketCommand({ Bucket: bucket })).then(
      () => true,
      () => false,
    );
    if (!exists) await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (err) {
    server?.kill('SIGKILL');
    await server?.catch(() => undefined);
    throw err;
  } finally {
    client.destroy();
  }
  return {
    endpoint,
    bucket,
    region,
    credentialsFile,
    started: Boolean(server),
    async stop() {
      if (!server) return;
      // SIGTERM: the dev data is kept, and weed flushes it (the filer may take a few seconds).
      server.kill('SIGTERM');
      const killer = setTimeout(() => server?.kill('SIGKILL'), 20_000);
      await server.catch(() => undefined);
      clearTimeout(killer);
    },
  };
}

function devKeys(dir: string): { accessKeyId: string; secretAccessKey: string } {
  const file = path.join(dir, 'keys.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as { accessKeyId: string; secretAccessKey: string };
  const keys = { accessKeyId: `dev${randomBytes(6).toString('hex')}`, secretAccessKey: randomBytes(20).toString('hex') };
  writeFileSync(file, JSON.stringify(keys), { mode: 0o600, flag: 'wx' });
  return keys;
}

/** True when the server refuses (HTTP 403) a request signed with a wrong secret. */
async function refusesWrongSecret(client: S3Client): Promise<boolean> {
  try {
    await client.send(new ListBucketsCommand({}));
    return false;
  } catch (err) {
    return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 403;
  } finally {
    client.destroy();
  }
}

async function ready(client: S3Client, masterPort: number): Promise<boolean> {
  try {
    await client.send(new ListBucketsCommand({}));
    await volumeServerJoined(masterPort);
    return true;
  } catch {
    return false;
  }
}

/**
 * Throws until a volume server has joined weed's master: the S3 API answers before that, and a
 * bucket's first write stalls for seconds in volume growth meanwhile ("Not enough data nodes").
 */
export async function volumeServerJoined(masterPort: number): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${masterPort}/dir/status`, { signal: AbortSignal.timeout(2_000) });
  const status = (await response.json()) as { Topology?: { DataCenters?: { Racks?: { DataNodes?: unknown[] }[] }[] } };
  const nodes = (status.Topology?.DataCenters ?? []).flatMap((dc) => (dc.Racks ?? []).flatMap((rack) => rack.DataNodes ?? []));
  if (nodes.length === 0) throw new Error('no volume server in the master topology yet');
}
