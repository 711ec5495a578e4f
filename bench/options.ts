// Benchmark options, from argv (npm run bench -- --scale 5 --rounds 1) or the environment
// (BENCH_SCALE, BENCH_ROUNDS, BENCH_GROWTH, BENCH_RESTORE, BENCH_PITR, BENCH_WAL, BENCH_RETENTION, BENCH_RETENTION_SCALE, BENCH_MIX, BENCH_OUT).
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PROJECT_ROOT } from '../client/dev/tools.js';

export type Mix = 'text' | 'random';
export const MIXES: Mix[] = ['text', 'random'];

export interface BenchOptions {
  /** pgbench scale of the compressible database; about 15 MiB of database per unit. */
  scale: number;
  /** Measured rounds per data mix, after one warm-up pass. */
  rounds: number;
  /** Also run the workflow on a database a quarter of the size, to show memory stays flat. */
  growth: boolean;
  /** Also measure the way back on each mix: verifyBackup from S3 against bare pg_restore, and one drill. */
  restore: boolean;
  /**
   * Also measure point-in-time recovery against pgBackRest on an archiving cluster: base backup,
   * recovery to a time until writable, and the RPO under a pgbench write load.
   */
  pitr: boolean;
  /** Also measure WAL archiving (archive_command calls over real segments) against pgBackRest archive-push. */
  wal: boolean;
  /** Real 16 MiB segments fed to each WAL archiving contender. */
  walSegments: number;
  /** Only the WAL archiving section: measured alone and spliced into the existing report. */
  onlyWal: boolean;
  /** Only the point-in-time recovery section (base backup, recovery, RPO): measured alone and spliced in. */
  onlyPitr: boolean;
  /** Also measure retention: pruning 3,000 dumps and 200,000 WAL segments in one S3 repository. */
  retention: boolean;
  /** Only the retention section: measured alone and spliced into the existing report. */
  onlyRetention: boolean;
  /** Multiplies the retention catalog (1: the 3,000 dumps and 200,000 WAL segments). */
  retentionScale: number;
  mixes: Mix[];
  /** Markdown report; empty: do not write one. */
  out: string;
  /** /proc sampling period. */
  sampleMs: number;
  /** Attempts of a run that other processes loaded (undefined: the default, 4). */
  attempts?: number;
  /** How long to wait, at most, for other processes to go quiet before each run. */
  quietWaitSeconds: number;
}

export const DEFAULT_SCALE = 60;
export const DEFAULT_ROUNDS = 3;
export const DEFAULT_WAL_SEGMENTS = 200;

