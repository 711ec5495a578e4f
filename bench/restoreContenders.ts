// The way back, measured the same way as the backup: the weekly verification end to end
// against what an operator would do by hand with a local dump file, on the same database.
//   verify  verifyBackup on the restoring host, whose only repository is S3: fetch, gpg -d,
//           zstd -d into a staged archive, createdb, pg_restore -j2, counts (pg_amcheck off),
//           drop the scratch database, write the verdict
//   bare    createdb, pg_restore -j2 --exit-on-error of a local `pg_dump -Fc` file, count(*) of
//           the same key tables against the same counts, dropdb
// Plus one recoveryDrill from the S3 copy, for the RTO and RPO it reports.
import { mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { backupDatabase, recoveryDrill, verifyBackup } from '../workflows/index.js';
import type { DrillReport } from '../common/restoreTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { benchWorkflowId, measureWorkflow, runSteps, type ContenderContext, type ContenderResult, type WorkflowRun } from './contenders.js';
import type { BenchDatabase } from './referenceDatabase.js';
import { BENCH_HOST, RESTORE_HOST, RESTORE_JOBS } from './stack.js';
import { startWorkerProcess } from './workerProcess.js';

export type RestoreContenderId = 'verify' | 'bare';
export const RESTORE_CONTENDER_IDS: RestoreContenderId[] = ['verify', 'bare'];

export const RESTORE_CONTENDER_LABELS: Record<RestoreContenderId, string> = {
  verify: `verifyBackup workflow (from S3: gpg -d, zstd -d, \`pg_restore -j${RESTORE_JOBS}\`, counts; pg_amcheck off)`,
  bare: `\`createdb\` + \`pg_restore -j${RESTORE_JOBS}\` of a local \`pg_dump -Fc\` file + counts + \`dropdb\``,
};

/** The activity whose time includes the fetch from S3; the pg_restore inside it is reported apart. */
export const RESTORE_ACTIVITY = 'restoreIntoNewDatabase';
export const PG_RESTORE_STEP = `pg_restore -j${RESTORE_JOBS}`;

/** What both sides restore: one backup of the database in S3, and one local custom-format dump of it. */
export interface RestoreSubject {
  db: BenchDatabase;
  backupId: string;
  /** Row counts of the key tables as the backup recorded them; the bare side checks the same. */
  rowCounts: Record<string, number>;
  /** The dump object in S3 (compressed, encrypted): what the verification fetches. */
  storedBytes: number;
  /** The archive before compression: what the verification stages and pg_restore reads. */
  plainBytes: number;
  dumpFile: string;
  dumpBytes: number;
  /** Removes the dump file and the backup (untimed). */
  dispose(): Promise<void>;
}

/**
 * Makes, untimed, what both sides restore: a backup of the database into the S3 repository
 * only (the restoring host sees nothing else), and `pg_dump -Fc` of it to a local file.
 */
export async function prepareRestoreSubject(ctx: ContenderContext, db: BenchDatabase): Promise<RestoreSubject> {
  const { stack, cluster } = ctx;
  await stack.clearRepositories();
  const dir = path.join(ctx.outDir, 'restore');
  mkdirSync(dir, { recursive: true });
  const dumpFile = path.join(dir, `${db.name}.dump`);
  const dispose = async () => {
    rmSync(dumpFile, { force: true });
    await stack.clearRepositories();
  };
  try {
    const worker = await startWorkerProcess(stack.configFor(db.name).file);
    let backup;
    try {
      backup = await stack.client.workflow.execute(backupDatabase, {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId: benchWorkflowId('backup-for-restore', db),
        args: [{ hostTaskQueue: hostTaskQueue(BENCH_HOST), repositories: ['s3'] }],
      });
    } catch (err) {
      throw new Error(`the backup to restore failed: ${(err as { cause?: Error }).cause?.message ?? (err as Error).message}\n--- worker log (tail) ---\n${worker.stderrTail()}`, { cause: err });
    } finally {
      await worker.stop();
    }
    await execa(path.join(cluster.binDir, 'pg_dump'), ['-Fc', '-f', dumpFile, db.name], { env: cluster.env(db.name), stdin: 'ignore' });
    const dump = backup.objects.find((o) => o.role === 'dump')!;
    return {
      db,
      backupId: backup.backupId,
      rowCounts: backup.rowCounts,
      storedBytes: dump.bytes,
      plainBytes: dump.plainBytes,
      dumpFile,
      dumpBytes: statSync(dumpFile).size,
      dispose,
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}

export type RestoreContender = (ctx: ContenderContext, subject: RestoreSubject) => Promise<ContenderResult>;

export const RESTORE_CONTENDERS: Record<RestoreContenderId, RestoreContender> = {
  verify: runVerification,
  bare: runBareRestore,
};

/** verifyBackup on a fresh worker of the restoring host; "stored" is the object fetched from S3. */
async function runVerification(ctx: ContenderContext, subject: RestoreSubject): Promise<ContenderResult> {
  const { stack } = ctx;
  const workflowId = benchWorkflowId('verify', subject.db);
  const { result, ...run } = await measureWorkflow(ctx, stack.restoreConfigFor(subject.db.name).file, workflowId, () =>
    stack.client.workflow.execute(verifyBackup, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId,
      // pg_amcheck is off: the target compares fetch, decrypt, decompress, pg_restore and counts
      // (the definition); the weekly schedule runs it on top.
      args: [{ hostTaskQueue: hostTaskQueue(RESTORE_HOST), backup: subject.backupId, jobs: RESTORE_JOBS, amcheck: false }],
    }),
  );
  // The comparison means nothing unless the copy really came from S3 and passed.
  const copy = result.restored?.copy;
  if (!result.ok || !copy || !('repository' in copy) || copy.repository !== 's3') {
    throw new Error(`verification ${workflowId} did not restore the S3 copy: ${JSON.stringify({ ok: result.ok, copy, failure: result.failure })}`);
  }
  // pg_restore's own share of the activity (createdb, fetch and staging are the rest).
  run.steps[PG_RESTORE_STEP] = result.restored!.restoreSeconds;
  return { ...run, storedBytes: subject.storedBytes };
}

/** The operator's way: plain commands against the same cluster, the dump file on the same disk. */
async function runBareRestore(ctx: ContenderContext, subject: RestoreSubject): Promise<ContenderResult> {
  const { cluster } = ctx;
  const scratch = 'bench_bare_restore';
  const bin = (tool: string) => path.join(cluster.binDir, tool);
  const env = cluster.env('postgres');
  const dropScratch = () => cluster.query('postgres', `DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`);
  await dropScratch();
  try {
    const run = await runSteps(
      ctx,
      [
        // template0, like the workflow's CREATE DATABASE: pg_restore wants an empty database.
        { name: 'createdb', file: bin('createdb'), args: ['-T', 'template0', scratch], env },
        { name: PG_RESTORE_STEP, file: bin('pg_restore'), args: [`-j${RESTORE_JOBS}`, '--exit-on-error', '-d', scratch, subject.dumpFile], env },
        { name: 'count(*)', file: bin('psql'), args: ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', scratch, '-c', countCheck(subject.rowCounts)], env },
        // The verification drops its scratch database within its wall time: so does this side.
        { name: 'dropdb', file: bin('dropdb'), args: [scratch], env },
      ],
      ctx.outDir,
    );
    return { ...run, storedBytes: subject.dumpBytes };
  } finally {
    await dropScratch();
  }
}

/** One statement counting each key table and failing on a count other than the backup's. */
function countCheck(rowCounts: Record<string, number>): string {
  const ident = (name: string) =>
    name
      .split('.')
      .map((part) => `"${part.replace(/"/g, '""')}"`)
      .join('.');
  const checks = Object.entries(rowCounts).map(
    ([table, expected]) =>
      `SELECT count(*) INTO found FROM ${ident(table)}; ` +
      `IF found <> ${expected} THEN RAISE EXCEPTION '${table.replace(/'/g, "''")}: expected ${expected} rows, found %', found; END IF;`,
  );
  return `DO $$ DECLARE found bigint; BEGIN ${checks.join(' ')} END $$`;
}

export type DrillRun = WorkflowRun<DrillReport>;

/** One recovery drill from the S3 copy on the restoring host: its report holds RTO and RPO. */
export async function runDrill(ctx: ContenderContext, subject: RestoreSubject): Promise<DrillRun> {
  const { stack } = ctx;
  const workflowId = benchWorkflowId('drill', subject.db);
  const run = await measureWorkflow(ctx, stack.restoreConfigFor(subject.db.name).file, workflowId, () =>
    stack.client.workflow.execute(recoveryDrill, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId,
      args: [{ hostTaskQueue: hostTaskQueue(RESTORE_HOST), repository: 's3', backup: subject.backupId, jobs: RESTORE_JOBS }],
    }),
  );
  if (!run.result.ok || run.result.rtoSeconds === undefined) throw new Error(`drill ${workflowId} did not pass: ${JSON.stringify(run.result)}`);
  return run;
}
