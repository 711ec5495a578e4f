// `backupctl dev`: the whole product on this machine, nothing to configure. A dev Temporal
// server persisted under the state folder, SeaweedFS as the offsite (S3) repository beside the
// local and NAS folders, a demo database (unless DATABASE_URL names one) on a cluster that
// archives its WAL through `backupctl wal-push`, this host's worker, the schedules applied (the
// WAL shipping and the monitor with them), one database backup (and a base backup when there is
// none), and, while it serves, the dashboard.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import YAML from 'yaml';
import { postgresCommandWord } from '../../common/postgresCommand.js';
import { PROJECT_ROOT } from '../../common/runtime.js';
import { stopAgent } from '../../engine/encryption.js';
import { ensureCluster, serverOwner, type LocalCluster } from '../../engine/localCluster.js';
import { listManifests } from '../../engine/catalog.js';
import { openRepositories, openRepository } from '../../engine/storage/index.js';
import { validateConfig } from '../../common/config.js';
import { createLogger, installTemporalLogging } from '../../workers/logger.js';
import { startWorker } from '../../workers/worker.js';
import { runBackupBase } from '../commands/backupBase.js';
import { runBackupDatabase } from '../commands/backupDatabase.js';
import { startDashboard } from '../commands/dashboard.js';
import { applyMonitor, applySchedules, applyWalShipping } from '../commands/schedules.js';
import { printer } from '../output.js';
import { connectClient } from '../temporalClient.js';
import { DEMO_FRESHNESS, DEMO_KEY_TABLES, createDemoRoles, seedDemoData } from './demoData.js';
import { ensureKeyPair, type KeyPair } from './demoKeys.js';
import { postgresReadableKeys } from './postgresKeys.js';
import { startDevS3 } from './seaweedfs.js';
import { assertOwnStateDir } from './stateDir.js';
import { startDevTemporal } from './temporalServer.js';

const DEMO_DATABASE = 'thesis_grey_demo';
/** The stack's ports; `--port-offset` moves them all (a second stack, a test). */
const PORTS = { temporal: 7233, ui: 8233, dashboard: 8234, postgres: 54329, s3: 18333 } as const;
const BUCKET = 'backupctl-dev';

export interface DevOptions {
  dir: string;
  once?: boolean;
  serve?: boolean;
  json?: boolean;
  configFile?: string;
  portOffset?: number;
}

