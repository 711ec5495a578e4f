// A recovered cluster: a NEW data directory made from a base backup, told how to fetch WAL and
// where to stop, started on its own port, and watched until it has promoted. Never the live
// cluster's directory; as root, PostgreSQL runs as the `postgres` OS user.
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { ErrorType } from '../workflows/types.js';
import type { RecoveryTarget } from '../workflows/pitrTypes.js';
import { permanent } from './errors.js';
import { runCommand } from './exec.js';
import { serverOwner } from './localCluster.js';
import { toolPath } from './postgres.js';

/** What this workflow left in the folder beside the data directory, so a retry can find it. */
export interface RecoveryMarker {
  workflowId: string;
  port: number;
}

export function markerPath(dataDir: string): string {
  return path.join(path.dirname(dataDir), 'backupctl-recovery.json');
}

export function readMarker(dataDir: string): RecoveryMarker | undefined {
  const file = markerPath(dataDir);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as RecoveryMarker) : undefined;
}

/**
 * Makes sure the data directory is ours to fill: absent or empty, or left by an earlier attempt
 * of this same workflow (its server is stopped and the folder emptied). Anything else is
 * refused, so a recovery can never write over a cluster it did not make.
 */
export async function claimDataDirectory(dataDir: string, workflowId: string, port: number | undefined, binDir: string | undefined): Promise<number> {
  const marker = readMarker(dataDir);
  const entries = existsSync(dataDir) ? await readdir(dataDir) : [];
  if (entries.length && marker?.workflowId !== workflowId) {
    throw permanent(ErrorType.InvalidInput, `data directory ${dataDir} is not empty and was not made by this recovery; give --data-dir a new or empty folder`);
  }
  if (marker?.workflowId === workflowId) {
    await stopCluster(dataDir, binDir);
    await rm(dataDir, { recursive: true, force: true });
  }
  const chosen = port ?? marker?.port ?? (await freePort());
  const owner = serverOwner();
  await mkdir(path.dirname(dataDir), { recursive: true, mode: 0o755 });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await mkdir(socketDir(dataDir), { recursive: true, mode: 0o700 });
  owner.chown(dataDir);
  owner.chown(socketDir(dataDir));
  await writeFile(markerPath(dataDir), JSON.stringify({ workflowId, port: chosen } satisfies RecoveryMarker) + '\n', { mode: 0o644 });
  return chosen;
}

export function socketDir(dataDir: string): string {
  return path.join(path.dirname(dataDir), 'sockets');
}

export function serverLog(dataDir: string): string {
  return path.join(path.dirname(dataDir), 'server.log');
}

/** PostgreSQL's recovery_target_* line for a target. */
function targetSetting(target: RecoveryTarget): string {
  const names = { time: 'recovery_target_time', lsn: 'recovery_target_lsn', xid: 'recovery_target_xid', name: 'recovery_target_name' } as const;
  return `${names[target.kind]} = ${quote(target.value)}`;
}

function quote(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * Writes the recovery settings: PostgreSQL 12+ reads them from postgresql.auto.conf and starts
 * recovery because of recovery.signal; older versions read recovery.conf. The recovered
 * cluster never archives (it must not write into the live cluster's archive) and listens on
 * its own port and socket folder.
 */
export async function configureRecovery(dataDir: string, options: { versionNum: number; restoreCommand: string; target: RecoveryTarget; port: number }): Promise<void> {
  const owner = serverOwner();
  const server = [
    `port = ${options.port}`,
    "listen_addresses = '127.0.0.1'",
    `unix_socket_directories = ${quote(socketDir(dataDir))}`,
    "archive_mode = 'off'",
    // A standby's settings carried over in the backup would keep it from promoting.
    "primary_conninfo = ''",
  ];
  const recovery = [`restore_command = ${quote(options.restoreCommand)}`, targetSetting(options.target), "recovery_target_action = 'promote'", "recovery_target_timeline = 'latest'"];
  const header = '\n# written by backupctl point-in-time recovery\n';
  if (options.versionNum >= 120000) {
    await appendFile(path.join(dataDir, 'postgresql.auto.conf'), header + [...server, ...recovery].join('\n') + '\n');
    await writeFile(path.join(dataDir, 'recovery.signal'), '');
    owner.chown(path.join(dataDir, 'recovery.signal'));
  } else {
    await appendFile(path.join(dataDir, 'postgresql.auto.conf'), header + server.join('\n') + '\n');
    await writeFile(path.join(dataDir, 'recovery.conf'), header + recovery.join('\n') + '\n');
    owner.chown(path.join(dataDir, 'recovery.conf'));
  }
  await rm(path.join(dataDir, 'standby.signal'), { force: true });
  await chmod(dataDir, 0o700);
}

export async function startCluster(dataDir: string, binDir: string | undefined, env: Record<string, string | undefined>): Promise<void> {
  const owner = serverOwner();
  if (await isRunning(dataDir, binDir)) return;
  const log = serverLog(dataDir);
  if (!existsSync(log)) {
    await writeFile(log, '');
    owner.chown(log);
  }
  // No -w: replay may take hours; the caller polls, heartbeating. pg_ctl detaches the server
  // into its own session, so it outlives a worker that is killed.
  await runCommand(toolPath(binDir, 'pg_ctl'), ['-D', dataDir, '-l', log, 'start'], { ...owner.spawn, env: { ...env, ...owner.spawn.env }, cwd: '/' });
}

export async function isRunning(dataDir: string, binDir: string | undefined): Promise<boolean> {
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) return false;
  return runCommand(toolPath(binDir, 'pg_ctl'), ['-D', dataDir, 'status'], { ...serverOwner().spawn, cwd: '/' }).then(
    () => true,
    () => false,
  );
}

export async function stopCluster(dataDir: string, binDir: string | undefined): Promise<void> {
  if (await isRunning(dataDir, binDir)) {
    await runCommand(toolPath(binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'fast', '-w', 'stop'], { ...serverOwner().spawn, cwd: '/' }).catch(() => undefined);
  }
}

export function logTail(dataDir: string, lines = 15): string {
  const log = serverLog(dataDir);
  return existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-lines).join('\n') : '(no server log)';
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
