// The contenders, each a function that backs up one database and says what it cost:
//   workflow  backupDatabase end to end: worker process, three repositories, encrypted, verified
//   counted   the same, counting every table in the dump's snapshot (keyTables: all, the
//             default of a configuration that names no key tables) instead of the demo's three
//   fc        pg_dump -Fc -f file                 (what an operator would do by hand)
//   floor     pg_dump -Fc -Z0 -f file             (no compression: the floor)
//   seed      the seed runbook: custom dump + plain dump + gzip + gunzip -t
import { mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { tsToMs } from '@temporalio/common/lib/time.js';
import { backupDatabase } from '../workflows/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import type { PgCluster } from '../test/fixtures/postgres.js';
import { currentRss, peakRss, resetPeakRss, Sampler, type SampleResult, type WindowUsage } from './procfs.js';
import type { BenchDatabase } from './referenceDatabase.js';
import { BENCH_HOST, type WorkflowStack } from './stack.js';
import { startWorkerProcess } from './workerProcess.js';

export type ContenderId = 'workflow' | 'counted' | 'fc' | 'floor' | 'seed';
export const CONTENDER_IDS: ContenderId[] = ['workflow', 'counted', 'fc', 'floor', 'seed'];

export const CONTENDER_LABELS: Record<ContenderId, string> = {
  workflow: 'backupDatabase workflow (3 repos, zstd, gpg, verified)',
  counted: 'the same, `keyTables: all` (every table counted)',
  fc: '`pg_dump -Fc -f file`',
  floor: '`pg_dump -Fc -Z0 -f file` (floor)',
  seed: 'seed procedure (custom + plain + gzip + `gunzip -t`)',
};

export interface ContenderResult {
  wallMs: number;
  /** Bytes of one stored backup (for the workflow: one repository's copy, dump + globals). */
  storedBytes: number;
  /** The Node worker's peak RSS during this run (VmHWM, reset just before the run). */
  peakRssBytes?: number;
  /** The worker's RSS when the run started: polling, idle, the workflow code bundled. */
  idleRssBytes?: number;
  /** Peak of the summed RSS of the contender's process tree (worker + its children, or the tools). */
  treePeakRssBytes: number;
  usage: SampleResult;
  /** Seconds per step: the workflow's activities (scheduled to completed), or the seed's commands. */
  steps: Record<string, number>;
  /** The workflow's activities: CPU by program while each ran. */
  phases?: Record<string, WindowUsage>;
}

export interface ContenderContext {
  cluster: PgCluster;
  stack: WorkflowStack;
  /** Folder for the bare contenders' files, on the same disk as the repositories. */
  outDir: string;
  sampleMs: number;
  /** Roots of the benchmark's own process trees (itself, the postmaster); the rest is other load. */
  ours: number[];
}

export type Contender = (ctx: ContenderContext, db: BenchDatabase) => Promise<ContenderResult>;

export const CONTENDERS: Record<ContenderId, Contender> = {
  workflow: (ctx, db) => runWorkflow(ctx, db, 'demo'),
  counted: (ctx, db) => runWorkflow(ctx, db, 'all'),
  fc: (ctx, db) => runPgDump(ctx, db, []),
  floor: (ctx, db) => runPgDump(ctx, db, ['-Z0']),
  seed: runSeedProcedure,
};

// ---------------------------------------------------------------------------------------------
// The workflow, with its worker as a separate process (workerProcess.ts) so its memory can be measured.

let runCounter = 0;

/** A workflow id unique in this benchmark run. */
export function benchWorkflowId(kind: string, db: BenchDatabase): string {
  return `bench-${kind}-${db.name}-${process.pid}-${++runCounter}`;
}

export type WorkflowRun<R> = Omit<ContenderResult, 'storedBytes'> & { result: R };

/**
 * Runs one workflow on a fresh worker process for the given configuration and measures it:
 * wall time from start to result, the worker's idle and peak RSS, CPU by program, and each
 * activity's time. Bundling the workflow code happens as the worker starts, before the
 * clock starts; its peak RSS is reset once it polls, so the peak covers this run only.
 */
export async function measureWorkflow<R>(ctx: ContenderContext, configFile: string, workflowId: string, start: () => Promise<R>): Promise<WorkflowRun<R>> {
  const worker = await startWorkerProcess(configFile);
  try {
    const idleRssBytes = currentRss(worker.pid);
    if (!resetPeakRss(worker.pid)) throw new Error(`cannot reset VmHWM of the worker (/proc/${worker.pid}/clear_refs)`);
    const labels = new Map([
      [worker.pid, 'node (worker)'],
      [process.pid, 'node (bench)'],
    ]);
    const sampler = new Sampler(worker.pid, labels, ctx.sampleMs, ctx.ours);
    const t0 = performance.now();
    let usage: SampleResult;
    let result: R;
    try {
      result = await start();
    } catch (err) {
      throw new Error(`workflow ${workflowId} failed: ${(err as Error).message}; cause: ${(err as { cause?: Error }).cause?.message}\n--- worker log (tail) ---\n${worker.stderrTail()}`, { cause: err });
    } finally {
      usage = sampler.stop();
    }
    const wallMs = performance.now() - t0;
    const peakRssBytes = peakRss(worker.pid);
    const { steps, windows } = await activityTimes(ctx.stack, workflowId, wallMs);
    const phases: Record<string, WindowUsage> = {};
    for (const w of windows) phases[w.name] = usage.window(w.from, w.to);
    return { result, wallMs, peakRssBytes, idleRssBytes, treePeakRssBytes: usage.treePeakRssBytes, usage, steps, phases };
  } finally {
    await worker.stop();
  }
}

async function runWorkflow(ctx: ContenderContext, db: BenchDatabase, keyTables: 'demo' | 'all'): Promise<ContenderResult> {
  const { stack } = ctx;
  const workflowId = benchWorkflowId(keyTables === 'demo' ? 'backup' : 'backup-counted', db);
  try {
    const { result, ...run } = await measureWorkflow(ctx, stack.configFor(db.name, keyTables).file, workflowId, async () => {
      const handle = await stack.client.workflow.start(backupDatabase, {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId,
        args: [{ hostTaskQueue: hostTaskQueue(BENCH_HOST) }],
      });
      return handle.result();
    });
    return { ...run, storedBytes: result.objects.reduce((sum, o) => sum + o.bytes, 0) };
  } finally {
    await stack.clearRepositories();
  }
}

/** Each activity's time from scheduled to completed, from the workflow's history. */
async function activityTimes(
  stack: WorkflowStack,
  workflowId: string,
  wallMs: number,
): Promise<{ steps: Record<string, number>; windows: Array<{ name: string; from: number; to: number }> }> {
  const history = await stack.client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, { name: string; at: number }>();
  const steps: Record<string, number> = {};
  const windows: Array<{ name: string; from: number; to: number }> = [];
  let inActivities = 0;
  for (const event of history.events ?? []) {
    const at = tsToMs(event.eventTime);
    const s = event.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(event.eventId), { name: s.activityType?.name ?? '?', at });
    const done = event.activityTaskCompletedEventAttributes;
    if (done) {
      const start = scheduled.get(String(done.scheduledEventId));
      if (start) {
        const seconds = (at - start.at) / 1000;
        steps[start.name] = (steps[start.name] ?? 0) + seconds;
        windows.push({ name: start.name, from: start.at, to: at });
        inActivities += seconds;
      }
    }
  }
  steps['(workflow tasks, client round trips)'] = Math.max(0, wallMs / 1000 - inActivities);
  return { steps, windows };
}