export async function runDev(options: DevOptions): Promise<number> {
  const dir = path.resolve(options.dir);
  const offset = options.portOffset ?? 0;
  const port = (name: keyof typeof PORTS) => PORTS[name] + offset;
  // Ours and below folders of ours (or root's) alone, before anything is written in it.
  assertOwnStateDir(dir);
  // The folder itself must stay traversable: PostgreSQL runs as `postgres` below it.
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  const say = (line: string) => process.stderr.write(`dev: ${line}\n`);
  const stops: Array<() => Promise<void>> = [];
  try {
    const temporal = await startDevTemporal(path.join(dir, 'temporal'), port('temporal'), port('ui'));
    stops.unshift(temporal.stop);
    say(`Temporal ${temporal.started ? 'started' : 'already running'} at ${temporal.address}; Web UI ${temporal.uiUrl}`);

    const s3 = await startDevS3(path.join(dir, 'seaweedfs'), port('s3'), BUCKET);
    stops.unshift(s3.stop);
    // This process's S3 client (the worker's repositories) reads the stack's own keys, whatever
    // the caller's environment says; the wrapper script below does the same for later commands.
    Object.assign(process.env, { AWS_SHARED_CREDENTIALS_FILE: s3.credentialsFile, AWS_PROFILE: 'default' });
    for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) delete process.env[name];
    say(`SeaweedFS S3 ${s3.started ? 'started' : 'already running'} at ${s3.endpoint} (bucket ${s3.bucket}): the offsite repository`);

    const keys = await ensureKeyPair(path.join(dir, 'keys'));
    // Decrypting (a verification, a restore) starts a gpg-agent for the dev keyring.
    stops.unshift(() => stopAgent(keys.privateHome));
    const configFile = path.join(dir, 'config.yaml');
    const repositories = {
      local: { type: 'filesystem', path: path.join(dir, 'repositories', 'local') },
      nas: { type: 'filesystem', path: path.join(dir, 'repositories', 'nas') },
      s3: { type: 's3', bucket: s3.bucket, endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, prefix: 'thesis-grey/' },
    };

    let databaseUrl = process.env.DATABASE_URL;
    let cluster: LocalCluster | undefined;
    if (!databaseUrl) {
      cluster = await ensureArchivingCluster(dir, port('postgres'), say);
      stops.unshift(() => cluster!.stop());
      databaseUrl = await ensureDemoDatabase(cluster, say);
    } else {
      say('DATABASE_URL names the database: its WAL is not archived by this stack (no base backups, no point-in-time recovery)');
    }
    const rawConfig = {
      host: 'localhost',
      temporal: { address: temporal.address, namespace: 'default', webUiUrl: temporal.uiUrl },
      // The demo database's key tables; a database of your own (DATABASE_URL) has every table counted.
      database: { url: databaseUrl, ...(cluster ? { keyTables: DEMO_KEY_TABLES } : {}) },
      repositories,
      // Dev only: this machine holds both halves, so `verify latest` and restores work here.
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      // Signs every manifest here and, being this machine's own key, is trusted by its restores.
      signing: { privateKeyFile: keys.signing.privateKeyFile, publicKeyFiles: [keys.signing.publicKeyFile] },
      // This host's own WAL spool (wal-push writes there): its unsigned entries are replayed.
      wal: { spool: 'local', ...(cluster ? { shipIntervalSeconds: 10 } : {}) },
      // Looks every minute here (15 in production), so a newcomer sees it work.
      monitor: { intervalSeconds: 60, failedRunsSeconds: 30, statusFile: path.join(dir, 'status.json') },
      ...(cluster
        ? {
            restore: { serverUrl: cluster.url('postgres'), freshness: DEMO_FRESHNESS },
            baseBackup: { url: cluster.url(DEMO_DATABASE) },
            // The monthly drill restores the offsite (S3) copy on a host: this one, here.
            drill: { host: 'localhost' },
            pitr: { restoreCommand: walCommand(path.join(dir, 'wal-postgres', 'config.yaml'), 'wal-fetch %f %p') },
          }
        : {}),
    };
    writeFileSync(configFile, `# Written by backupctl dev; use it with --config ${configFile}\n` + YAML.stringify(rawConfig), { mode: 0o600 });
    const config = validateConfig(rawConfig, configFile);
    if (cluster) await archiveThroughBackupctl(cluster, dir, rawConfig, keys);
    const cli = writeWrapper(dir, configFile, s3.credentialsFile);

    const logger = createLogger(process.env.LOG_LEVEL ?? 'warn');
    installTemporalLogging(logger);
    const worker = await startWorker(config, logger);
    stops.unshift(() => worker.shutdown());

    const { client, close } = await connectClient(config);
    stops.unshift(close);
    const out = printer(Boolean(options.json));
    const schedules = await applySchedules(client, config);
    const shipping = await applyWalShipping(client, config);
    const monitor = await applyMonitor(client, config);
    say(`schedules: ${schedules.map((s) => `${s.scheduleId} ${s.action}`).join(', ')}`);
    say(`WAL shipping: ${shipping.action}${shipping.workflowId ? ` (${shipping.workflowId})` : ''}; monitor: ${monitor.action} (${monitor.workflowId}), status file ${config.monitor.statusFile}`);
    say('running one database backup...');
    let code = await runBackupDatabase(client, config, { wait: true }, out);
    if (code === 0 && cluster && (await listManifests(openRepository('local', config.repositories.local), 'base')).length === 0) {
      say('no base backup yet: taking one (point-in-time recovery replays the archived WAL on top of it)...');
      code = await runBackupBase(client, config, { wait: true }, out);
    }
    say(`Web UI: ${temporal.uiUrl}/namespaces/default/workflows`);
    say(`other commands: ${path.relative(process.cwd(), cli) || cli} status | backups list | verify latest --wait | drill --wait | pitr --help  (backupctl with this stack's configuration and S3 keys)`);
    // Serve the Web UI on for a person at a terminal; a script or CI gets its exit code.
    const serve = options.serve ?? (!options.once && Boolean(process.stdin.isTTY));
    if (serve) {
      // The dashboard, served by this process on loopback (client/commands/dashboard.ts).
      const dashboard = await startDashboard(config, { port: String(port('dashboard')), host: '127.0.0.1' }, openRepositories(config), async () => ({ client }), (line) => say(`dashboard: ${line}`));
      stops.unshift(() => dashboard.close());
      say(`dashboard: ${dashboard.url}/   Web UI: ${temporal.uiUrl}`);
      say('serving the Web UI, the dashboard and the worker; the schedules and the monitor run on; Ctrl-C stops everything');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
    return code;
  } finally {
    for (const stop of stops) await stop().catch((err) => say(`stopping: ${(err as Error).message}`));
  }
}

/** The demo cluster, archiving its WAL (archive_mode needs a restart the first time it is turned on). */
async function ensureArchivingCluster(dir: string, port: number, say: (line: string) => void): Promise<LocalCluster> {
  const dataDir = path.join(dir, 'pgdata');
  // archive_command is set below, once its configuration is written; until then WAL waits.
  const settings = ['wal_level = replica', 'archive_mode = on', 'archive_timeout = 60'];
  let cluster = await ensureCluster({ dataDir, port, settings });
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ archive_mode: string }>('SHOW archive_mode');
    if (rows[0].archive_mode !== 'on') {
      // A stack made before WAL was archived here: turned on once, for good.
      await admin.query('ALTER SYSTEM SET archive_mode = on');
      await admin.query("ALTER SYSTEM SET wal_level = 'replica'");
      say('turning on WAL archiving in the demo cluster (a restart)');
      await admin.end();
      await cluster.stop();
      cluster = await ensureCluster({ dataDir, port, settings });
      return cluster;
    }
  } finally {
    await admin.end().catch(() => undefined);
  }
  return cluster;
}

