// Issue 9: secrets stay secret. A database password (in the URL), the restore server's
// password (in a password file), the S3 secret key (in the environment) and the private key's
// passphrase (in a passphrase file) are planted; every workflow runs on real components
// (Temporal dev server, PostgreSQL archiving through `backupctl wal-push`, SeaweedFS, gpg), on
// a real `backupctl worker` process and through the CLI. Then every place a run leaves text is
// searched for each secret in every form: workflow histories (raw bytes of every event, payload
// and failure), the worker's and every CLI run's output, PostgreSQL's logs (archive_command
// and restore_command write there), every command line seen while it ran (sampled from /proc
// every 100 ms, and every execve traced by strace), every unencrypted object of every
// repository (manifests, claims, reports, WAL entries), and `status` and `backups list`.
// The environment of child processes is not searched: that is where PGPASSWORD and the S3
// key legitimately travel. Alerts do not exist yet (issue 13).
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import proto from '@temporalio/proto';
import { execa, type Options, type Result, type ResultPromise } from 'execa';
import YAML from 'yaml';
import { stopAgent } from '../engine/encryption.js';
import { serverOwner } from '../engine/localCluster.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { walShippingQuery } from '../workflows/messages.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';
import { startS3Server, type S3Server } from './fixtures/seaweedfs.js';
import { attachStrace, execveLines, haveStrace, readStraceLog, sampleCommandLines, SecretSearch, STRACE, straceArgs, type Secret } from './fixtures/secretSearch.js';
import { startTemporal } from './fixtures/temporal.js';

const CLI = path.resolve('bin/backupctl.js');
const HOST = 'db';
const BUCKET = 'secrets-test';
const api = proto.temporal.api;
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

// Distinctive values, each with random parts long enough that no other text holds them by chance,
// and characters that change under percent-encoding and base64.
const dbParts = [`DbPw${hex(6)}`, hex(6)];
const adminParts = [`AdminPw${hex(6)}`, hex(6)];
const passParts = [`Phrase${hex(6)}`, hex(6)];
const DB_PASSWORD = `${dbParts[0]}@ pl/ä${dbParts[1]}`;
const ADMIN_PASSWORD = `${adminParts[0]}:%${adminParts[1]}`;
const PASSPHRASE = `${passParts[0]} ü ${passParts[1]}`;
// A fifth, where operators might put one: basic-auth credentials in the drill's health URL.
const healthParts = [`HealthPw${hex(6)}`, hex(6)];
const HEALTH_PASSWORD = `${healthParts[0]}/${healthParts[1]}`;

let temporal: TestWorkflowEnvironment;
let primary: PgCluster;
let s3: S3Server;
let keys: KeyPair;
let dir: string;
let workDir: string;
let configFile: string;
let postgresKeys: string;
let secrets: Secret[];
let search: SecretSearch;
let worker: ResultPromise | undefined;
const workerLog: Buffer[] = [];
let archiverTrace: ResultPromise | undefined;
const traces: string[] = [];
const cliRuns: { args: string[]; result: Result }[] = [];
const sampler = sampleCommandLines(100);
const timings: Record<string, number> = {};

function writeYaml(file: string, value: object, mode = 0o600) {
  writeFileSync(file, YAML.stringify(value), { mode });
}

/** A command under strace when it is there, so every process it starts has its argv logged. */
function traced(file: string, args: string[], options: Options = {}): ResultPromise {
  if (!haveStrace) return execa(file, args, options) as ResultPromise;
  const log = path.join(dir, 'traces', `trace-${traces.length}.log`);
  traces.push(log);
  return execa(STRACE, [...straceArgs(log), file, ...args], options) as ResultPromise;
}

async function cli(args: string[]): Promise<Result> {
  const result = await traced('node', [CLI, '--config', configFile, ...args], { reject: false, timeout: 120_000 });
  cliRuns.push({ args, result });
  return result;
}

