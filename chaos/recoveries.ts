// Point-in-time recoveries on the chaos host, seen from outside backupctl: the folders they
// make in restore.workDir (the staging folder), whether a server runs from them, and any
// PostgreSQL server on this machine running from a folder of the chaos stack other than the
// live cluster's. Stopping and removing a recovered cluster is the operator's part after a
// recovery nobody cuts over to; the harness plays it.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { serverOwner } from '../engine/localCluster.js';
import type { ChaosStack } from './stack.js';

/** How point-in-time recovery names its folder in restore.workDir (activities/pitr.ts). */
export const RECOVERY_PREFIX = 'backupctl-pitr-';

export interface RecoveryFolder {
  folder: string;
  dataDir: string;
  /** The pid in the data directory's postmaster.pid, when that process is alive. */
  serverPid?: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Recovery folders in the staging folder; of one workflow when given. */
export function recoveryFolders(stack: ChaosStack, workflowId?: string): RecoveryFolder[] {
  const prefix = workflowId ? `${RECOVERY_PREFIX}${workflowId.replace(/[^A-Za-z0-9._-]+/g, '-')}-` : RECOVERY_PREFIX;
  return readdirSync(stack.stagingDir)
    .filter((name) => name.startsWith(prefix))
    .map((name) => {
      const folder = path.join(stack.stagingDir, name);
      const dataDir = path.join(folder, 'data');
      const pidFile = path.join(dataDir, 'postmaster.pid');
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').split('\n')[0]) : NaN;
      return { folder, dataDir, ...(Number.isInteger(pid) && pid > 0 && alive(pid) ? { serverPid: pid } : {}) };
    });
}

/** Stops the server (immediate: its data is thrown away) and removes the folder. */
export async function discardRecovery(stack: ChaosStack, recovery: RecoveryFolder): Promise<void> {
  if (existsSync(path.join(recovery.dataDir, 'PG_VERSION'))) {
    const owner = serverOwner();
    await execa(path.join(stack.cluster.binDir, 'pg_ctl'), ['-D', recovery.dataDir, '-m', 'immediate', '-w', 'stop'], { reject: false, cwd: '/', uid: owner.spawn.uid, gid: owner.spawn.gid });
  }
  await rm(recovery.folder, { recursive: true, force: true });
}

/** The live cluster's postmaster (its postmaster.pid), whose children (archive_command) are its own. */
export function livePostmaster(stack: ChaosStack): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(stack.cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * PostgreSQL servers (a `postgres -D <dir>` process) running from a folder inside the chaos
 * stack: none may, once a run has closed and its recovery was discarded.
 */
export function strayServers(stack: ChaosStack): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue;
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const dataDir = args[args.indexOf('-D') + 1];
    if (args.indexOf('-D') < 0 || !dataDir) continue;
    const resolved = path.resolve('/', dataDir);
    if (resolved.startsWith(stack.dir + path.sep)) found.push(`a PostgreSQL server (pid ${entry}) runs from ${resolved}`);
  }
  return found;
}
