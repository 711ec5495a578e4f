// npm run bench: the backup workflow against bare pg_dump and the seed's procedure, then the
// weekly verification (from S3) against bare pg_restore, side by side on the same reference
// databases, alternating, then point-in-time recovery against pgBackRest on an archiving
// cluster (pitr.ts), then WAL archiving against pgBackRest archive-push (walArchive.ts), then retention at
// scale against the issue's absolute targets (retention.ts; no baseline tool), with tables written to docs/benchmarks.md. Everything it
// starts (PostgreSQL, Temporal, SeaweedFS, workers) and every file it writes under the temp
// folder is removed at the end, on failure and on Ctrl-C.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CONTENDER_IDS, CONTENDERS, type ContenderContext, type ContenderId, type ContenderResult } from './contenders.js';
import { parseOptions } from './options.js';
import { runPitrPhase, type PitrResults } from './pitr.js';
import { OTHER, waitForQuiet } from './procfs.js';
import { buildReferenceData, startReferenceCluster, type BenchDatabase } from './referenceDatabase.js';
import { collectMachine, mergeAnalysis, PITR_SECTION, renderPitr, renderReport, renderWalArchive, spliceSection, WAL_SECTION, type GrowthResults, type MixResults, type RestoreResults } from './report.js';
import { prepareRestoreSubject, RESTORE_CONTENDER_IDS, RESTORE_CONTENDERS, runDrill, type RestoreContenderId } from './restoreContenders.js';
import { startWorkflowStack } from './stack.js';
import { measureStartup, renderStartup } from './startup.js';
import { renderRetention, RETENTION_SECTION, runRetentionPhase, type RetentionResults } from './retention.js';
import { runWalArchivePhase, type WalArchiveResults } from './walArchive.js';
import { killWorkers } from './workerProcess.js';