const USAGE = `usage: npm run bench -- [--scale N] [--rounds N] [--no-growth] [--no-restore] [--no-pitr] [--no-wal | --only-wal] [--only-pitr] [--no-retention | --only-retention] [--retention-scale X] [--wal-segments N] [--mix text,random] [--out FILE | --no-write]
  --scale N     pgbench scale of the compressible database (default ${DEFAULT_SCALE}: about 1.1 GB with the Django tables)
  --rounds N    measured rounds per data mix after one warm-up pass (default ${DEFAULT_ROUNDS})
  --no-growth   skip the workflow run on the database at scale/4 (the memory-growth check)
  --no-restore  skip the way back (verifyBackup from S3 vs bare pg_restore -j2, and the recovery drill)
  --no-pitr     skip point-in-time recovery (backupBase and pointInTimeRecovery vs pgBackRest, and the RPO under load)
  --no-wal      skip WAL archiving (archive_command over real segments vs pgbackrest archive-push, sync and async)
  --only-wal    only WAL archiving, its section replaced in the existing report (about 5 minutes)
  --only-pitr   only point-in-time recovery against pgBackRest (its own cluster at --scale, >= 2 GiB of WAL
                replayed, RPO under full-speed pgbench), its section replaced in the existing report
  --no-retention  skip retention (a prune of 3,000 dumps and 200,000 WAL segments in one S3 repository)
  --only-retention  only retention, its section replaced in the existing report (no PostgreSQL, no Temporal)
  --retention-scale X  multiplies the retention catalog, 0 < X <= 1 (default 1: the issue's scale; 0.1 for a quick run)
  --wal-segments N  real 16 MiB segments per WAL archiving contender (default ${DEFAULT_WAL_SEGMENTS})
  --mix LIST    text (pgbench + Django tables), random (random bytea); default both
  --attempts N  runs another job on the machine loaded are repeated up to N attempts in all (default 4; 1: never)
  --quiet-wait N  seconds to wait at most before each run for other processes to go quiet (default 180)
  --out FILE    markdown report (default docs/benchmarks.md); --no-write prints only
Environment: BENCH_SCALE, BENCH_ROUNDS, BENCH_GROWTH=0, BENCH_RESTORE=0, BENCH_PITR=0, BENCH_WAL=0, BENCH_RETENTION=0, BENCH_RETENTION_SCALE, BENCH_MIX, BENCH_OUT.`;

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      scale: { type: 'string' },
      rounds: { type: 'string' },
      growth: { type: 'boolean' },
      'no-growth': { type: 'boolean' },
      restore: { type: 'boolean' },
      'no-restore': { type: 'boolean' },
      pitr: { type: 'boolean' },
      'no-pitr': { type: 'boolean' },
      wal: { type: 'boolean' },
      'no-wal': { type: 'boolean' },
      'only-wal': { type: 'boolean' },
      'only-pitr': { type: 'boolean' },
      retention: { type: 'boolean' },
      'no-retention': { type: 'boolean' },
      'only-retention': { type: 'boolean' },
      'retention-scale': { type: 'string' },
      'wal-segments': { type: 'string' },
      mix: { type: 'string' },
      out: { type: 'string' },
      'no-write': { type: 'boolean' },
      'sample-ms': { type: 'string' },
      attempts: { type: 'string' },
      'quiet-wait': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const int = (name: string, raw: string | undefined, fallback: number, min: number) => {
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}; got ${raw}\n${USAGE}`);
    return n;
  };
  const mixText = values.mix ?? env.BENCH_MIX ?? 'text,random';
  const mixes = (mixText === 'both' ? MIXES : mixText.split(',').map((m) => m.trim()).filter(Boolean)) as Mix[];
  if (mixes.length === 0 || mixes.some((m) => !MIXES.includes(m))) throw new Error(`--mix must list text and/or random; got ${mixText}\n${USAGE}`);
  const off = (raw: string | undefined) => ['0', 'false', 'no'].includes((raw ?? '').toLowerCase());
  const growth = values['no-growth'] ? false : (values.growth ?? !off(env.BENCH_GROWTH));
  const restore = values['no-restore'] ? false : (values.restore ?? !off(env.BENCH_RESTORE));
  const onlyWal = values['only-wal'] ?? false;
  const onlyPitr = values['only-pitr'] ?? false;
  const pitr = onlyPitr || (values['no-pitr'] ? false : (values.pitr ?? !off(env.BENCH_PITR)));
  const onlyRetention = values['only-retention'] ?? false;
  if ([onlyWal, onlyPitr, onlyRetention].filter(Boolean).length > 1) throw new Error(`--only-wal, --only-pitr and --only-retention exclude each other\n${USAGE}`);
  const retention = onlyRetention || (values['no-retention'] ? false : (values.retention ?? !off(env.BENCH_RETENTION)));
  const retentionScaleText = values['retention-scale'] ?? env.BENCH_RETENTION_SCALE ?? '1';
  const retentionScale = Number(retentionScaleText);
  if (!(retentionScale > 0 && retentionScale <= 1)) throw new Error(`--retention-scale must be a number above 0 and at most 1; got ${retentionScaleText}\n${USAGE}`);
  const wal = onlyWal || (values['no-wal'] ? false : (values.wal ?? !off(env.BENCH_WAL)));
  const out = values['no-write'] ? '' : path.resolve(PROJECT_ROOT, values.out ?? env.BENCH_OUT ?? 'docs/benchmarks.md');
  return {
    scale: int('scale', values.scale ?? env.BENCH_SCALE, DEFAULT_SCALE, 1),
    rounds: int('rounds', values.rounds ?? env.BENCH_ROUNDS, DEFAULT_ROUNDS, 1),
    growth,
    restore,
    pitr,
    wal,
    walSegments: int('wal-segments', values['wal-segments'], DEFAULT_WAL_SEGMENTS, 2),
    onlyWal,
    onlyPitr,
    retention,
    onlyRetention,
    retentionScale,
    mixes: MIXES.filter((m) => mixes.includes(m)),
    out,
    sampleMs: int('sample-ms', values['sample-ms'], 100, 10),
    attempts: values.attempts === undefined ? undefined : int('attempts', values.attempts, 4, 1),
    quietWaitSeconds: int('quiet-wait', values['quiet-wait'], 180, 0),
  };
}
