// A PostgreSQL cluster that this machine runs from a data directory of ours: the dev stack's
// demo database, test fixtures, and later the point-in-time recovery target. initdb and the
// server refuse to run as root, so as root they run as the `postgres` OS user.
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import { runCommand } from './exec.js';
import { resolveBinDir, toolPath } from './postgres.js';

export interface ClusterOptions {
  dataDir: string;
  port: number;
  binDir?: string;
  /** Extra postgresql.conf lines (archive_mode, wal_level...). */
  settings?: string[];
}

export interface LocalCluster {
  dataDir: string;
  port: number;
  host: string;
  /** postgres:// URL for a database, connecting as the cluster's superuser. */
  url(database: string): string;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
}

/** Creates the cluster if its data directory is empty, starts it if it is not running. */
export async function ensureCluster(options: ClusterOptions): Promise<LocalCluster> {
  const binDir = resolveBinDir(options.binDir);
  const owner = serverOwner();
  const run = (tool: string, args: string[]) => runCommand(toolPath(binDir, tool), args, { ...owner.spawn, cwd: '/' });
  const socketDir = path.join(options.dataDir, 'sockets');

  if (!existsSync(path.join(options.dataDir, 'PG_VERSION'))) {
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    owner.chown(options.dataDir);
    await run('initdb', ['-D', options.dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C.UTF-8', '--no-instructions']);
    mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    owner.chown(socketDir);
    const conf = [
      "listen_addresses = '127.0.0.1'",
      `port = ${options.port}`,
      `unix_socket_directories = '${socketDir}'`,
      ...(options.settings ?? []),
    ];
    appendFileSync(path.join(options.dataDir, 'postgresql.conf'), '\n# backupctl\n' + conf.join('\n') + '\n');
  }
  const port = Number(/^port = (\d+)/m.exec(readFileSync(path.join(options.dataDir, 'postgresql.conf'), 'utf8'))?.[1] ?? options.port);
  const running = await run('pg_ctl', ['-D', options.dataDir, 'status']).then(() => true, () => false);
  if (!running) {
    const logFile = path.join(options.dataDir, 'server.log');
    if (!existsSync(logFile)) {
      writeFileSync(logFile, '');
      owner.chown(logFile);
    }
    await run('pg_ctl', ['-D', options.dataDir, '-l', logFile, '-w', '-t', '60', 'start']);
  }
  return {
    dataDir: options.dataDir,
    port,
    host: '127.0.0.1',
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    stop: async (mode = 'fast') => {
      await run('pg_ctl', ['-D', options.dataDir, '-m', mode, '-w', 'stop']).catch(() => undefined);
    },
  };
}

/** Who runs initdb and postgres: ourselves, or `postgres` when we are root. */
export function serverOwner(): { spawn: { env?: Record<string, string> } & { uid?: number; gid?: number }; chown(p: string): void } {
  if (process.getuid?.() !== 0) return { spawn: {}, chown: () => undefined };
  const entry = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((line) => line.split(':'))
    .find((fields) => fields[0] === 'postgres');
  if (!entry) throw new Error('running as root, and there is no postgres user to run PostgreSQL as');
  const uid = Number(entry[2]);
  const gid = Number(entry[3]);
  return { spawn: { uid, gid, env: { HOME: entry[5] } }, chown: (p) => chownSync(p, uid, gid) };
}