async function cliJson(args: string[]): Promise<any> {
  const started = Date.now();
  const run = await cli([...args, '--json']);
  timings[args.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ')] = (Date.now() - started) / 1000;
  try {
    return JSON.parse(run.stdout as string);
  } catch {
    throw new Error(`backupctl ${args.join(' ')} printed no JSON (exit ${run.exitCode}):\n${run.stdout}\n${run.stderr}`);
  }
}

async function until(what: string, check: () => Promise<boolean>, seconds = 60) {
  const deadline = Date.now() + seconds * 1000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  const started = Date.now();
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-secrets-'));
  // PostgreSQL's own processes (archive_command, restore_command) run as postgres and read here.
  chmodSync(dir, 0o755);
  mkdirSync(path.join(dir, 'traces'));
  const owner = serverOwner();
  const passphraseFile = path.join(dir, 'passphrase');
  writeFileSync(passphraseFile, `${PASSPHRASE}\n`, { mode: 0o600 });
  [temporal, primary, s3, keys] = await Promise.all([
    startTemporal(),
    startCluster({ archive: true, extraConf: ['archive_timeout = 60'] }),
    startS3Server(),
    ensureKeyPair(path.join(dir, 'keys'), 'secrets test <secrets@localhost.invalid>', passphraseFile),
  ]);
  await s3.createBucket(BUCKET);
  // The S3 key reaches every process the way operators give it: the environment.
  Object.assign(process.env, s3.env);
  secrets = [
    { name: 'database password', value: DB_PASSWORD, parts: dbParts },
    { name: 'restore server password', value: ADMIN_PASSWORD, parts: adminParts },
    { name: 'S3 secret key', value: s3.secretAccessKey, parts: [s3.secretAccessKey.slice(0, 20), s3.secretAccessKey.slice(20)] },
    { name: 'key passphrase', value: PASSPHRASE, parts: passParts },
    { name: 'health URL password', value: HEALTH_PASSWORD, parts: healthParts },
  ];
  search = new SecretSearch(secrets);

  // The application's role logs in with the planted password (and may stream a base backup);
  // the restore server's role with another, from a password file.
  await primary.query('postgres', `CREATE ROLE app_owner LOGIN REPLICATION PASSWORD '${DB_PASSWORD}'`);
  await primary.query('postgres', `CREATE ROLE restore_admin LOGIN SUPERUSER PASSWORD '${ADMIN_PASSWORD}'`);
  await primary.query('postgres', 'CREATE DATABASE appdb OWNER app_owner');
  const hba = (await primary.query<{ hba_file: string }>('postgres', 'SHOW hba_file')).rows[0].hba_file;
  const scram = ['all', 'replication'].flatMap((db) => ['app_owner', 'restore_admin'].map((role) => `host ${db} ${role} 127.0.0.1/32 scram-sha-256`));
  writeFileSync(hba, `${scram.join('\n')}\n${readFileSync(hba, 'utf8')}`);
  await primary.query('postgres', 'SELECT pg_reload_conf()');
  await primary.query('appdb', 'CREATE TABLE auth_user (id int PRIMARY KEY, username text NOT NULL); ALTER TABLE auth_user OWNER TO app_owner');
  await primary.query('appdb', "INSERT INTO auth_user SELECT g, 'user-' || g FROM generate_series(1, 500) g");
  // backupctl check switches a segment to see it arrive (functions' grants are per database).
  await primary.query('appdb', 'GRANT EXECUTE ON FUNCTION pg_switch_wal() TO app_owner');

  workDir = path.join(dir, 'work');
  mkdirSync(workDir, { mode: 0o755 });
  mkdirSync(path.join(dir, 'local'), { mode: 0o700 });
  owner.chown(path.join(dir, 'local'));
  copyFileSync(keys.publicKeyFile, path.join(dir, 'public.asc'));
  chmodSync(path.join(dir, 'public.asc'), 0o644);
  copyFileSync(keys.signing.publicKeyFile, path.join(dir, 'signing-public.pem'));
  chmodSync(path.join(dir, 'signing-public.pem'), 0o644);
  // restore_command's own keyring and passphrase file, readable by the postgres OS user.
  postgresKeys = path.join(dir, 'gnupg-postgres');
  cpSync(keys.privateHome, postgresKeys, { recursive: true, filter: (src) => !/S\.gpg-agent|\.lock$/.test(src) });
  const postgresPassphrase = path.join(dir, 'passphrase-postgres');
  copyFileSync(passphraseFile, postgresPassphrase);
  await execa('chown', ['-R', `${owner.spawn.uid}:${owner.spawn.gid}`, postgresKeys, postgresPassphrase]);
  const adminPasswordFile = path.join(dir, 'restore-password');
  writeFileSync(adminPasswordFile, `${ADMIN_PASSWORD}\n`, { mode: 0o600 });
  const servicesDir = path.join(dir, 'services');
  mkdirSync(servicesDir);
  writeFileSync(path.join(servicesDir, 'systemctl'), `#!/bin/bash\necho "$1 $2" >> ${servicesDir}/calls\n`, { mode: 0o755 });

  const base = {
    host: HOST,
    temporal: { address: temporal.address, namespace: 'default' },
    database: { url: `postgres://app_owner:${encodeURIComponent(DB_PASSWORD)}@127.0.0.1:${primary.port}/appdb`, keyTables: ['auth_user'] },
    repositories: {
      local: { type: 'filesystem', path: path.join(dir, 'local') },
      nas: { type: 'filesystem', path: path.join(dir, 'nas') },
      s3: { type: 's3', bucket: BUCKET, prefix: HOST, endpoint: s3.endpoint, partSizeMiB: 5 },
    },
    encryption: { publicKeyFile: path.join(dir, 'public.asc') },
    signing: { privateKeyFile: keys.signing.privateKeyFile, publicKeyFiles: [path.join(dir, 'signing-public.pem')] },
    // The host's own spool, named: its unsigned WAL entries are replayed.
    wal: { spool: 'local' },
    // The most a log can hold: every level, the Temporal runtime's too.
    logLevel: 'debug',
  };
  const postgresConfig = path.join(dir, 'postgres.yaml');
  // archive_command and restore_command sign nothing: the postgres user gets no signing key.
  writeYaml(postgresConfig, { ...base, signing: { publicKeyFiles: base.signing.publicKeyFiles }, encryption: { ...base.encryption, privateKeyHome: postgresKeys, passphraseFile: postgresPassphrase } });
  await execa('chown', [`${owner.spawn.uid}:${owner.spawn.gid}`, postgresConfig]);
  configFile = path.join(dir, 'worker.yaml');
  writeYaml(configFile, {
    ...base,
    encryption: { ...base.encryption, privateKeyHome: keys.privateHome, passphraseFile },
    restore: {
      serverUrl: `postgres://restore_admin@127.0.0.1:${primary.port}/postgres`,
      passwordFile: adminPasswordFile,
      workDir,
      jobs: 2,
      checks: [{ name: 'users exist', sql: 'SELECT count(*) > 0 FROM auth_user' }],
      services: { units: ['web'], stopCommand: [path.join(servicesDir, 'systemctl'), 'stop'], startCommand: [path.join(servicesDir, 'systemctl'), 'start'] },
    },
    drill: { host: HOST, repository: 's3' },
    wal: { ...base.wal, shipIntervalSeconds: 1 },
    pitr: { restoreCommand: `${process.execPath} ${CLI} --config ${postgresConfig} wal-fetch %f %p` },
  });
  await primary.query('postgres', `ALTER SYSTEM SET archive_command = '${process.execPath} ${CLI} --config ${postgresConfig} wal-push %p'`);
  await primary.query('postgres', 'SELECT pg_reload_conf()');
  // archive_command runs in children of the archiver: trace it from here on. This cluster's
  // archiver (its postmaster's child), not another test's or another cluster's on the machine.
  const postmaster = readFileSync(path.join(primary.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0].trim();
  const parentOf = (p: string) => readFileSync(`/proc/${p}/stat`, 'latin1').replace(/^.*\) \S+ /, '').split(' ')[0];
  const archiver = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .find((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'latin1').startsWith('postgres: archiver') && parentOf(p) === postmaster;
      } catch {
        return false;
      }
    });
  if (haveStrace && archiver) {
    traces.push(path.join(dir, 'traces', 'archiver.log'));
    archiverTrace = attachStrace([Number(archiver)], traces.at(-1)!);
  }
  // Its stderr read as it comes: the pipe may outlive the worker in a daemon it started.
  worker = traced('node', [CLI, '--config', configFile, 'worker'], { detached: true, reject: false, stdio: ['ignore', 'ignore', 'pipe'], buffer: false });
  worker.stderr!.on('data', (chunk: Buffer) => workerLog.push(chunk));
  timings.setup = (Date.now() - started) / 1000;
}, 120_000);

