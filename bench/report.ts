// The ratio tables, the targets, and the machine, as markdown for the terminal and for
// docs/benchmarks.md. A hand-written analysis between the analysis markers of an existing
// report is kept when the report is rewritten.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { PgCluster } from '../test/fixtures/postgres.js';
import { CONTENDER_IDS, CONTENDER_LABELS, type ContenderId, type ContenderResult } from './contenders.js';
import type { BenchOptions } from './options.js';
import {
  ARCHIVE_GET_QUEUE_MAX,
  BASE_LABELS,
  BASELINE_POLL_MS,
  FETCH_PROCESSES,
  PITR_CONTENDER_IDS,
  PITR_LABELS,
  PUSH_PROCESSES,
  type PitrContenderId,
  type PitrResults,
  type PitrRun,
} from './pitr.js';
import { OTHER } from './procfs.js';
import type { BenchDatabase } from './referenceDatabase.js';
import {
  PG_RESTORE_STEP,
  RESTORE_ACTIVITY,
  RESTORE_CONTENDER_IDS,
  RESTORE_CONTENDER_LABELS,
  type DrillRun,
  type RestoreContenderId,
  type RestoreSubject,
} from './restoreContenders.js';
import { RESTORE_JOBS } from './stack.js';
import { WAL_CONTENDER_IDS, WAL_CONTENDER_LABELS, WAL_PROCESSES, type WalArchiveResults, type WalContenderId } from './walArchive.js';
import { renderRetention, type RetentionResults } from './retention.js';
import { PREFETCH_SEGMENTS } from '../engine/walPrefetch.js';

export interface MixResults {
  db: BenchDatabase;
  /** Measured rounds only (the warm-up pass is not here). */
  runs: Record<ContenderId, ContenderResult[]>;
  orders: ContenderId[][];
}

export interface GrowthResults {
  small: BenchDatabase;
  large: BenchDatabase;
  smallRuns: ContenderResult[];
  largeRuns: ContenderResult[];
}

export interface RestoreResults {
  subject: RestoreSubject;
  /** Measured rounds only (the warm-up pass is not here). */
  runs: Record<RestoreContenderId, ContenderResult[]>;
  orders: RestoreContenderId[][];
  drill: DrillRun;
}

export interface Machine {
  date: string;
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  kernel: string;
  os: string;
  disk: string;
  versions: Record<string, string>;
}

export interface BenchReport {
  options: BenchOptions;
  machine: Machine;
  mixes: MixResults[];
  growth?: GrowthResults;
  /** The way back, per mix; empty with --no-restore. */
  restores: RestoreResults[];
  /** Point-in-time recovery against pgBackRest; absent with --no-pitr. */
  pitr?: PitrResults;
  /** WAL archiving against pgBackRest archive-push; absent with --no-wal. */
  wal?: WalArchiveResults;
  retention?: RetentionResults;
  /** Runs repeated because processes outside the benchmark loaded the machine. */
  repeated: number;
  totalSeconds: number;
}

export const TARGETS = {
  wallVsFc: 0.75,
  wallVsSeed: 0.25,
  wallVsFloor: 1.2,
  storedVsFc: 0.8,
  workerRssMiB: 256,
  /** "Flat": the worker's peak at 4x the database at most this much above the peak at 1x. */
  growthFactor: 1.25,
  /** The weekly verification end to end (from S3) against bare `pg_restore -j2` of a local file. */
  verifyVsBareRestore: 1.15,
  /** backupBase against `pgbackrest --type=full backup` of the same cluster. */
  baseVsPgbackrest: 1.0,
  /** pointInTimeRecovery start to writable against pgBackRest's restore + the same replay. */
  pitrVsPgbackrest: 1.2,
  /** Commit until its WAL is in every repository, under a pgbench write load (worst sample). */
  rpoSeconds: 60,
  /** One archive_command call of ours async, median and p95 (ms). */
  walCallMs: 100,
  /** Segments per second of ours async against pgBackRest's archive-push with archive-async=y. */
  walRateVsPgbackrestAsync: 1.0,
};

const ANALYSIS_START = '<!-- analysis: kept when the benchmark rewrites this file -->';
const ANALYSIS_END = '<!-- /analysis -->';

// --------------------------------------------------------------------------------------------
// Machine

export async function collectMachine(cluster: PgCluster, workDir: string): Promise<Machine> {
  const first = async (file: string, args: string[], pick = (out: string) => out.split('\n')[0]) => {
    try {
      const r = await execa(file, args, { all: true });
      return pick(String(r.all ?? r.stdout).trim());
    } catch {
      return 'unavailable';
    }
  };
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const server = await cluster.query<{ v: string }>('postgres', 'SELECT version() AS v');
  const tools = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '.tools', 'venv', 'bin');
  return {
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown',
    memoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    os: existsSync('/etc/os-release') ? (/^PRETTY_NAME="?([^"\n]+)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'unknown') : 'unknown',
    disk: mountOf(workDir),
    versions: {
      PostgreSQL: server.rows[0].v.split(' on ')[0],
      pg_dump: await first(path.join(cluster.binDir, 'pg_dump'), ['--version']),
      zstd: await first('zstd', ['--version']),
      gpg: await first('gpg', ['--version'], (out) => out.split('\n').slice(0, 2).join(', ')),
      gzip: await first('gzip', ['--version']),
      Node: process.version,
      'Temporal CLI': await first(path.join(tools, 'temporal'), ['--version']),
      SeaweedFS: await first(path.join(tools, 'weed'), ['version'], (out) => out.split('\n').find((l) => /version/i.test(l)) ?? out),
    },
  };
}

/** The mount holding a folder: device, filesystem type and mount point. */
function mountOf(dir: string): string {
  try {
    const mounts = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f.length > 2 && dir.startsWith(f[1]))
      .sort((a, b) => b[1].length - a[1].length);
    return mounts.length ? `${mounts[0][0]} (${mounts[0][2]}) mounted at ${mounts[0][1]}` : 'unknown';
  } catch {
    return 'unknown';
  }
}

// --------------------------------------------------------------------------------------------
// Numbers

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

const MiB = 1024 * 1024;
const sec = (ms: number) => (ms / 1000).toFixed(1);
const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
const mib = (bytes: number | undefined) => (bytes === undefined || !Number.isFinite(bytes) ? '–' : (bytes / MiB).toFixed(0));
const ratio = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const yes = (ok: boolean) => (ok ? '**met**' : '**not met**');