/**
 * PostgreSQL (the `postgres` OS user) runs `backupctl wal-push` and `wal-fetch` with a
 * configuration of its own: the spool writable by it, the public encryption key, the signing
 * key's public half (entries shipped elsewhere are checked), and a copy of the dev keyring for
 * wal-fetch's decryption. Set on every start: the paths may have moved.
 */
async function archiveThroughBackupctl(cluster: LocalCluster, dir: string, rawConfig: Record<string, unknown> & { repositories: { local: { path: string } } }, keys: KeyPair): Promise<void> {
  const owner = serverOwner();
  const own = path.join(dir, 'wal-postgres');
  mkdirSync(own, { recursive: true, mode: 0o755 });
  chmodSync(own, 0o755);
  mkdirSync(path.dirname(rawConfig.repositories.local.path), { recursive: true, mode: 0o755 });
  chmodSync(path.dirname(rawConfig.repositories.local.path), 0o755);
  mkdirSync(rawConfig.repositories.local.path, { recursive: true, mode: 0o700 });
  // The spool is written by PostgreSQL and by this worker (root may write anywhere).
  if (process.getuid?.() === 0) await execa('chown', ['-R', `${owner.spawn.uid}:${owner.spawn.gid}`, rawConfig.repositories.local.path]);
  const readable = await postgresReadableKeys(own, keys);
  const postgresConfig = path.join(own, 'config.yaml');
  // Only what wal-push and wal-fetch read: no signing key, no restore target, no monitor.
  const base = Object.fromEntries(Object.entries(rawConfig).filter(([key]) => !['signing', 'pitr', 'restore', 'monitor', 'baseBackup'].includes(key)));
  writeFileSync(
    postgresConfig,
    `# Written by backupctl dev: what PostgreSQL's archive_command and restore_command read\n` +
      YAML.stringify({ ...base, encryption: { publicKeyFile: readable.publicKeyFile, privateKeyHome: readable.privateHome }, signing: { publicKeyFiles: [readable.signingPublicKeyFile] }, logLevel: 'warn' }),
    { mode: 0o644 },
  );
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  try {
    await admin.query(`ALTER SYSTEM SET archive_command = ${pg.escapeLiteral(walCommand(postgresConfig, 'wal-push %p'))}`);
    await admin.query('SELECT pg_reload_conf()');
  } finally {
    await admin.end();
  }
}

/** `node bin/backupctl.js --config FILE <args>`, as PostgreSQL runs it: its placeholders first, then /bin/sh (a state folder named `100%f` stays that). */
export function walCommand(configFile: string, args: string): string {
  return [process.execPath, path.join(PROJECT_ROOT, 'bin', 'backupctl.js'), '--config', configFile].map(postgresCommandWord).join(' ') + ` ${args}`;
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** `.backupctl/dev/backupctl`: backupctl with this stack's configuration and S3 keys (read from their file, not written here). */
function writeWrapper(dir: string, configFile: string, credentialsFile: string): string {
  const file = path.join(dir, 'backupctl');
  writeFileSync(
    file,
    [
      '#!/bin/sh',
      '# Written by backupctl dev: backupctl against this dev stack.',
      'unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN',
      `AWS_SHARED_CREDENTIALS_FILE=${shellQuote(credentialsFile)} AWS_PROFILE=default exec ${shellQuote(process.execPath)} ${shellQuote(path.join(PROJECT_ROOT, 'bin', 'backupctl.js'))} --config ${shellQuote(configFile)} "$@"`,
      '',
    ].join('\n'),
    { mode: 0o700 },
  );
  chmodSync(file, 0o700);
  return file;
}

async function ensureDemoDatabase(cluster: LocalCluster, say: (line: string) => void): Promise<string> {
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  try {
    await createDemoRoles(admin);
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DEMO_DATABASE]);
    if (!exists.rowCount) {
      await admin.query(`CREATE DATABASE ${DEMO_DATABASE}`);
      const db = new pg.Client({ connectionString: cluster.url(DEMO_DATABASE) });
      await db.connect();
      try {
        const counts = await seedDemoData(db, { users: 2000, sessionsPerUser: 5, activitiesPerSession: 10 });
        say(`demo database ${DEMO_DATABASE} created on port ${cluster.port}: ${JSON.stringify(counts)}`);
      } finally {
        await db.end();
      }
    }
  } finally {
    await admin.end();
  }
  return cluster.url(DEMO_DATABASE);
}