const t0 = performance.now();
const say = (line: string) => process.stderr.write(`bench [${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);

const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    // Whatever was in flight (a client call retrying on a closed connection, a stream of a
    // killed worker) may now fail anywhere: note it and go on cleaning up.
    const late = (err: unknown) => say(`while cleaning up: ${(err as Error)?.message ?? err}`);
    process.on('uncaughtException', late);
    process.on('unhandledRejection', late);
    killWorkers();
    for (const step of cleanups.splice(0)) await step().catch((err) => say(`cleanup: ${(err as Error).message}`));
  })();
  return cleaning;
}
// process.on, not once: execa's exit hook re-raises a signal nobody else listens to, which
// would end the process in the middle of the cleanup.
let signalled = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (signalled) {
      say(`${signal} again: exiting without finishing the cleanup`);
      process.exit(130);
    }
    signalled = true;
    say(`${signal}: stopping and cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

/** A run during which processes outside the benchmark used more than this is repeated. */
const MAX_OTHER_CORES = 0.2;
/** Attempts of a run other processes loaded; --attempts overrides (1: never repeated). */
const MAX_ATTEMPTS = 4;

/** Rotates the contender order by one each round: A B C D, B C D A, ... */
function orderOf<Id>(ids: Id[], round: number): Id[] {
  return ids.map((_, i) => ids[(i + round) % ids.length]);
}

/** One run in a line; `bytes` says what storedBytes counts (a backup's stored bytes, or what a restore read). */
function describe(id: string, r: ContenderResult, bytes: 'stored' | 'read'): string {
  const rss = r.peakRssBytes !== undefined ? `, worker idle ${((r.idleRssBytes ?? NaN) / 2 ** 20).toFixed(0)} -> peak ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB` : '';
  return `${id}: ${(r.wallMs / 1000).toFixed(1)} s, ${(r.storedBytes / 1e6).toFixed(1)} MB ${bytes}${rss}, tree peak ${(r.treePeakRssBytes / 2 ** 20).toFixed(0)} MiB`;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  say(`options: ${JSON.stringify(options)}`);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-bench-'));
  // PostgreSQL runs as `postgres` under the cluster's own temp folder; ours only needs to be ours.
  cleanups.push(async () => rmSync(workDir, { recursive: true, force: true }));

  if (options.onlyWal) {
    // WAL archiving alone (its own cluster; no Temporal, no reference data): its section only.
    const lines = renderWalArchive(await runWalArchivePhase(options.walSegments, cleanups, say));
    // Said where it shows: the file's header names the full run, which this one was not.
    lines.splice(1, 0, '', `Measured ${new Date().toISOString().slice(0, 10)} alone (\`npm run bench -- --only-wal\`, ${((performance.now() - t0) / 1000).toFixed(0)} s), not in the full run the header describes.`);
    const section = lines.join('\n');
    process.stdout.write('\n' + section + '\n');
    if (options.out) {
      mkdirSync(path.dirname(options.out), { recursive: true });
      writeFileSync(options.out, spliceSection(WAL_SECTION, section, options.out));
      say(`replaced the WAL archiving section of ${options.out}`);
    }
    return;
  }

  if (options.onlyRetention) {
    // Retention alone (its own SeaweedFS; no PostgreSQL, no Temporal): its section only.
    const lines = renderRetention(await runRetentionPhase(options.retentionScale, cleanups, say));
    lines.splice(1, 0, '', `Measured ${new Date().toISOString().slice(0, 10)} alone (\`npm run bench -- ${process.argv.slice(2).join(' ')}\`, ${((performance.now() - t0) / 1000).toFixed(0)} s with the planting), not in the full run the header describes.`);
    const section = lines.join('\n');
    process.stdout.write('\n' + section + '\n');
    if (options.out) {
      mkdirSync(path.dirname(options.out), { recursive: true });
      writeFileSync(options.out, spliceSection(RETENTION_SECTION, section, options.out));
      say(`replaced the retention section of ${options.out}`);
    }
    return;
  }

  // First, while nothing of ours runs: what every command pays to start (dist/ against tsx).
  let startup: Awaited<ReturnType<typeof measureStartup>> | undefined;
  if (!options.onlyPitr) {
    say('CLI start-up: compiled against tsx');
    startup = await measureStartup(7, say);
  }

  const cluster = await startReferenceCluster();
  cleanups.unshift(() => cluster.stop());
  // --only-pitr: no reference data (the phase builds its own database on its own cluster).
  say(options.onlyPitr ? `PostgreSQL on port ${cluster.port} (the workflow stack's)` : `PostgreSQL on port ${cluster.port}; building the reference data (scale ${options.scale})`);
  const databases = options.onlyPitr ? [] : await buildReferenceData(cluster, options, say);

  const stack = await startWorkflowStack(workDir, cluster, say);
  cleanups.unshift(() => stack.stop());
  const outDir = path.join(workDir, 'out');
  mkdirSync(outDir);
  const postmaster = Number(readFileSync(path.join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const ours = [process.pid, postmaster];
  const ctx: ContenderContext = { cluster, stack, outDir, sampleMs: options.sampleMs, ours };

  let repeated = 0;
  const measure = async <R extends ContenderResult>(db: BenchDatabase, label: string, id: string, contender: () => Promise<R>, bytes: 'stored' | 'read' = 'stored'): Promise<R> => {
    for (let attempt = 1; ; attempt++) {
      // Another job on the machine would distort every number: wait for it to pass...
      const quiet = await waitForQuiet(ours, undefined, options.quietWaitSeconds * 1000);
      if (quiet.waitedMs > 1500) say(`waited ${(quiet.waitedMs / 1000).toFixed(0)} s for other processes to go quiet (now ${quiet.otherCores.toFixed(2)} cores)`);
      const result = await contender();
      const other = result.usage.programs[OTHER]?.cpuSeconds ?? 0;
      const otherCores = other / (result.wallMs / 1000);
      say(`${db.name} ${label} ${describe(id, result, bytes)}${other >= 0.5 ? `; other processes used ${other.toFixed(1)} CPU s meanwhile` : ''}`);
      // ...and repeat a run it loaded anyway (more than a tenth of the machine's CPU).
      if (otherCores <= MAX_OTHER_CORES || attempt >= (options.attempts ?? MAX_ATTEMPTS)) return result;
      repeated++;
      say(`repeating: other processes used ${otherCores.toFixed(2)} cores during the run`);
    }
  };
  const run = (id: ContenderId, db: BenchDatabase, label: string) => measure(db, label, id, () => CONTENDERS[id](ctx, db));

  /** The way back on one database: verification from S3 and bare pg_restore, alternating, then one drill. */
  const restorePhase = async (db: BenchDatabase): Promise<RestoreResults> => {
    say(`${db.name}: the way back; one backup into S3 and one \`pg_dump -Fc\` file to restore (untimed)`);
    const subject = await prepareRestoreSubject(ctx, db);
    try {
      const restoreRun = (id: RestoreContenderId, label: string) => measure(db, label, id, () => RESTORE_CONTENDERS[id](ctx, subject), 'read');
      say(`${db.name}: restore warm-up pass`);
      for (const id of RESTORE_CONTENDER_IDS) await restoreRun(id, 'restore warm-up');
      const runs = Object.fromEntries(RESTORE_CONTENDER_IDS.map((id) => [id, [] as ContenderResult[]])) as Record<RestoreContenderId, ContenderResult[]>;
      const orders: RestoreContenderId[][] = [];
      for (let round = 0; round < options.rounds; round++) {
        const order = orderOf(RESTORE_CONTENDER_IDS, round);
        orders.push(order);
        for (const id of order) runs[id].push(await restoreRun(id, `restore round ${round + 1}/${options.rounds}`));
      }
      await waitForQuiet(ours);
      const drill = await runDrill(ctx, subject);
      say(`${db.name} recovery drill from S3: RTO ${drill.result.rtoSeconds!.toFixed(1)} s, RPO ${drill.result.rpoSeconds!.toFixed(0)} s (wall ${(drill.wallMs / 1000).toFixed(1)} s)`);
      return { subject, runs, orders, drill };
    } finally {
      await subject.dispose();
    }
  };

  if (options.onlyPitr) {
    say('point-in-time recovery against pgBackRest, alone');
    const lines = renderPitr(await runPitrPhase(ctx, options, measure, cleanups, say));
    lines.splice(
      1,
      0,
      '',
      `Measured ${new Date().toISOString().slice(0, 10)} alone (\`npm run bench -- ${process.argv.slice(2).join(' ')}\`, ` +
        `${((performance.now() - t0) / 1000).toFixed(0)} s, ${repeated} run${repeated === 1 ? '' : 's'} repeated for other load), not in the full run the header describes. ` +
        'Other jobs shared the machine: their CPU during each contender\'s runs is the "other load" column.',
    );
    const section = lines.join('\n');
    process.stdout.write('\n' + section + '\n');
    if (options.out) {
      mkdirSync(path.dirname(options.out), { recursive: true });
      writeFileSync(options.out, spliceSection(PITR_SECTION, section, options.out));
      say(`replaced the point-in-time recovery section of ${options.out}`);
    }
    return;
  }

  const mixes: MixResults[] = [];
  const restores: RestoreResults[] = [];
  let growth: GrowthResults | undefined;
  for (const db of databases.filter((d) => d.role === 'main')) {
    say(`${db.name}: warm-up pass`);
    for (const id of CONTENDER_IDS) await run(id, db, 'warm-up');
    const runs = Object.fromEntries(CONTENDER_IDS.map((id) => [id, [] as ContenderResult[]])) as Record<ContenderId, ContenderResult[]>;
    const orders: ContenderId[][] = [];
    for (let round = 0; round < options.rounds; round++) {
      const order = orderOf(CONTENDER_IDS, round);
      orders.push(order);
      for (const id of order) runs[id].push(await run(id, db, `round ${round + 1}/${options.rounds}`));
    }
    mixes.push({ db, runs, orders });

    const small = databases.find((d) => d.role === 'growth' && d.mix === db.mix);
    if (small) {
      say(`${small.name}: the workflow at a quarter of the scale (memory growth check)`);
      await run('workflow', small, 'warm-up');
      const smallRuns: ContenderResult[] = [];
      for (let round = 0; round < options.rounds; round++) smallRuns.push(await run('workflow', small, `round ${round + 1}/${options.rounds}`));
      growth = { small, large: db, smallRuns, largeRuns: runs.workflow };
    }
    if (options.restore) restores.push(await restorePhase(db));
  }

  let pitr: PitrResults | undefined;
  if (options.pitr) {
    say('point-in-time recovery against pgBackRest');
    pitr = await runPitrPhase(ctx, options, measure, cleanups, say);
    const rpo = pitr.rpo.samples.map((x) => x.delaySeconds).filter((x): x is number => x !== null);
    say(`pitr RPO under load: ${rpo.length} samples, max ${Math.max(...rpo).toFixed(1)} s`);
  }

  let wal: WalArchiveResults | undefined;
  if (options.wal) {
    say('WAL archiving against pgbackrest archive-push');
    wal = await runWalArchivePhase(options.walSegments, cleanups, say, [...ours]);
  }

  let retention: RetentionResults | undefined;
  if (options.retention) {
    say(`retention: a prune at scale ${options.retentionScale} against the issue's targets`);
    retention = await runRetentionPhase(options.retentionScale, cleanups, say);
  }

  const machine = await collectMachine(cluster, workDir);
  const report = renderReport({ options, machine, mixes, growth, restores, pitr, wal, retention, repeated, totalSeconds: (performance.now() - t0) / 1000 }) + '\n' + renderStartup(startup!);
  process.stdout.write('\n' + report + '\n');
  if (options.out) {
    mkdirSync(path.dirname(options.out), { recursive: true });
    writeFileSync(options.out, mergeAnalysis(report, options.out));
    say(`wrote ${options.out}`);
  }
}

try {
  await main();
} catch (err) {
  say(signalled ? 'interrupted' : `failed: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