afterAll(async () => {
  await sampler.stop();
  if (worker?.pid) {
    try {
      process.kill(-worker.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  archiverTrace?.kill('SIGINT');
  for (const data of existsSync(workDir) ? readdirSync(workDir) : []) {
    const dataDir = path.join(workDir, data, 'data');
    if (!existsSync(dataDir)) continue;
    await execa(path.join(primary.binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', 'stop'], { reject: false, uid: serverOwner().spawn.uid, gid: serverOwner().spawn.gid });
  }
  await primary?.stop();
  await s3?.stop();
  await temporal?.teardown();
  if (keys) await stopAgent(keys.privateHome);
  if (postgresKeys) await stopAgent(postgresKeys);
  // SECRETS_KEEP=<folder> keeps the strace logs, to see where a leak came from.
  if (process.env.SECRETS_KEEP) cpSync(path.join(dir, 'traces'), process.env.SECRETS_KEEP, { recursive: true });
  rmSync(dir, { recursive: true, force: true });
});

test('every workflow runs with the planted secrets in use', async () => {
  const backup = await cliJson(['backup', 'database', '--wait', '--workflow-id', 'secrets-backup-database']);
  expect(backup).toMatchObject({ backupId: expect.any(String) });
  const baseBackup = await cliJson(['backup', 'base', '--wait', '--workflow-id', 'secrets-backup-base']);
  expect(baseBackup).toMatchObject({ component: 'base', backupId: expect.any(String) });
  expect((await cliJson(['wal', 'ship'])).workflowId).toBe(`wal-shipping-${HOST}`);
  // Archiving works; the configuration archives WAL but schedules no base backup (no baseBackup.url): check says so.
  expect(await cliJson(['check'])).toMatchObject({ ok: false, problems: [], configuration: { problems: [expect.stringContaining('baseBackup.url is not set')] } });

  // Rows, a restore point, and the segment switched: archived by wal-push, shipped to NAS and S3.
  await primary.query('appdb', "INSERT INTO auth_user VALUES (1001, 'after-base')");
  await primary.query('postgres', "SELECT pg_create_restore_point('secrets-point')");
  const last = (await primary.query<{ name: string }>('postgres', 'SELECT pg_walfile_name(pg_switch_wal()) AS name')).rows[0].name;
  const shipping = temporal.client.workflow.getHandle(`wal-shipping-${HOST}`);
  await until('the switched segment in NAS and S3', async () => {
    const state = await shipping.query(walShippingQuery).catch(() => undefined);
    return Boolean(state && ['nas', 's3'].every((r) => (state.repositories[r]?.newestSegment ?? '') >= last && state.repositories[r].behind === 0));
  });

  const verified = await cliJson(['verify', 'latest', '--wait', '--workflow-id', 'secrets-verify']);
  expect(verified).toMatchObject({ ok: true });
  const drill = await cliJson(['drill', '--wait', '--workflow-id', 'secrets-drill']);
  expect(drill).toMatchObject({ ok: true });
  // Credentials in the health URL: refused with the configuration, never carried into the
  // drill's input (its history), its report or the output.
  const withHealthUrl = path.join(dir, 'health-url.yaml');
  writeYaml(withHealthUrl, { ...YAML.parse(readFileSync(configFile, 'utf8')), drill: { host: HOST, repository: 's3', healthUrl: `http://probe:${encodeURIComponent(HEALTH_PASSWORD)}@127.0.0.1:9/health` } });
  const healthDrill = await cli(['--config', withHealthUrl, 'drill', '--wait', '--json', '--workflow-id', 'secrets-drill-health']);
  expect(JSON.parse(healthDrill.stdout as string)).toMatchObject({ ok: false, error: { type: 'InvalidConfig', message: expect.stringContaining('drill.healthUrl') } });
  const restored = await cliJson(['restore', 'database', 'latest', '--into', 'appdb_restored', '--wait', '--workflow-id', 'secrets-restore-new']);
  expect(restored).toMatchObject({ restored: expect.anything() });
  // A failure that goes through the restore server's connection: its message and the failed
  // workflow (which `status` lists) are searched too.
  const refused = await cliJson(['restore', 'database', 'latest', '--into', 'appdb_restored', '--wait', '--workflow-id', 'secrets-restore-taken']);
  expect(refused).toMatchObject({ ok: false, error: { type: 'TargetDatabaseExists' } });
  const replaced = await cliJson(['restore', 'database', 'latest', '--replace', '--wait', '--workflow-id', 'secrets-restore-replace']);
  expect(replaced.swap).toMatchObject({ live: 'appdb' });
  const recovered = await cliJson(['pitr', 'start', '--target-name', 'secrets-point', '--wait', '--workflow-id', 'secrets-pitr']);
  expect(recovered.cluster).toMatchObject({ port: expect.any(Number) });
  const rows = await execa(path.join(primary.binDir, 'psql'), ['-h', '127.0.0.1', '-p', String(recovered.cluster.port), '-U', 'postgres', '-d', 'appdb', '-Atc', 'SELECT count(*) FROM auth_user']);
  expect(rows.stdout).toBe('501');

  for (const args of [['status'], ['backups', 'list']]) {
    await cli(args);
    await cli([...args, '--json']);
  }
  const status = JSON.parse(cliRuns.at(-3)!.result.stdout as string);
  expect(status.recentFailures).toEqual(expect.arrayContaining([expect.objectContaining({ workflowId: 'secrets-restore-taken' })]));
}, 300_000);

describe('the search', () => {
  beforeAll(async () => {
    const started = Date.now();
    await temporal.client.workflow.getHandle(`wal-shipping-${HOST}`).terminate('the secrets test is over');
    // A clean stop: strace writes its log out, the worker's last lines reach stderr.
    const phase = (name: string, since: number) => (timings[name] = (Date.now() - since) / 1000);
    let at = Date.now();
    if (worker?.pid) {
      // Under strace, the worker is strace's child; strace itself is detached last, since
      // daemons the worker started (gpg-agent, the recovered cluster) would keep it running.
      const node = haveStrace ? Number(readFileSync(`/proc/${worker.pid}/task/${worker.pid}/children`, 'utf8').trim().split(/\s+/)[0]) : worker.pid;
      const exited = new Promise((resolve) => worker!.once('exit', resolve));
      process.kill(node, 'SIGTERM');
      await until('the worker to stop', async () => !existsSync(`/proc/${node}`) || /^\S+ \(.*\) Z/.test(readFileSync(`/proc/${node}/stat`, 'latin1')), 30);
      if (haveStrace) process.kill(worker.pid, 'SIGINT');
      await exited;
    }
    phase('stopping the worker', at);
    at = Date.now();
    archiverTrace?.kill('SIGINT');
    await archiverTrace;
    await sampler.stop();
    phase('stopping the tracers', at);
    at = Date.now();
    await searchEverything();
    phase('searching', at);
    timings.search = (Date.now() - started) / 1000;
    console.log(JSON.stringify({ timings, searched: search.searched, argvSamples: sampler.samples, distinctArgv: sampler.seen.size }, null, 2));
  }, 120_000);

  test('the planted values are really in use, and the search finds them where they belong (positive controls)', () => {
    // The worker's configuration holds the database password (percent-encoded in the URL).
    expect(search.wouldFind(readFileSync(configFile))).toEqual(expect.arrayContaining(['database password/percentEncoded']));
    expect(search.wouldFind(readFileSync(path.join(dir, 'passphrase')))).toEqual(expect.arrayContaining(['key passphrase/raw']));
    // The worker process holds the S3 key in its environment (not searched: that is where it belongs).
    expect(search.wouldFind(`AWS_SECRET_ACCESS_KEY=${process.env.AWS_SECRET_ACCESS_KEY}`)).toEqual(expect.arrayContaining(['S3 secret key/raw']));
    // Every channel was really read.
    expect(search.searched.history.items).toBeGreaterThanOrEqual(8);
    expect(search.searched['repository objects'].items).toBeGreaterThan(10);
    expect(search.searched['worker log'].bytes).toBeGreaterThan(10_000);
    expect(sampler.samples).toBeGreaterThan(100);
    // The sampler saw the short-lived processes PostgreSQL runs (archive_command: wal-push).
    expect([...sampler.seen].some((line) => line.includes(CLI) && line.includes('wal-push'))).toBe(true);
  });

  test('every workflow type ran, and its history was searched', () => {
    expect([...historyTypes].sort()).toEqual(['backupBase', 'backupDatabase', 'pointInTimeRecovery', 'recoveryDrill', 'restoreDatabase', 'shipWal', 'verifyBackup']);
  });

  (haveStrace ? test : test.skip)('strace saw the processes that carry secrets next to them: gpg decrypting with the passphrase FILE, pg_dump, pg_basebackup, pg_restore, wal-push, wal-fetch', () => {
    const argv = traces.flatMap((t) => execveLines(readStraceLog(t)));
    for (const needle of ['--passphrase-file', 'pg_dump', 'pg_dumpall', 'pg_basebackup', 'pg_restore', 'wal-push', 'wal-fetch', 'pg_amcheck']) {
      expect(argv.some((line) => line.includes(needle))).toBe(true);
    }
  });

  test('no planted secret appears anywhere searched', () => {
    expect(search.hits).toEqual([]);
  });
});

const historyTypes = new Set<string>();

async function searchEverything() {
  // 1. Every workflow execution's history, as the server stores it: the raw protobuf bytes of
  //    every event (inputs, results, failures, heartbeat details, memos, search attributes).
  for await (const execution of temporal.client.workflow.list()) {
    historyTypes.add(execution.type);
    let nextPageToken: Uint8Array | undefined;
    let page = 0;
    do {
      const response = await temporal.client.workflowService.getWorkflowExecutionHistory({
        namespace: 'default',
        execution: { workflowId: execution.workflowId, runId: execution.runId },
        nextPageToken,
      });
      const bytes = Buffer.from(api.workflowservice.v1.GetWorkflowExecutionHistoryResponse.encode(response).finish());
      search.search('history', `${execution.workflowId}/${execution.runId} page ${page++}`, bytes);
      nextPageToken = response.nextPageToken?.length ? response.nextPageToken : undefined;
    } while (nextPageToken);
    const described = await temporal.client.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId: execution.workflowId, runId: execution.runId } });
    search.search('describe', execution.workflowId, Buffer.from(api.workflowservice.v1.DescribeWorkflowExecutionResponse.encode(described).finish()));
  }

  // 2. Logs: the worker's stderr, every CLI run's stdout and stderr, PostgreSQL's server logs
  //    (archive_command's and restore_command's stderr land there).
  search.search('worker log', 'backupctl worker stderr', Buffer.concat(workerLog));
  for (const { args, result } of cliRuns) {
    search.search('cli output', `backupctl ${args.join(' ')} stdout`, String(result.stdout));
    search.search('cli output', `backupctl ${args.join(' ')} stderr`, String(result.stderr));
  }
  search.search('postgres log', 'primary server log', primary.log());
  for (const file of walk(workDir)) {
    // Recovered clusters: their logs and settings (restore_command), the recovery's own files;
    // not the database pages.
    if (/\/data\/(base|global|pg_wal|pg_xact|pg_multixact)\//.test(file) || statSync(file).size > 4 * 1024 * 1024) continue;
    search.search('recovered clusters', file, readFileSync(file));
  }

  // 3. Command lines: every distinct one sampled, and every execve strace saw.
  for (const line of sampler.seen) search.search('argv sampled', line.slice(0, 120), Buffer.from(line, 'latin1'));
  for (const trace of traces) search.search('argv traced', path.basename(trace), readStraceLog(trace));

  // 4. Every object of every repository that is not encrypted (manifests, claims, reports, WAL
  //    entries); the encrypted ones only by name.
  for (const repo of ['local', 'nas']) {
    for (const file of walk(path.join(dir, repo))) {
      search.search('repository keys', `${repo}: ${file}`, file);
      if (!file.endsWith('.gpg')) search.search('repository objects', `${repo}: ${path.relative(path.join(dir, repo), file)}`, readFileSync(file));
    }
  }
  let ContinuationToken: string | undefined;
  do {
    const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, ContinuationToken }));
    for (const { Key } of listed.Contents ?? []) {
      search.search('repository keys', `s3: ${Key}`, Key!);
      if (Key!.endsWith('.gpg')) continue;
      const body = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key }));
      search.search('repository objects', `s3: ${Key}`, Buffer.from(await body.Body!.transformToByteArray()));
    }
    ContinuationToken = listed.NextContinuationToken;
  } while (ContinuationToken);
}

function walk(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name));
}
