// Attack round 4: secrets in the environment of the server a point-in-time recovery starts.
// Every child process inherits the worker's environment; one of them is not short-lived: the
// recovered PostgreSQL server (pg_ctl start, as the `postgres` OS user when the worker runs as
// root), which after the cutover serves the application for months. Its postmaster and every
// backend carry the worker's environment: the Temporal payload keys (which decrypt every
// history: SECURITY.md, "keys only from the worker's and CLI's environment") and the live
// database's PGPASSWORD. The `postgres` OS user reads them in /proc/<pid>/environ, and so does
// any superuser of the recovered cluster (pg_read_binary_file('/proc/<postmaster>/environ')).
//
// What the server does need stays: its restore_command (`backupctl wal-fetch`) reads the
// repositories, S3 ones with the AWS variables. See the report for that limit.
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { ensureCluster } from '../engine/localCluster.js';
import { resolveBinDir } from '../engine/postgres.js';
import { claimDataDirectory, startCluster, stopCluster } from '../engine/recoveryCluster.js';
import { freePort } from './fixtures/ports.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'attack4-serverenv-'));
const binDir = resolveBinDir();
const dataDir = path.join(dir, 'data');
let port: number;

const PLANTED = {
  BACKUPCTL_PAYLOAD_KEYS: `k2026:${Buffer.alloc(32, 9).toString('base64')}`,
  PGPASSWORD: 'planted-live-database-password-4f1c',
};

beforeAll(async () => {
  // The server runs as `postgres` when the tests run as root: it must reach its folder.
  chmodSync(dir, 0o755);
  port = await freePort();
  // A cluster as a recovery prepares one: in a folder of its run, initialised, not running.
  await claimDataDirectory(dataDir, { workflowId: 'pitr-attack4', runId: 'a4a4a4a4-0000-4000-8000-000000000004' }, port, binDir);
  const cluster = await ensureCluster({ dataDir, port, binDir });
  await cluster.stop('fast');
}, 120_000);

afterAll(async () => {
  await stopCluster(dataDir, binDir).catch(() => undefined);
  for (const name of Object.keys(PLANTED)) delete process.env[name];
  rmSync(dir, { recursive: true, force: true });
});

test('the server a recovery starts does not carry the payload keys or the database password in its environment', async () => {
  Object.assign(process.env, PLANTED);
  await startCluster(dataDir, binDir, {});
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  for (let i = 0; ; i++) {
    try {
      await client.connect();
      break;
    } catch (err) {
      if (i > 120) throw err;
      await sleep(250);
    }
  }
  // What any superuser of the recovered cluster reads: the postmaster's environment.
  let backendEnv: string;
  try {
    backendEnv = (await client.query<{ env: string }>("SELECT encode(pg_read_binary_file('/proc/' || split_part(pg_read_file('postmaster.pid'), E'\\n', 1) || '/environ'), 'escape') AS env")).rows[0].env;
  } finally {
    await client.end();
  }
  const postmasterPid = readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0].trim();
  const postmasterEnv = readFileSync(`/proc/${postmasterPid}/environ`, 'utf8');
  for (const [name, value] of Object.entries(PLANTED)) {
    expect({ name, readBySuperuser: backendEnv.includes(value) }).toEqual({ name, readBySuperuser: false });
    expect({ name, inPostmaster: postmasterEnv.includes(value) }).toEqual({ name, inPostmaster: false });
  }
}, 120_000);