interface Summary {
  wallMs: number;
  minMs: number;
  maxMs: number;
  storedBytes: number;
  workerRss?: number;
  idleRss?: number;
  treeRss: number;
  cpuSeconds: number;
  otherCpuSeconds: number;
}

function summarize(runs: ContenderResult[]): Summary {
  const walls = runs.map((r) => r.wallMs);
  const workers = runs.map((r) => r.peakRssBytes).filter((x): x is number => x !== undefined);
  const idle = runs.map((r) => r.idleRssBytes).filter((x): x is number => x !== undefined);
  return {
    wallMs: median(walls),
    minMs: Math.min(...walls),
    maxMs: Math.max(...walls),
    storedBytes: median(runs.map((r) => r.storedBytes)),
    // Memory: the worst round, not the median.
    workerRss: workers.length ? Math.max(...workers) : undefined,
    idleRss: idle.length ? median(idle) : undefined,
    treeRss: Math.max(...runs.map((r) => r.treePeakRssBytes)),
    cpuSeconds: median(runs.map((r) => Object.entries(r.usage.programs).reduce((s, [name, p]) => s + (name === OTHER ? 0 : p.cpuSeconds), 0))),
    otherCpuSeconds: median(runs.map((r) => r.usage.programs[OTHER]?.cpuSeconds ?? 0)),
  };
}

