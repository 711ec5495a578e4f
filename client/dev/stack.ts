// `backupctl dev`: everything on this machine, nothing to configure. A dev Temporal server
// persisted under the state folder, this host's worker, local and NAS repositories under the
// same folder, a demo database (unless DATABASE_URL names one), and one database backup.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import YAML from 'yaml';
import { stopAgent } from '../../engine/encryption.js';
import { ensureCluster, type LocalCluster } from '../../engine/localCluster.js';
import { validateConfig } from '../../common/config.js';
import { createLogger, installTemporalLogging } from '../../workers/logger.js';
import { startWorker } from '../../workers/worker.js';
import { runBackupDatabase } from '../commands/backupDatabase.js';
import { printer } from '../output.js';
import { connectClient } from '../temporalClient.js';
import { DEMO_FRESHNESS, DEMO_KEY_TABLES, createDemoRoles, seedDemoData } from './demoData.js';
import { ensureKeyPair } from './demoKeys.js';
import { startDevTemporal } from './temporalServer.js';

const DEMO_DATABASE = 'thesis_grey_demo';
const DEMO_PORT = 54329;

export interface DevOptions {
  dir: string;
  once?: boolean;
  serve?: boolean;
  json?: boolean;
  configFile?: string;
}

export async function runDev(options: DevOptions): Promise<number> {
  const dir = path.resolve(options.dir);
  // The folder itself must stay traversable: PostgreSQL runs as `postgres` below it.
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const say = (line: string) => process.stderr.write(`dev: ${line}\n`);
  const stops: Array<() => Promise<void>> = [];
  try {
    const temporal = await startDevTemporal(path.join(dir, 'temporal'));
    stops.unshift(temporal.stop);
    say(`Temporal ${temporal.started ? 'started' : 'already running'} at ${temporal.address}; Web UI ${temporal.uiUrl}`);

    let databaseUrl = process.env.DATABASE_URL;
    let restoreServerUrl: string | undefined;
    if (!databaseUrl) {
      const cluster = await ensureCluster({ dataDir: path.join(dir, 'pgdata'), port: DEMO_PORT });
      stops.unshift(() => cluster.stop());
      databaseUrl = await ensureDemoDatabase(cluster, say);
      // The demo cluster's superuser restores and verifies into scratch databases beside it.
      restoreServerUrl = cluster.url('postgres');
    }
    const keys = await ensureKeyPair(path.join(dir, 'keys'));
    // Decrypting (a verification, a restore) starts a gpg-agent for the dev keyring.
    stops.unshift(() => stopAgent(keys.privateHome));
    const rawConfig = {
      host: 'localhost',
      temporal: { address: temporal.address, namespace: 'default' },
      // The demo database's key tables; a database of your own (DATABASE_URL) has every table counted.
      database: { url: databaseUrl, ...(restoreServerUrl ? { keyTables: DEMO_KEY_TABLES } : {}) },
      repositories: {
        local: { type: 'filesystem', path: path.join(dir, 'repositories', 'local') },
        nas: { type: 'filesystem', path: path.join(dir, 'repositories', 'nas') },
      },
      // Dev only: this machine holds both halves, so `verify latest` and restores work here.
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      // Signs every manifest here and, being this machine's own key, is trusted by its restores.
      signing: { privateKeyFile: keys.signing.privateKeyFile, publicKeyFiles: [keys.signing.publicKeyFile] },
      // This host's own WAL spool (wal-push writes there): its unsigned entries are replayed.
      wal: { spool: 'local' },
      ...(restoreServerUrl ? { restore: { serverUrl: restoreServerUrl, freshness: DEMO_FRESHNESS } } : {}),
    };
    const configFile = path.join(dir, 'config.yaml');
    writeFileSync(configFile, `# Written by backupctl dev; use it with --config ${configFile}\n` + YAML.stringify(rawConfig), { mode: 0o600 });
    const config = validateConfig(rawConfig, configFile);

    const logger = createLogger(process.env.LOG_LEVEL ?? 'warn');
    installTemporalLogging(logger);
    const worker = await startWorker(config, logger);
    stops.unshift(() => worker.shutdown());

    const { client, close } = await connectClient(config);
    stops.unshift(close);
    say('running one database backup...');
    const code = await runBackupDatabase(client, config, { wait: true }, printer(Boolean(options.json)));
    say(`Web UI: ${temporal.uiUrl}/namespaces/default/workflows`);
    say(`other commands: npx backupctl --config ${path.relative(process.cwd(), configFile)} backups list | status | verify latest --wait`);
    // Serve the Web UI on for a person at a terminal; a script or CI gets its exit code.
    const serve = options.serve ?? (!options.once && Boolean(process.stdin.isTTY));
    if (serve) {
      say('serving the Web UI and the worker; Ctrl-C stops everything');
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