// ---------------------------------------------------------------------------------------------
// The bare contenders: plain commands, files in outDir (same disk), no fsync forced.

export interface Step {
  name: string;
  file: string;
  args: string[];
  env?: Record<string, string>;
  /** Run as this OS user (pgBackRest and pg_ctl refuse root). */
  uid?: number;
  gid?: number;
}

export async function runSteps(ctx: ContenderContext, steps: Step[], cwd: string): Promise<Omit<ContenderResult, 'storedBytes'>> {
  const sampler = new Sampler(undefined, new Map([[process.pid, 'node (bench)']]), ctx.sampleMs, ctx.ours);
  const seconds: Record<string, number> = {};
  const t0 = performance.now();
  let usage: SampleResult;
  try {
    for (const step of steps) {
      const s0 = performance.now();
      const child = execa(step.file, step.args, { cwd, env: step.env, extendEnv: true, uid: step.uid, gid: step.gid, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
      sampler.setRoot(child.pid);
      try {
        await child;
      } catch (err) {
        throw new Error(`${step.name} failed: ${(err as { stderr?: string }).stderr || (err as Error).message}`, { cause: err });
      }
      seconds[step.name] = (performance.now() - s0) / 1000;
    }
  } finally {
    usage = sampler.stop();
  }
  return { wallMs: performance.now() - t0, treePeakRssBytes: usage.treePeakRssBytes, usage, steps: seconds };
}

function freshDir(ctx: ContenderContext, name: string): string {
  const dir = path.join(ctx.outDir, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function runPgDump(ctx: ContenderContext, db: BenchDatabase, extra: string[]): Promise<ContenderResult> {
  const dir = freshDir(ctx, 'pg_dump');
  const file = path.join(dir, `${db.name}.dump`);
  try {
    const run = await runSteps(
      ctx,
      [{ name: `pg_dump -Fc ${extra.join(' ')}`.trim(), file: path.join(ctx.cluster.binDir, 'pg_dump'), args: ['-Fc', ...extra, '-f', file, db.name], env: ctx.cluster.env(db.name) }],
      dir,
    );
    return { ...run, storedBytes: statSync(file).size };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Exactly the seed runbook's commands (without its -W password prompt). */
async function runSeedProcedure(ctx: ContenderContext, db: BenchDatabase): Promise<ContenderResult> {
  const dir = freshDir(ctx, 'seed');
  const base = path.join(dir, db.name);
  const pgDump = path.join(ctx.cluster.binDir, 'pg_dump');
  const env = ctx.cluster.env(db.name);
  try {
    const run = await runSteps(
      ctx,
      [
        { name: 'pg_dump --format=custom', file: pgDump, args: ['--clean', '--create', '--format=custom', `--file=${base}.backup`, db.name], env },
        { name: 'pg_dump --format=plain', file: pgDump, args: ['--clean', '--create', '--format=plain', `--file=${base}.sql`, db.name], env },
        { name: 'gzip', file: 'gzip', args: [`${base}.sql`] },
        { name: 'gunzip -t', file: 'gunzip', args: ['-t', `${base}.sql.gz`] },
      ],
      dir,
    );
    return { ...run, storedBytes: statSync(`${base}.backup`).size + statSync(`${base}.sql.gz`).size };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