/** The round whose wall time is the median (for the breakdowns). */
function medianRun(runs: ContenderResult[]): ContenderResult {
  const sorted = [...runs].sort((a, b) => a.wallMs - b.wallMs);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

// --------------------------------------------------------------------------------------------
// Markdown

export function renderReport(report: BenchReport): string {
  const { machine, options } = report;
  const lines: string[] = [];
  const push = (...l: string[]) => lines.push(...l);
  push(
    '# Benchmarks',
    '',
    `Measured ${machine.date.slice(0, 10)} with \`npm run bench\` (\`--scale ${options.scale} --rounds ${options.rounds}` +
      `${options.growth ? '' : ' --no-growth'}${options.restore ? '' : ' --no-restore'}${options.pitr ? '' : ' --no-pitr'}${options.wal ? '' : ' --no-wal'}${options.retention ? (options.retentionScale === 1 ? '' : ` --retention-scale ${options.retentionScale}`) : ' --no-retention'}${options.mixes.length < 2 ? ` --mix ${options.mixes.join(',')}` : ''}\`; ` +
      `${(report.totalSeconds / 60).toFixed(1)} minutes in all, building the data included). Re-run it to refresh this file; ` +
      'everything but the hand-written analysis below is regenerated.',
    '',
    '## Machine',
    '',
    `* ${machine.cpus} CPUs: ${machine.cpuModel}; ${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB memory`,
    `* ${machine.kernel}; ${machine.os}`,
    `* disk: ${machine.disk} (database, repositories, dump files and the S3 server's data all on it)`,
    ...Object.entries(machine.versions).map(([k, v]) => `* ${k}: ${v}`),
    '',
  );

  for (const mix of report.mixes) push(...renderMix(mix, report.growth && mix.db.mix === 'text' ? report.growth : undefined));
  if (report.growth) push(...renderGrowth(report.growth));
  for (const restore of report.restores) push(...renderRestore(restore));
  if (report.pitr) push(...renderPitr(report.pitr));
  if (report.wal) push(...renderWalArchive(report.wal));
  if (report.retention) push(...renderRetention(report.retention));
  push(...renderBreakdown(report));
  push(...renderMethod(report));
  push('## Analysis', '', ANALYSIS_START, '', '(none yet)', '', ANALYSIS_END, '');
  return lines.join('\n');
}

function renderMix(mix: MixResults, growth: GrowthResults | undefined): string[] {
  const s = Object.fromEntries(CONTENDER_IDS.map((id) => [id, summarize(mix.runs[id])])) as Record<ContenderId, Summary>;
  const { db } = mix;
  const out = [
    `## ${db.mix === 'text' ? 'Compressible mix' : 'Poorly compressible mix'}: \`${db.name}\`, ${(db.bytes / 1e9).toFixed(2)} GB`,
    '',
    `${db.description}. Largest tables: ${db.tables.map((t) => `${t.name} ${(t.bytes / 1e6).toFixed(0)} MB (${t.rows.toLocaleString('en')} rows)`).join(', ')}.`,
    '',
    `Median of ${mix.runs.workflow.length} round${mix.runs.workflow.length > 1 ? 's' : ''} (min–max in brackets), after a warm-up pass of every contender.`,
    '',
    '| contender | wall s | × `pg_dump -Fc` | × seed | × floor | stored MB | stored × `pg_dump -Fc` | worker RSS MiB: idle → peak | process tree peak RSS MiB | CPU s | other load CPU s |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const id of CONTENDER_IDS) {
    const x = s[id];
    out.push(
      `| ${CONTENDER_LABELS[id]} | ${sec(x.wallMs)} (${sec(x.minMs)}–${sec(x.maxMs)}) | ${ratio(x.wallMs / s.fc.wallMs)} | ${ratio(x.wallMs / s.seed.wallMs)} | ` +
        `${ratio(x.wallMs / s.floor.wallMs)} | ${mb(x.storedBytes)} | ${ratio(x.storedBytes / s.fc.storedBytes)} | ` +
        `${x.workerRss === undefined ? '–' : `${mib(x.idleRss)} → ${mib(x.workerRss)}`} | ${mib(x.treeRss)} | ${x.cpuSeconds.toFixed(0)} | ${x.otherCpuSeconds.toFixed(1)} |`,
    );
  }
  const w = s.workflow;
  out.push(
    '',
    'The workflow stores three copies (local, nas, s3); "stored MB" is one copy (dump + globals), the others are one file ' +
      '(the seed: the `.backup` plus the `.sql.gz`). Worker RSS: the Node worker process\'s VmRSS when the run starts (polling, idle, ' +
      'workflow code bundled) and its VmHWM during the backup; the process tree adds its children (pg_dump, zstd, gpg, pg_restore) ' +
      'at the sampled peak. CPU s: every process the benchmark started (PostgreSQL backend, Temporal and SeaweedFS servers included); ' +
      '"other load" is what processes outside the benchmark used meanwhile (each run waits for them to go quiet first).',
    '',
    '| target | measured | |',
    '|---|--:|---|',
    `| wall ≤ ${TARGETS.wallVsFc} × \`pg_dump -Fc\` | ${ratio(w.wallMs / s.fc.wallMs)} | ${yes(w.wallMs / s.fc.wallMs <= TARGETS.wallVsFc)} |`,
    `| wall ≤ ${TARGETS.wallVsSeed} × the seed procedure | ${ratio(w.wallMs / s.seed.wallMs)} | ${yes(w.wallMs / s.seed.wallMs <= TARGETS.wallVsSeed)} |`,
    `| wall ≤ ${TARGETS.wallVsFloor} × the floor (\`-Z0\`) | ${ratio(w.wallMs / s.floor.wallMs)} | ${yes(w.wallMs / s.floor.wallMs <= TARGETS.wallVsFloor)} |`,
    `| stored bytes ≤ ${TARGETS.storedVsFc} × \`pg_dump -Fc\`'s | ${ratio(w.storedBytes / s.fc.storedBytes)} | ${yes(w.storedBytes / s.fc.storedBytes <= TARGETS.storedVsFc)} |`,
    `| worker peak RSS ≤ ${TARGETS.workerRssMiB} MiB (worst round) | ${mib(w.workerRss)} MiB | ${yes((w.workerRss ?? Infinity) <= TARGETS.workerRssMiB * MiB)} |`,
    `| counting every table (\`keyTables: all\`), wall × counting the three key tables | ${ratio(s.counted.wallMs / w.wallMs)} | no target: the cost of the default |`,
  );
  if (growth) {
    const small = Math.max(...growth.smallRuns.map((r) => r.peakRssBytes ?? NaN));
    const large = Math.max(...growth.largeRuns.map((r) => r.peakRssBytes ?? NaN));
    out.push(
      `| worker peak RSS flat when the database grows ${(growth.large.bytes / growth.small.bytes).toFixed(1)}x (≤ ${TARGETS.growthFactor}x) | ` +
        `${mib(small)} → ${mib(large)} MiB (${ratio(large / small)}x) | ${yes(large / small <= TARGETS.growthFactor)} |`,
    );
  }
  out.push('');
  return out;
}

function renderGrowth(g: GrowthResults): string[] {
  const row = (db: BenchDatabase, runs: ContenderResult[]) => {
    const x = summarize(runs);
    return `| \`${db.name}\` (scale ${db.scale}) | ${(db.bytes / 1e9).toFixed(2)} | ${sec(x.wallMs)} | ${mb(x.storedBytes)} | ${mib(x.idleRss)} | ${mib(x.workerRss)} | ${mib(x.treeRss)} |`;
  };
  return [
    '## Memory as the database grows',
    '',
    'The workflow alone, on the compressible mix at a quarter of the scale and at full scale (worst round for memory, median for time).',
    '',
    '| database | GB | wall s | stored MB | worker idle RSS MiB | worker peak RSS MiB | process tree peak RSS MiB |',
    '|---|--:|--:|--:|--:|--:|--:|',
    row(g.small, g.smallRuns),
    row(g.large, g.largeRuns),
    '',
    ...timeFit(g),
  ];
}

/** Wall time as fixed cost + cost per GB, from the two sizes. */
function timeFit(g: GrowthResults): string[] {
  const small = median(g.smallRuns.map((r) => r.wallMs)) / 1000;
  const large = median(g.largeRuns.map((r) => r.wallMs)) / 1000;
  const gb = (db: BenchDatabase) => db.bytes / 1e9;
  if (gb(g.large) <= gb(g.small)) return [];
  const perGb = (large - small) / (gb(g.large) - gb(g.small));
  const fixed = small - perGb * gb(g.small);
  return [`Fitted to the two sizes, the workflow's wall time is about ${fixed.toFixed(2)} s fixed (planning, workflow tasks, the globals object, manifest) plus ${perGb.toFixed(2)} s per GB of database.`, ''];
}

/** A workflow run's activities, scheduled to completed, with the CPU each used by program. */
function activityTable(run: ContenderResult, only: (step: string) => boolean = () => true): string[] {
  const out = ['| step | s | busy cores | CPU s by program |', '|---|--:|--:|---|'];
  for (const [step, seconds] of Object.entries(run.steps).filter(([step]) => only(step))) {
    const phase = run.phases?.[step];
    const cpu = phase
      ? Object.entries(phase.cpuSeconds)
          .filter(([, v]) => v >= 0.2)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(', ')
      : '';
    out.push(`| ${step} | ${seconds.toFixed(1)} | ${phase ? phase.busyCores.toFixed(2) : ''} | ${cpu} |`);
  }
  return out;
}

/** The way back on one database: the verification from S3 against bare pg_restore, and the drill. */
function renderRestore(r: RestoreResults): string[] {
  const { db } = r.subject;
  const s = Object.fromEntries(RESTORE_CONTENDER_IDS.map((id) => [id, summarize(r.runs[id])])) as Record<RestoreContenderId, Summary>;
  const rounds = r.runs.verify.length;
  const verdict = s.verify.wallMs / s.bare.wallMs;
  const out = [
    `## The way back: \`${db.name}\` verified from S3 against bare \`pg_restore -j${RESTORE_JOBS}\``,
    '',
    `What both restore: one backup of \`${db.name}\` (${(db.bytes / 1e9).toFixed(2)} GB) in the S3 repository, a ${mb(r.subject.storedBytes)} MB dump object ` +
      `(a ${mb(r.subject.plainBytes)} MB archive, zstd, gpg), and one \`pg_dump -Fc\` file of the same database, ${mb(r.subject.dumpBytes)} MB, on the same disk. ` +
      `Median of ${rounds} round${rounds > 1 ? 's' : ''} (min–max in brackets), after a warm-up pass of each, the order alternating.`,
    '',
    '| contender | wall s | × bare | read MB | worker RSS MiB: idle → peak | process tree peak RSS MiB | CPU s | other load CPU s |',
    '|---|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const id of RESTORE_CONTENDER_IDS) {
    const x = s[id];
    out.push(
      `| ${RESTORE_CONTENDER_LABELS[id]} | ${sec(x.wallMs)} (${sec(x.minMs)}–${sec(x.maxMs)}) | ${ratio(x.wallMs / s.bare.wallMs)} | ${mb(x.storedBytes)} | ` +
        `${x.workerRss === undefined ? '–' : `${mib(x.idleRss)} → ${mib(x.workerRss)}`} | ${mib(x.treeRss)} | ${x.cpuSeconds.toFixed(0)} | ${x.otherCpuSeconds.toFixed(1)} |`,
    );
  }
  out.push(
    '',
    '"Read MB": the S3 object the verification fetches, the file pg_restore reads. Worker RSS: the restoring host\'s worker, idle and at its peak during the run; ' +
      'the process tree adds its children (gpg, zstd, pg_restore, pg_amcheck). CPU s and "other load" as in the tables above.',
    '',
    '| target | measured | |',
    '|---|--:|---|',
    `| verification wall ≤ ${TARGETS.verifyVsBareRestore} × bare \`pg_restore -j${RESTORE_JOBS}\` | ${ratio(verdict)} | ${yes(verdict <= TARGETS.verifyVsBareRestore)} |`,
    '',
    ...restoreParts(r),
    ...renderDrill(r),
  );
  return out;
}

/** The two sides' time, part by part, from the median round of each. */
function restoreParts(r: RestoreResults): string[] {
  const verify = medianRun(r.runs.verify);
  const bare = medianRun(r.runs.bare);
  const v = (step: string) => verify.steps[step] ?? 0;
  const b = (step: string) => bare.steps[step] ?? 0;
  const cell = (x: number | undefined) => (x === undefined ? '–' : x.toFixed(1));
  const rows: Array<[string, number | undefined, number | undefined]> = [
    ['find the backup (`resolveRestoreSource`: the manifest from S3)', v('resolveRestoreSource'), undefined],
    [
      `\`${RESTORE_ACTIVITY}\` before pg_restore: key check, fetch from S3, sha256, gpg -d, zstd -d to the staged archive, globals, createdb / bare: \`createdb\``,
      v(RESTORE_ACTIVITY) - v(PG_RESTORE_STEP),
      b('createdb'),
    ],
    [`\`pg_restore -j${RESTORE_JOBS} --exit-on-error\` (the workflow's: the staged archive, uncompressed; bare: the gzip-compressed file)`, v(PG_RESTORE_STEP), b(PG_RESTORE_STEP)],
    ['checks (`inspectRestoredDatabase`: counts of the key tables, freshness, SQL checks; pg_amcheck off / bare: the counts)', v('inspectRestoredDatabase'), b('count(*)')],
    ['drop the scratch database (`dropRestoredDatabase` / `dropdb`)', v('dropRestoredDatabase'), b('dropdb')],
    ['write the verdict beside the backup (`writeVerificationReport`, to S3)', v('writeVerificationReport'), undefined],
    ['workflow tasks, client round trips', v('(workflow tasks, client round trips)'), undefined],
  ];
  return [
    `### \`${r.subject.db.name}\`: where the restore time goes (median rounds: ${sec(verify.wallMs)} s and ${sec(bare.wallMs)} s)`,
    '',
    '| part | verifyBackup s | bare s |',
    '|---|--:|--:|',
    ...rows.map(([part, a, c]) => `| ${part} | ${cell(a)} | ${cell(c)} |`),
    `| *wall* | ${sec(verify.wallMs)} | ${sec(bare.wallMs)} |`,
    '',
    'The verification\'s activities, scheduled to completed, and CPU by program while each ran ("busy" is the whole machine, in cores):',
    '',
    ...activityTable(verify, (step) => step !== PG_RESTORE_STEP),
    '',
  ];
}

function renderDrill(r: RestoreResults): string[] {
  const report = r.drill.result;
  const restored = report.restored;
  return [
    `### \`${r.subject.db.name}\`: the recovery drill`,
    '',
    `One \`recoveryDrill\` of the same backup from the S3 repository on the restoring host, after the rounds (no health URL; no pg_amcheck, the drill does not run it):`,
    '',
    `* **RTO ${report.rtoSeconds!.toFixed(1)} s**: from the drill's start until the restored database passed its checks` +
      (restored ? `; pg_restore took ${restored.restoreSeconds.toFixed(1)} s of it, restoring a ${mb(restored.plainBytes)} MB archive` : '') +
      `. The workflow took ${sec(r.drill.wallMs)} s from start to result, tearing the database down and writing its report included.`,
    `* RPO ${report.rpoSeconds!.toFixed(0)} s: the backup's age when the drill started. Here that is only how long ago the benchmark took it; ` +
      'on the nightly schedule it is up to a day plus the time since the last backup.',
    `* Worker: idle ${mib(r.drill.idleRssBytes)} MiB, peak ${mib(r.drill.peakRssBytes)} MiB; process tree peak ${mib(r.drill.treePeakRssBytes)} MiB.`,
    '',
  ];
}

/** Where the time goes: the workflow's activities, and CPU by program per contender. */
function renderBreakdown(report: BenchReport): string[] {
  const out = ['## Where the time goes', ''];
  for (const mix of report.mixes) {
    const wf = medianRun(mix.runs.workflow);
    out.push(
      `### \`${mix.db.name}\`: the workflow's activities (median round, ${sec(wf.wallMs)} s)`,
      '',
      'Scheduled to completed, from the workflow history; CPU by program while the activity ran ("busy" is the whole machine, in cores).',
      '',
      ...activityTable(wf),
    );
    const seen = ['pg_dumpall', 'pg_dump', 'pg_restore', 'zstd', 'gpg']
      .map((name) => [name, wf.usage.programs[name]] as const)
      .filter(([, p]) => p)
      .map(([name, p]) => `${name} ${p.firstSeen.toFixed(1)}–${p.lastSeen.toFixed(1)}`);
    if (seen.length) {
      out.push('', `Child processes seen, in seconds after the start (sampled every ${report.options.sampleMs} ms; zstd and gpg run twice, globals then dump): ${seen.join(', ')}.`);
    }
    out.push('', `### \`${mix.db.name}\`: CPU seconds by program (median round of each contender)`, '');
    const medians = Object.fromEntries(CONTENDER_IDS.map((id) => [id, medianRun(mix.runs[id])])) as Record<ContenderId, ContenderResult>;
    const programs = new Map<string, number>();
    for (const id of CONTENDER_IDS) {
      for (const [name, p] of Object.entries(medians[id].usage.programs)) programs.set(name, Math.max(programs.get(name) ?? 0, p.cpuSeconds));
    }
    const shown = [...programs].filter(([, v]) => v >= 0.3).sort((a, b) => b[1] - a[1]).map(([k]) => k);
    out.push(`| program | ${CONTENDER_IDS.map((id) => id).join(' | ')} |`, `|---|${CONTENDER_IDS.map(() => '--:').join('|')}|`);
    for (const name of shown) {
      out.push(`| ${name} | ${CONTENDER_IDS.map((id) => (medians[id].usage.programs[name]?.cpuSeconds ?? 0).toFixed(1)).join(' | ')} |`);
    }
    out.push(
      `| *wall s* | ${CONTENDER_IDS.map((id) => sec(medians[id].wallMs)).join(' | ')} |`,
      `| *busy cores (machine)* | ${CONTENDER_IDS.map((id) => medians[id].usage.busyCores.toFixed(2)).join(' | ')} |`,
      '',
    );
    const seed = medianRun(mix.runs.seed);
    out.push(`The seed procedure's steps (median round): ${Object.entries(seed.steps).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}.`, '');
  }
  return out;
}

function renderMethod(report: BenchReport): string[] {
  const { options } = report;
  const orders = report.mixes[0]?.orders.map((o) => o.join(' ')).join('; ') ?? '';
  return [
    '## Method',
    '',
    '* One throw-away PostgreSQL cluster (default settings but for `fsync = off` and bigger checkpoints while loading; a `CHECKPOINT` after loading), ' +
      'one database per data mix. The compressible mix is `pgbench -i` at the scale plus the Django-shaped tables of `client/dev/demoData.ts` ' +
      '(about 1 MB per scale unit); the poorly compressible one is 8 KiB rows of `gen_random_bytes` (4 MiB per scale unit, dumped as hex text) plus the same Django tables.',
    `* Every contender runs once unmeasured (warm-up: the page cache holds the database for everyone; dropping the cache is not possible reliably here), ` +
      `then ${options.rounds} measured round${options.rounds > 1 ? 's' : ''}, the order rotating each round (${orders}). Wall times are medians; memory is the worst round.`,
    '* Other jobs on the machine: before each run the benchmark waits until processes it did not start use less than 0.15 cores, ' +
      'and repeats (up to 3 times) a run during which they used more than 0.2 cores; ' +
      `${report.repeated} run${report.repeated === 1 ? ' was' : 's were'} repeated in this measurement. What they used meanwhile is in the "other load" column.`,
    '* The workflow: `backupDatabase` started with the Temporal client on the dev server (`temporal server start-dev`, SQLite), ' +
      'wall time from start to result. Its worker is `node bin/backupctl.js worker`, a fresh process per run, started and polling before the clock starts ' +
      '(bundling the workflow code is not timed) and its VmHWM reset then (`/proc/<pid>/clear_refs`), so the peak is this backup\'s. ' +
      'Three repositories: `local` and `nas` are two folders on the same disk (a real NAS is a network mount), `s3` is a SeaweedFS server on this machine, ' +
      'so its CPU is spent on the same two cores (a real S3 endpoint costs the host only the upload). Defaults: zstd level 3, `-T0`; gpg to a cv25519 key; ' +
      'every copy fsynced, then read back in full and hashed; `pg_restore -f /dev/null` reads the whole archive while it streams.',
    '* The bare contenders write into a folder on the same disk, without forcing fsync (the workflow does fsync its two file copies); ' +
      'they connect like the worker, over TCP to 127.0.0.1. The seed procedure is the runbook\'s commands without its `-W` prompt: ' +
      '`pg_dump --clean --create --format=custom --file=X.backup`, `pg_dump --clean --create --format=plain --file=X.sql`, `gzip X.sql`, `gunzip -t X.sql.gz`.',
    ...restoreMethod(report),
    ...pitrMethod(report),
    '* Stored MB is 10^6 bytes; RSS is MiB. CPU and the process tree\'s memory come from sampling /proc every ' +
      `${options.sampleMs} ms (processes living less than one period are missed).`,
    '',
  ];
}

function restoreMethod(report: BenchReport): string[] {
  if (report.restores.length === 0) return [];
  const orders = report.restores[0].orders.map((o) => o.join(' ')).join('; ');
  return [
    '* The way back: after a mix\'s backup rounds, one untimed `backupDatabase` into the S3 repository only and one untimed `pg_dump -Fc` to a file. ' +
      `Then each side runs once unmeasured and ${report.options.rounds} measured round${report.options.rounds > 1 ? 's' : ''}, alternating (${orders}). ` +
      '`verifyBackup` runs on a second host\'s worker (`bench-restore`: a fresh `node bin/backupctl.js worker` per run, polling before the clock starts) ' +
      'whose only repository is the S3 one (the database host\'s prefix), so the copy is fetched from SeaweedFS; it holds the private key, stages the archive ' +
      `in a folder on the same disk and restores into a scratch database on the reference cluster with \`pg_restore -j${RESTORE_JOBS}\`; ` +
      'wall time is from start to result, so it includes dropping the scratch database and writing the verdict to S3. ' +
      'The bare side, on the same cluster, times `createdb -T template0`, ' +
      `\`pg_restore -j${RESTORE_JOBS} --exit-on-error -d scratch file\`, one \`psql\` statement counting the same key tables and failing on a count ` +
      'other than the backup\'s, and `dropdb`. The verification runs with `amcheck: false`, as the target defines it; the weekly schedule adds `pg_amcheck --heapallindexed` on top (about 4 s on this database in an earlier run). ' +
      'Then one `recoveryDrill` from the S3 copy on the same restoring host.',
  ];
}

export const PITR_SECTION = '## Point-in-time recovery';

/** Point-in-time recovery against pgBackRest: base backup, recovery to a time, RPO under load. */
export function renderPitr(p: PitrResults): string[] {
  const base = Object.fromEntries(PITR_CONTENDER_IDS.map((id) => [id, summarize(p.base[id])])) as Record<PitrContenderId, Summary>;
  const pitr = Object.fromEntries(PITR_CONTENDER_IDS.map((id) => [id, summarize(p.pitr[id])])) as Record<PitrContenderId, Summary>;
  const rounds = p.base.ours.length;
  const baseRatio = base.ours.wallMs / base.pgbackrest.wallMs;
  const pitrRatio = pitr.ours.wallMs / pitr.pgbackrest.wallMs;
  const delays = p.rpo.samples.map((x) => x.delaySeconds).filter((x): x is number => x !== null);
  const missing = p.rpo.samples.length - delays.length;
  const worst = delays.length ? Math.max(...delays) : NaN;
  const rows = (labels: Record<PitrContenderId, string>, s: Record<PitrContenderId, Summary>, bytes: boolean) =>
    PITR_CONTENDER_IDS.map((id) => {
      const x = s[id];
      return (
        `| ${labels[id]} | ${sec(x.wallMs)} (${sec(x.minMs)}–${sec(x.maxMs)}) | ${ratio(x.wallMs / s.pgbackrest.wallMs)} | ${bytes ? mb(x.storedBytes) + ' | ' : ''}` +
        `${x.workerRss === undefined ? '–' : `${mib(x.idleRss)} → ${mib(x.workerRss)}`} | ${mib(x.treeRss)} | ${x.cpuSeconds.toFixed(0)} | ${x.otherCpuSeconds.toFixed(1)} |`
      );
    });
  const ours = medianRun(p.pitr.ours) as PitrRun;
  const theirs = medianRun(p.pitr.pgbackrest) as PitrRun;
  const step = (run: ContenderResult, name: string) => (run.steps[name] === undefined ? '–' : run.steps[name].toFixed(1));
  const gb = (bytes: number) => (bytes / 1e9).toFixed(2);
  const each = (runs: PitrRun[]) => runs.map((r) => sec(r.wallMs)).join(', ');
  const paceRow = (label: string, r: PitrRun) => {
    const x = r.pace;
    const q = r.queue;
    return (
      `| ${label} | ${x ? x.segments : '–'} | ${x ? x.spanSeconds.toFixed(1) : '–'} | ${x && x.spanSeconds > 0 ? (x.segments / x.spanSeconds).toFixed(1) : '–'} | ` +
      `${x ? (x.medianGapSeconds * 1000).toFixed(0) : '–'} | ${x ? (x.maxGapSeconds * 1000).toFixed(0) : '–'} | ` +
      `${q ? `${q.depthMedian} / ${q.depthMax}` : '–'} | ${q ? (q.emptyShare * 100).toFixed(0) + ' %' : '–'} | ` +
      `${q?.waitedSegments === undefined ? '–' : `${q.waitedSegments}, ${q.waitedSeconds!.toFixed(1)} s (max ${q.waitedMaxSeconds!.toFixed(2)} s)`} |`
    );
  };
  const cpuLine = (r: ContenderResult) =>
    Object.entries(r.usage.programs)
      .filter(([, v]) => v.cpuSeconds >= 0.3)
      .sort((a, b) => b[1].cpuSeconds - a[1].cpuSeconds)
      .map(([k, v]) => `${k} ${v.cpuSeconds.toFixed(1)}`)
      .join(', ');
  const rpoTx = Number.isFinite(p.rpo.transactions) ? p.rpo.transactions.toLocaleString('en') : '?';
  return [
    `${PITR_SECTION}: \`${p.db.name}\` against pgBackRest`,
    '',
    `One archiving cluster (\`wal_level = replica\`, \`archive_mode = on\`, \`archive_timeout = 60\`) holding \`${p.db.name}\` at scale ${p.db.scale} ` +
      `(${(p.db.bytes / 1e9).toFixed(2)} GB), its archive_command feeding both archives, each asynchronously: \`pgbackrest archive-push %p\` (\`archive-async=y\`, process-max ${PUSH_PROCESSES}) ` +
      `\`&& bin/wal-push-async <status> <config> %p\` (\`wal.async.processes: ${PUSH_PROCESSES}\`). ${p.pgbackrestVersion}. ` +
      `Median of ${rounds} round${rounds > 1 ? 's' : ''} (min–max in brackets), after a warm-up pass of each, the order alternating.`,
    '',
    '### Base backup',
    '',
    '| contender | wall s | × pgBackRest | stored MB | worker RSS MiB: idle → peak | process tree peak RSS MiB | CPU s | other load CPU s |',
    '|---|--:|--:|--:|--:|--:|--:|--:|',
    ...rows(BASE_LABELS, base, true),
    '',
    'Stored MB: one copy (ours writes three: local, nas, s3, each read back and verified; pgBackRest writes one, to repo1 on the same disk).',
    '',
    `### Recovery to a time with ${gb(p.replayWalBytes)} GB of WAL to replay, start to writable`,
    '',
    `Target ${p.target}: after the base backups, ${p.replayLoad.transactions.toLocaleString('en')} pgbench transactions and a bulk \`INSERT\` of ${p.replayLoad.bulkRows.toLocaleString('en')} rows ` +
      `(${p.replayLoad.seconds.toFixed(0)} s, untimed): **${gb(p.replayWalBytes)} GB of WAL** (\`pg_wal_lsn_diff\` from the newest base backup's end to the target; ${p.replayLoad.segments} segments), ` +
      'replayed by both; then a marker row; a second marker committed after the target must be absent from the recovered cluster, the first present (checked in every run, inside the timed part). ' +
      `Both fetch asynchronously, ${FETCH_PROCESSES} at a time: ours with its default restore_command (the first ${PREFETCH_SEGMENTS.beforeFetcher} segments decrypted before the server starts, then \`bin/wal-fetch-async\`, whose fetcher goes on from there, its openers decrypting in bash, ` +
      `\`wal.fetchAhead.processes: ${FETCH_PROCESSES}\`, at most 32 segments queued); pgBackRest's \`archive-get\` with \`archive-async=y\`, \`process-max=${FETCH_PROCESSES}\`, ` +
      `\`archive-get-queue-max=${ARCHIVE_GET_QUEUE_MAX}\`, the spool on the same disk.`,
    '',
    '| contender | wall s | × pgBackRest | worker RSS MiB: idle → peak | process tree peak RSS MiB | CPU s | other load CPU s |',
    '|---|--:|--:|--:|--:|--:|--:|',
    ...rows(PITR_LABELS, pitr, false),
    '',
    `Each round, seconds: ours ${each(p.pitr.ours)}; pgBackRest ${each(p.pitr.pgbackrest)} (orders ${p.pitrOrders.map((o) => o.join(' ')).join('; ')}).`,
    '',
    `Median rounds, part by part: ours restore ${step(ours, 'restore (workflow timing)')} s (the base backup unpacked and the first ${PREFETCH_SEGMENTS.beforeFetcher} segments decrypted), ` +
      `replay until promoted ${step(ours, 'replay until promoted (workflow timing)')} s ` +
      `(the workflow's own timing; it polls every 250 ms), the rest is finding the base backup, checks and workflow tasks; ` +
      `pgBackRest restore ${step(theirs, 'pgbackrest restore')} s, \`pg_ctl start -w\` ${step(theirs, 'pg_ctl start')} s, ` +
      `replay until \`pg_is_in_recovery()\` is false (polled every ${BASELINE_POLL_MS} ms) and the marker check ${step(theirs, 'replay until promoted (polled), marker check')} s.`,
    '',
    'Replay as seen from outside (median rounds): the recovered server\'s "restored log file … from archive" lines (every segment restore_command delivered; ours: the first ' + PREFETCH_SEGMENTS.beforeFetcher + ' from the folder decrypted ahead, the rest from the fetcher), and the fetcher\'s queue folder sampled every 100 ms (segments fetched and waiting; ours also: segments replay asked for before they were there, and how long it waited).',
    '',
    '| contender | segments restored | first → last s | segments/s | gap median ms | gap max ms | queue depth median / max | samples with the queue empty | replay waited for a segment: count, total |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
    paceRow('ours', ours),
    paceRow('pgBackRest', theirs),
    '',
    `CPU seconds by program (median rounds; "other processes" is load the benchmark did not start): ours ${cpuLine(ours)}; pgBackRest ${cpuLine(theirs)}.`,
    '',
    `### RPO under a full-speed write load`,
    '',
    `\`pgbench -c ${p.rpo.clients} -j ${p.rpo.clients}\` at full speed (no \`-R\`) for ${p.rpo.loadSeconds} s (${rpoTx} transactions, ${gb(p.rpo.walBytes)} GB of WAL), ` +
      `the archive_command as above (both asynchronous), \`archive_timeout\` lowered to ${p.rpo.archiveTimeout} s for this part, \`shipWal\` every ${p.rpo.shipInterval} s to nas and s3. ` +
      `Every ${p.rpo.sampleSeconds} s the current WAL position and time were sampled (${p.rpo.samples.length} samples); the delay is from the sample until the segment holding it was in ` +
      'every repository (the spool\'s `archivedAt`, the nas entry file\'s mtime, the S3 entry object\'s LastModified, whole seconds).' +
      (missing ? ` ${missing} sample${missing > 1 ? 's' : ''} never reached every repository.` : ''),
    '',
    '| commit → in every repository | s |',
    '|---|--:|',
    `| median | ${ratio(median(delays))} |`,
    `| max | ${ratio(worst)} |`,
    '',
    `Each sample's delay, s, in order, with the repository that had its segment last: ${p.rpo.samples
      .map((x) => {
        const last = Object.entries(x.arrived).filter((e): e is [string, string] => e[1] !== null).sort((a, b) => a[1].localeCompare(b[1])).at(-1)?.[0];
        return x.delaySeconds === null ? 'never' : `${x.delaySeconds.toFixed(1)} (${last})`;
      })
      .join(', ')}.`,
    '',
    '| target | measured | |',
    '|---|--:|---|',
    `| base backup wall ≤ ${TARGETS.baseVsPgbackrest.toFixed(1)} × \`pgbackrest --type=full backup\` | ${ratio(baseRatio)} | ${yes(baseRatio <= TARGETS.baseVsPgbackrest)} |`,
    `| PITR start → writable, ${gb(p.replayWalBytes)} GB of WAL replayed, ≤ ${TARGETS.pitrVsPgbackrest} × pgBackRest restore (archive-get async) + the same replay | ${ratio(pitrRatio)} | ${yes(p.replayWalBytes >= 2e9 && pitrRatio <= TARGETS.pitrVsPgbackrest)} |`,
    `| RPO under full-speed pgbench (worst sample) ≤ ${TARGETS.rpoSeconds} s | ${ratio(worst)} s | ${yes(missing === 0 && worst <= TARGETS.rpoSeconds)} |`,
    '',
  ];
}

export function pitrMethod(report: Pick<BenchReport, 'pitr' | 'options'>): string[] {
  const p = report.pitr;
  if (!p) return [];
  const orders = p.baseOrders.map((o) => o.join(' ')).join('; ');
  return [
    '* Point-in-time recovery: a second throw-away cluster with WAL archiving, `bench_text` built in it the same way, and one archive_command for both sides, ' +
      '`pgbackrest archive-push %p && bin/wal-push-async <status> <config> %p`, both asynchronous (pgBackRest `archive-async=y` with its spool folder; ours the background pusher). ' +
      'One cluster rather than two copies, so both back up the same data and replay the same WAL; ' +
      'the cost is that every segment waits for both pushes before the next is archived. pgBackRest\'s push goes first because its backup ends by waiting until its own archive holds ' +
      'the backup\'s last segment (ours does not wait for the archive), so its backup time never includes our push; our RPO includes its push instead. ' +
      'pgBackRest (the Debian package) runs as the postgres OS user from its own configuration file: repo1 on the same disk, `compress-type=zst` level 3 (ours: zstd 3), ' +
      '`process-max=2` (archive-get: 4), `start-fast=y` (ours: a fast checkpoint), and `repo1-cipher-type=aes-256-cbc` so that both sides encrypt (ours: gpg to a cv25519 key). ' +
      `Base backups: one warm-up of each, then ${report.options.rounds} round${report.options.rounds > 1 ? 's' : ''} alternating (${orders}); ` +
      '`backupBase` on a fresh worker (`bench-pitr` host, polling before the clock starts), start to result, three copies each verified, against `pgbackrest --type=full backup` to the end of its archive check. ' +
      'Recovery: both to the same time, each from its newest base backup, into a new data directory on the same disk, the recovered cluster not archiving; ' +
      '`pointInTimeRecovery` start to result (it waits for promotion and checks the key tables) with its default restore_command, which hands the worker\'s configuration to `bin/wal-fetch-async` ' +
      '(so the worker\'s keyring is a copy the postgres OS user owns, its gpg-agent started by that user), against ' +
      '`pgbackrest --type=time --target-action=promote --archive-mode=off restore` + `pg_ctl start -w` on a free port + polling `pg_is_in_recovery()`; both check the marker rows. ' +
      'Processes either side detaches (our wal-pusher and wal-fetcher, pgBackRest\'s async daemons, the gpg-agent) count as the benchmark\'s, not as other load. ' +
      'Each recovered cluster is stopped and deleted after its run (untimed). The RPO part runs last, with `shipWal` on a long-running worker.',
  ];
}

/** The p-th percentile (0-100), nearest rank. */
function percentile(values: number[], p: number): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}

