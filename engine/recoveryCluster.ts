// A recovered cluster: a NEW data directory made from a base backup, told how to fetch WAL and
// where to stop, started on its own port, and watched until it has promoted. Never the live
// cluster's directory; as root, PostgreSQL runs as the `postgres` OS user.
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, chmod, lchown, lstat, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { ErrorType } from '../common/types.js';
import type { RecoveryTarget } from '../common/pitrTypes.js';
import { assertAttemptStands } from './attemptStanding.js';
import { permanent } from './errors.js';
import { runCommand } from './exec.js';
import { serverOwner } from './localCluster.js';
import { connect, toolPath, type DatabaseTarget } from './postgres.js';

/**
 * Proof that this run made the recovery's folders. The token is the workflow run id, never the
 * workflow id alone: ids are reused, and a folder a finished run left must not be taken as ours.
 */
export interface RecoveryMarker {
  runId: string;
  workflowId: string;
  port: number;
  /** False when the operator gave an existing empty folder: it is emptied on a retry, never removed. */
  createdDataDir: boolean;
}

/**
 * The private folder beside the data directory (mode 0700, made by the run): the marker, the
 * server log and the WAL fetched ahead live here, so nothing the operator
 * keeps beside the data directory is ever written, chowned or removed.
 */
export function workDirOf(dataDir: string): string {
  return path.join(path.dirname(dataDir), `.${path.basename(dataDir)}.backupctl`);
}

export function markerPath(dataDir: string): string {
  return path.join(workDirOf(dataDir), 'owner.json');
}

export function prefetchDirOf(dataDir: string): string {
  return path.join(workDirOf(dataDir), 'wal-prefetch');
}

/**
 * The queue folder of one attempt's asynchronous restore_command (bin/wal-fetch-async): the
 * server's OS user writes it (its fetcher runs as that user), so it is held as root before
 * being emptied, as the data directory is.
 */
export function fetchQueueDirOf(dataDir: string, attempt: number): string {
  return path.join(workDirOf(dataDir), `wal-queue-${attempt}`);
}

export function readMarker(dataDir: string): RecoveryMarker | undefined {
  try {
    const marker = JSON.parse(readFileSync(markerPath(dataDir), 'utf8')) as Partial<RecoveryMarker>;
    return typeof marker?.runId === 'string' && typeof marker.port === 'number' ? (marker as RecoveryMarker) : undefined;
  } catch {
    return undefined;
  }
}

