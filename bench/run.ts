// npm run bench: the backup workflow against bare pg_dump and the seed's procedure, side by
// side on the same reference databases, alternating, with a ratio table written to
// docs/benchmarks.md. Everything it starts (PostgreSQL, Temporal, SeaweedFS, workers) and
// every file it writes under the temp folder is removed at the end, on failure and on Ctrl-C.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CONTENDER_IDS, CONTENDERS, killWorkers, type ContenderContext, type ContenderId, type ContenderResult } from './contenders.js';
import { parseOptions } from './options.js';
import { OTHER, waitForQuiet } from './procfs.js';
import { buildReferenceData, startReferenceCluster, type BenchDatabase } from './referenceDatabase.js';
import { collectMachine, mergeAnalysis, renderReport, type GrowthResults, type MixResults } from './report.js';
import { startWorkflowStack } from './stack.js';

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
const MAX_ATTEMPTS = 4;

/** Rotates the contender order by one each round: A B C D, B C D A, ... */
function orderOf(round: number): ContenderId[] {
  return CONTENDER_IDS.map((_, i) => CONTENDER_IDS[(i + round) % CONTENDER_IDS.length]);
}

function describe(id: ContenderId, r: ContenderResult): string {
  const rss = r.peakRssBytes !== undefined ? `, worker idle ${((r.idleRssBytes ?? NaN) / 2 ** 20).toFixed(0)} -> peak ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB` : '';
  return `${id}: ${(r.wallMs / 1000).toFixed(1)} s, ${(r.storedBytes / 1e6).toFixed(1)} MB stored${rss}, tree peak ${(r.treePeakRssBytes / 2 ** 20).toFixed(0)} MiB`;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  say(`options: ${JSON.stringify(options)}`);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-bench-'));
  // PostgreSQL runs as `postgres` under the cluster's own temp folder; ours only needs to be ours.
  cleanups.push(async () => rmSync(workDir, { recursive: true, force: true }));

  const cluster = await startReferenceCluster();
  cleanups.unshift(() => cluster.stop());
  say(`PostgreSQL on port ${cluster.port}; building the reference data (scale ${options.scale})`);
  const databases = await buildReferenceData(cluster, options, say);

  const stack = await startWorkflowStack(workDir, cluster, say);
  cleanups.unshift(() => stack.stop());
  const outDir = path.join(workDir, 'out');
  mkdirSync(outDir);
  const postmaster = Number(readFileSync(path.join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const ours = [process.pid, postmaster];
  const ctx: ContenderContext = { cluster, stack, outDir, sampleMs: options.sampleMs, ours };

  let repeated = 0;
  const run = async (id: ContenderId, db: BenchDatabase, label: string) => {
    for (let attempt = 1; ; attempt++) {
      // Another job on the machine would distort every number: wait for it to pass...
      const quiet = await waitForQuiet(ours);
      if (quiet.waitedMs > 1500) say(`waited ${(quiet.waitedMs / 1000).toFixed(0)} s for other processes to go quiet (now ${quiet.otherCores.toFixed(2)} cores)`);
      const result = await CONTENDERS[id](ctx, db);
      const other = result.usage.programs[OTHER]?.cpuSeconds ?? 0;
      const otherCores = other / (result.wallMs / 1000);
      say(`${db.name} ${label} ${describe(id, result)}${other >= 0.5 ? `; other processes used ${other.toFixed(1)} CPU s meanwhile` : ''}`);
      // ...and repeat a run it loaded anyway (more than a tenth of the machine's CPU).
      if (otherCores <= MAX_OTHER_CORES || attempt >= MAX_ATTEMPTS) return result;
      repeated++;
      say(`repeating: other processes used ${otherCores.toFixed(2)} cores during the run`);
    }
  };

  const mixes: MixResults[] = [];
  let growth: GrowthResults | undefined;
  for (const db of databases.filter((d) => d.role === 'main')) {
    say(`${db.name}: warm-up pass`);
    for (const id of CONTENDER_IDS) await run(id, db, 'warm-up');
    const runs = Object.fromEntries(CONTENDER_IDS.map((id) => [id, [] as ContenderResult[]])) as Record<ContenderId, ContenderResult[]>;
    const orders: ContenderId[][] = [];
    for (let round = 0; round < options.rounds; round++) {
      const order = orderOf(round);
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
  }

  const machine = await collectMachine(cluster, workDir);
  const report = renderReport({ options, machine, mixes, growth, repeated, totalSeconds: (performance.now() - t0) / 1000 });
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