export const WAL_SECTION = '## WAL archiving';

/** WAL archiving: ms per archive_command call and segments per second, against pgBackRest. */
export function renderWalArchive(w: WalArchiveResults): string[] {
  const rate = (id: WalContenderId) => (w.runs[id].callMs.length * 1000) / w.runs[id].wallMs;
  const theirs = rate('pgbackrestAsync');
  const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '–');
  const ours = w.runs.async.callMs;
  const oursMedian = median(ours);
  const oursP95 = percentile(ours, 95);
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  return [
    `${WAL_SECTION}: ${w.segments} real segments, one \`archive_command\` call at a time`,
    '',
    `${w.segments} segments of 16 MiB (${((w.segments * w.segmentBytes) / 1e9).toFixed(2)} GB of WAL) written by one cluster under \`pgbench -i -s ${w.produced.scale}\`, ` +
      `\`pgbench -c 2 -j 2 -T ${w.produced.pgbenchSeconds}\` at full speed and a bulk \`INSERT\` of ${w.produced.bulkRows.toLocaleString('en')} rows ` +
      `(archived aside with \`cp\`; ${w.produced.seconds.toFixed(0)} s, untimed), then fed to each contender as PostgreSQL's archiver would: ` +
      'one call at a time through `sh -c` as the postgres OS user, in order, every not yet archived segment in a `pg_wal` folder marked `archive_status/<name>.ready` ' +
      '(the asynchronous contenders work ahead from those), each `.ready` renamed to `.done` after the call succeeded. ' +
      `Each contender has its own data directory (the cluster's \`global/pg_control\` and a \`pg_wal\` of hard links to the same files, in the page cache for all) and its own, empty, repository. ` +
      `One run each, in the order ${w.order.join(', ')}; segments per second is over the whole run, from the first call's start to the last call's success. ${w.pgbackrestVersion}.`,
    '',
    '| contender | ms per call: median | p95 | mean | max | segments/s | × pgBackRest async | stored MB | pusher peak RSS MiB |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...WAL_CONTENDER_IDS.map((id) => {
      const r = w.runs[id];
      return (
        `| ${WAL_CONTENDER_LABELS[id]} | ${ms(median(r.callMs))} | ${ms(percentile(r.callMs, 95))} | ${ms(mean(r.callMs))} | ${ms(Math.max(...r.callMs))} | ` +
        `${rate(id).toFixed(1)} | ${ratio(rate(id) / theirs)} | ${mb(r.storedBytes)} | ${mib(r.pusherPeakRssBytes)} |`
      );
    }),
    '',
    `Both sides compress with zstd level 3 and encrypt (ours: gpg to a cv25519 key, pgBackRest: \`repo1-cipher-type=aes-256-cbc\`), ${WAL_PROCESSES} processes each ` +
      `(\`wal.async.processes: ${WAL_PROCESSES}\`, \`process-max=${WAL_PROCESSES}\`), a spool on the same disk; ours fsyncs each stored file and its entry. ` +
      'Stored MB: the repository or spool afterwards (`du -sb`). The pusher\'s peak RSS is its VmHWM when the last call returned.',
    '',
    '| target | measured | |',
    '|---|--:|---|',
    `| ours async: ≤ ${TARGETS.walCallMs} ms per \`archive_command\` call (median; p95) | ${ms(oursMedian)}; ${ms(oursP95)} ms | ${yes(oursMedian <= TARGETS.walCallMs)}; ${yes(oursP95 <= TARGETS.walCallMs)} |`,
    `| ours async: segments/s ≥ ${TARGETS.walRateVsPgbackrestAsync.toFixed(1)} × pgBackRest \`archive-async=y\` | ${ratio(rate('async') / theirs)} | ${yes(rate('async') / theirs >= TARGETS.walRateVsPgbackrestAsync)} |`,
    '',
  ];
}