async function lstatOrUndefined(file: string) {
  return lstat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/**
 * Makes sure the data directory is ours to fill. A first attempt takes it only when it is
 * absent or an empty folder (not a link) and the private folder beside it is absent or empty;
 * it records its run id there before it makes anything else. A retry of the same run (its
 * marker holds this run id) empties what it made; one that finds the run's server running is
 * stale (the workflow starts it only after the prepare) and changes nothing. Anything else is
 * refused (InvalidInput), so a recovery never writes over, nor removes, what it did not make.
 * Only while the asking attempt stands: a stale attempt of the run (stalled in a storage read
 * until its place was taken, woken after the run completed) would otherwise stop the completed
 * recovery's server, the one the operator is to switch to, and empty its folder.
 */
export async function claimDataDirectory(dataDir: string, run: { runId: string; workflowId: string }, port: number | undefined, binDir: string | undefined): Promise<number> {
  await assertAttemptStands(`claiming the recovery folder ${dataDir}`);
  const workDir = workDirOf(dataDir);
  const marker = readMarker(dataDir);
  let chosen: number;
  const refuse = (why: string) =>
    permanent(ErrorType.InvalidInput, `data directory ${dataDir} was not made by this recovery run (${run.runId}): ${why}; nothing was changed. Give --data-dir a new or empty folder`);
  if (marker?.runId === run.runId) {
    // Replaced by a link since the claim: emptying it would empty whatever it points to.
    const [work, data] = [await lstat(workDir), await lstatOrUndefined(dataDir)];
    if (!work.isDirectory() || data?.isSymbolicLink() || (data && !data.isDirectory())) throw refuse('it or its private folder was replaced since this run claimed it');
    // A server runs here only once this run's prepare has completed (the workflow starts it
    // after): an attempt that finds it running is a stale one, woken after its check above
    // passed (a paused VM, SIGSTOP). Never stop nor empty the run's recovered (maybe promoted) server.
    if (await isRunning(dataDir, binDir)) {
      throw permanent(ErrorType.AttemptSuperseded, `claiming the recovery folder ${dataDir}: the run's recovered server runs there, so this attempt is stale; nothing was changed`);
    }
    // Root's again before anything inside is removed: a process of the server's OS user must
    // not swap what is being emptied (rm follows a folder swapped for a link mid-walk).
    if (data) await holdAsRoot(dataDir, 0o700);
    await holdAsRoot(workDir, PRIVATE_FOLDER_MODE);
    // Everything inside was made by this run: the folder was absent or empty when it was claimed.
    if (existsSync(dataDir)) {
      for (const entry of await readdir(dataDir)) await rm(path.join(dataDir, entry), { recursive: true, force: true });
    } else {
      await mkdir(dataDir, { mode: 0o700 });
    }
    await rm(prefetchDirOf(dataDir), { recursive: true, force: true });
    // What earlier attempts fetched ahead and never moved into place.
    for (const entry of await readdir(workDir)) {
      if (entry.startsWith(`${path.basename(prefetchDirOf(dataDir))}.attempt-`)) await rm(path.join(workDir, entry), { recursive: true, force: true });
      // Earlier attempts' fetch queues (their fetchers end when the folder goes, or idle).
      if (/^wal-queue-\d+$/.test(entry)) {
        await holdAsRoot(path.join(workDir, entry), 0o700);
        await rm(path.join(workDir, entry), { recursive: true, force: true });
      }
    }
    chosen = port ?? marker.port;
  } else {
    const work = await lstatOrUndefined(workDir);
    if (work && (!work.isDirectory() || (await readdir(workDir)).length)) throw refuse(`${workDir} already exists and holds no marker of this run`);
    const data = await lstatOrUndefined(dataDir);
    if (data?.isSymbolicLink()) throw refuse('it is a symbolic link');
    if (data && !data.isDirectory()) throw refuse('it exists and is not a folder');
    if (data && (await readdir(dataDir)).length) throw refuse('it is not empty');
    chosen = port ?? (await freePort());
    await mkdir(path.dirname(dataDir), { recursive: true, mode: 0o755 });
    if (!work) await mkdir(workDir, { mode: 0o700 });
    await holdAsRoot(workDir, PRIVATE_FOLDER_MODE);
    // The marker first: from here on a retry of this run knows what it may empty.
    const temp = `${markerPath(dataDir)}.${process.pid}.tmp`;
    await writeFile(temp, JSON.stringify({ ...run, port: chosen, createdDataDir: !data } satisfies RecoveryMarker) + '\n', { mode: 0o644 });
    await rename(temp, markerPath(dataDir));
    if (!data) await mkdir(dataDir, { mode: 0o700 });
    await holdAsRoot(dataDir, 0o700);
  }
  // The data directory is handed to the server's OS user only when the prepare has moved
  // everything into place (handOver): until then that user (the live cluster's, and any
  // superuser's COPY ... TO PROGRAM) could swap a folder the root worker writes, chmods, lists
  // and renames from for a link to /etc, or plant server.log as a link for root to create and
  // chown. The private folder stays root's: that user may only pass through it (group x).
  return chosen;
}

/** The private folder's mode: as root, root's with the server's group passing through (server.log, wal-prefetch). */
const PRIVATE_FOLDER_MODE = 0o710;

/** As root, makes a folder (checked not to be a link) root's, with the server's group, and sets its mode. */
async function holdAsRoot(folder: string, mode: number): Promise<void> {
  if (process.getuid?.() === 0) {
    await lchown(folder, 0, mode & 0o070 ? (serverOwner().spawn.gid ?? 0) : 0);
    await chmod(folder, mode);
  } else {
    await chmod(folder, mode & 0o700);
  }
}

/** After the prepare: the data directory becomes the server's OS user's (PostgreSQL insists). */
export async function handOver(dataDir: string): Promise<void> {
  if (process.getuid?.() === 0) {
    const { uid, gid } = serverOwner().spawn;
    await lchown(dataDir, uid!, gid!);
  }
  await chmod(dataDir, 0o700);
}

export function serverLog(dataDir: string): string {
  return path.join(workDirOf(dataDir), 'server.log');
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
 * its own port.
 */
export async function configureRecovery(dataDir: string, options: { versionNum: number; restoreCommand: string; target: RecoveryTarget; port: number }): Promise<void> {
  const owner = serverOwner();
  const server = [
    `port = ${options.port}`,
    "listen_addresses = '127.0.0.1'",
    // TCP only: no socket folder to make, and no socket path over the kernel's 107 bytes
    // when the data directory lies deep (every client of this cluster connects to 127.0.0.1).
    "unix_socket_directories = ''",
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

/**
 * What the worker's environment holds that a recovered server never needs, and must not keep:
 * it serves the application for months after the cutover, and its OS user and superusers read
 * its environment (/proc/<pid>/environ). The Temporal payload keys (workers/payloadKeys.ts)
 * decrypt every history; PGPASSWORD is the live database's. Its restore_command (wal-fetch)
 * talks to no Temporal and no database; it reads the repositories, so the storage
 * credentials stay (docs/SECURITY.md, "Secrets never leave their place").
 */
const NOT_FOR_THE_SERVER = ['BACKUPCTL_PAYLOAD_KEYS', 'BACKUPCTL_PAYLOAD_KEYS_FILE', 'PGPASSWORD'];

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
  const withheld = Object.fromEntries(NOT_FOR_THE_SERVER.map((name) => [name, undefined]));
  await runCommand(toolPath(binDir, 'pg_ctl'), ['-D', dataDir, '-l', log, 'start'], { ...owner.spawn, env: { ...env, ...owner.spawn.env, ...withheld }, cwd: '/' });
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

/**
 * Polls a recovering cluster until it has reached its target and promoted
 * (pg_is_in_recovery() false), telling `beat` the replay position. Permanent RecoveryFailed
 * when the server stops first (the target was not in the archive, a segment is missing), with
 * the end of its log.
 */
export async function waitUntilPromoted(
  target: DatabaseTarget,
  dataDir: string,
  binDir: string | undefined,
  options: { signal: AbortSignal; beat: (progress: Record<string, unknown>) => void },
): Promise<{ recoveredTo: string | null; timeline: number }> {
  let notRunningSince: number | undefined;
  for (;;) {
    if (options.signal.aborted) throw options.signal.reason;
    const client = await connect(target).catch(() => undefined);
    if (client) {
      try {
        const { rows } = await client.query<{ recovering: boolean; replayed: Date | null; lsn: string | null }>(
          'SELECT pg_is_in_recovery() AS recovering, pg_last_xact_replay_timestamp() AS replayed, pg_last_wal_replay_lsn()::text AS lsn',
        );
        const row = rows[0];
        options.beat({ phase: 'replaying', replayLsn: row.lsn, replayedTo: row.replayed?.toISOString() ?? null });
        if (!row.recovering) {
          // The new timeline shows in the name of the segment now being written.
          const current = await client.query<{ name: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS name');
          return { recoveredTo: row.replayed?.toISOString() ?? null, timeline: parseInt(current.rows[0].name.slice(0, 8), 16) };
        }
      } catch {
        // starting up or shutting down: ask again
      } finally {
        await client.end().catch(() => undefined);
      }
    } else {
      options.beat({ phase: 'starting' });
      if (!(await isRunning(dataDir, binDir))) {
        notRunningSince ??= Date.now();
        // pg_ctl start returns before the server writes its pid file; give it a moment.
        if (Date.now() - notRunningSince > 10_000) {
          throw permanent(ErrorType.RecoveryFailed, `the recovered cluster in ${dataDir} stopped before it promoted:\n${logTail(dataDir)}`);
        }
      } else {
        notRunningSince = undefined;
      }
    }
    // Promotion is what the operator waits for: notice it within a quarter second.
    await new Promise((r) => setTimeout(r, 250));
  }
}
