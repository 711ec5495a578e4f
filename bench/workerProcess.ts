// A worker as a separate process (`node bin/backupctl.js worker`), so its memory can be
// measured apart from the benchmark's own, and killed with its children (pg_dump, zstd, gpg,
// pg_restore) on failure or Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from '../client/dev/tools.js';

const liveWorkers = new Set<ChildProcess>();

/** Kills every worker process group still running (on failure or Ctrl-C). */
export function killWorkers(): void {
  for (const child of liveWorkers) killGroup(child, 'SIGKILL');
  liveWorkers.clear();
}
process.once('exit', killWorkers);

export interface WorkerProcess {
  pid: number;
  stderrTail(): string;
  /** A signal to the worker's whole process group (SIGKILL, SIGSTOP, SIGCONT...). */
  signal(signal: NodeJS.Signals): void;
  /** Resolves when the worker process has exited, with how ("code 1", "signal SIGKILL"). */
  exited: Promise<string>;
  stop(): Promise<void>;
}

/** Starts a worker on a configuration file and resolves once it polls (its code bundled). */
export async function startWorkerProcess(configFile: string, env: Record<string, string> = {}): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'backupctl.js'), '--config', configFile, 'worker'], {
    cwd: PROJECT_ROOT,
    detached: true, // its own process group: stop() reaches pg_dump, zstd and gpg too
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  liveWorkers.add(child);
  let tail = '';
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `code ${code}`)));
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      tail = (tail + chunk.toString('utf8')).slice(-8000);
      if (tail.includes('"worker polling"')) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`worker exited before polling (code ${code}, signal ${signal}):\n${tail}`)));
    child.once('error', reject);
  });
  const timeout = setTimeout(() => killGroup(child, 'SIGKILL'), 120_000);
  try {
    await ready;
  } catch (err) {
    liveWorkers.delete(child);
    throw err;
  } finally {
    clearTimeout(timeout);
  }
  return {
    pid: child.pid!,
    stderrTail: () => tail,
    signal: (signal) => killGroup(child, signal),
    exited,
    async stop() {
      killGroup(child, 'SIGTERM');
      const killer = setTimeout(() => killGroup(child, 'SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
      liveWorkers.delete(child);
    },
  };
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (!child.pid || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // gone already
  }
}
