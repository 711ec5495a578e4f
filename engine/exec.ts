// The one place that runs child processes. Every process gets the activity's cancellation
// signal (so a cancelled or timed-out activity leaves no pg_dump behind), secrets only through
// its environment, and stderr kept small (errors.ts redacts it into error messages).
import { execa, type ResultPromise } from 'execa';

export interface ProcessOptions {
  env?: Record<string, string | undefined>;
  /** Aborting it kills the process (SIGTERM, then SIGKILL after 5 s). */
  signal?: AbortSignal;
  /** What feeds stdin: nothing, a pipe we write to, or a file. */
  stdin?: 'ignore' | 'pipe' | { file: string };
  /** Write stdout to a file instead of a pipe. */
  stdoutFile?: string;
  cwd?: string;
  /** Run as another OS user (as root: PostgreSQL's server tools run as `postgres`). */
  uid?: number;
  gid?: number;
  /** In a process group of its own, so that it and every child it started can be killed at once. */
  ownProcessGroup?: boolean;
}

export type StreamingProcess = ResultPromise<{ buffer: { stdout: false; stderr: true } }>;

/** Starts a process whose stdout is consumed as a stream by the caller. */
export function spawnStreaming(file: string, args: string[], options: ProcessOptions = {}): StreamingProcess {
  return execa(file, args, {
    env: options.env,
    extendEnv: true,
    cancelSignal: options.signal,
    forceKillAfterDelay: 5_000,
    stdin: stdinOption(options.stdin),
    stdout: options.stdoutFile ? { file: options.stdoutFile } : 'pipe',
    stderr: 'pipe',
    buffer: { stdout: false, stderr: true },
    maxBuffer: { stderr: 64 * 1024 },
    stripFinalNewline: true,
    cwd: options.cwd,
    detached: options.ownProcessGroup === true,
  }) as StreamingProcess;
}

/** Runs a short command to completion and returns its output; throws an ExecaError on failure. */
export async function runCommand(
  file: string,
  args: string[],
  options: ProcessOptions & { input?: string } = {},
): Promise<{ stdout: string; stderr: string }> {
  const result = await execa(file, args, {
    env: options.env,
    extendEnv: true,
    cancelSignal: options.signal,
    forceKillAfterDelay: 5_000,
    input: options.input,
    stdin: options.input === undefined ? stdinOption(options.stdin) : undefined,
    maxBuffer: 16 * 1024 * 1024,
    cwd: options.cwd,
    uid: options.uid,
    gid: options.gid,
  });
  return { stdout: String(result.stdout), stderr: String(result.stderr) };
}

function stdinOption(stdin: ProcessOptions['stdin']): 'ignore' | 'pipe' | { file: string } {
  return stdin ?? 'ignore';
}