/**
 * The existing report with one section (the one whose heading starts with `heading`) replaced by
 * a fresh one, or inserted before "Where the time goes" when it had none: `--only-wal` and
 * `--only-pitr` refresh their section alone.
 */
export function spliceSection(heading: string, section: string, existingFile: string): string {
  // One blank line before the next section's heading.
  section = section.replace(/\n*$/, '\n\n');
  if (!existsSync(existingFile)) return section;
  const old = readFileSync(existingFile, 'utf8');
  const start = old.indexOf(`\n${heading}`);
  if (start >= 0) {
    const next = old.indexOf('\n## ', start + 1);
    return old.slice(0, start + 1) + section + (next >= 0 ? old.slice(next + 1) : '');
  }
  const before = old.indexOf('\n## Where the time goes');
  const at = before >= 0 ? before + 1 : old.length;
  return old.slice(0, at) + section + old.slice(at);
}

/** The report with the analysis section of the existing file (if any) carried over. */
export function mergeAnalysis(fresh: string, existingFile: string): string {
  if (!existsSync(existingFile)) return fresh;
  const old = readFileSync(existingFile, 'utf8');
  const a = old.indexOf(ANALYSIS_START);
  const b = old.indexOf(ANALYSIS_END);
  if (a < 0 || b < a) return fresh;
  const kept = old.slice(a, b + ANALYSIS_END.length);
  const fa = fresh.indexOf(ANALYSIS_START);
  const fb = fresh.indexOf(ANALYSIS_END);
  return fresh.slice(0, fa) + kept + fresh.slice(fb + ANALYSIS_END.length);
}
