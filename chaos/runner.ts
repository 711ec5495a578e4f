// The chaos loop: for each run, a workflow and a fault drawn from the run's seed, the fault
// injected at a drawn moment of the run, the run awaited (bounded: a run that does not close
// is a violation, "hung"), the fault healed, then every invariant checked. Runs are
// reproducible: the master seed draws each run's seed, and `--run-seed` replays one run.
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { FAULT_KINDS, faultApplies, injectFault, unreadableUnder, unwritableUnder, type FaultKind } from './faults.js';
import { newGlobalProblems, outcomeViolations } from './judgement.js';
import { globalProblems, liveOid } from './invariants.js';
import { sweptAfterFault } from './faultSweep.js';
import { within, type Outcome, type Scenario, type ScenarioRun } from './scenario.js';
import { SCENARIOS } from './scenarios.js';
import type { ChaosStack } from './stack.js';
import { workerPool, type WorkerPool } from './workers.js';

export interface RunRecord {
  index: number;
  runSeed: number;
  scenario: string;
  fault: FaultKind;
  faultDetail: string;
  /** Whether the workflow was still open when the fault landed. */
  landed: boolean;
  faultAtMs: number;
  outcome: Outcome['status'];
  errorType?: string;
  /** From the fault to the run's close, when the fault landed in an open run. */
  recoverMs?: number;
  /** The whole run: start, fault, close, healing and every check. */
  tookMs: number;
  violations: string[];
}

export interface ChaosOptions {
  seed: number;
  /** Stop after this many runs... */
  runs: number;
  /** ...or once this much time has passed. */
  budgetMs: number;
  /** Replay exactly one run. */
  runSeed?: number;
  /** Exactly these runs, in order (the smoke test): the moment is still drawn from the seed. */
  plan?: Array<{ scenario: string; fault: FaultKind }>;
  /** Only these scenarios / faults (names), default all. */
  scenarios?: string[];
  faults?: FaultKind[];
  /** How long a run may take after its fault before it counts as hung. */
  hangMs?: number;
  say(line: string): void;
  onRun?(record: RunRecord): void;
}

function generator(seed: number) {
  const rng = xoroshiro128plus(seed);
  return (from: number, to: number) => uniformInt(rng, from, to);
}

export async function runChaos(stack: ChaosStack, options: ChaosOptions): Promise<RunRecord[]> {
  const workers = workerPool(stack.configFile, stack.workerEnv);
  stack.onStop(() => workers.stopAll());
  const records: RunRecord[] = [];
  // A leftover already reported (a hung run's, terminated without cleanup) is that run's
  // violation, not every later run's (judgement.ts: newGlobalProblems).
  const reported = new Set<string>();
  const scenarios = SCENARIOS.filter((s) => !options.scenarios || options.scenarios.includes(s.name));
  const faults = FAULT_KINDS.filter((f) => (!options.faults || options.faults.includes(f)) && faultApplies(f, stack));
  try {
    await workers.current();
    // A planned run (the smoke test) warms up only what it runs.
    const planned = options.plan ? scenarios.filter((s) => options.plan!.some((p) => p.scenario === s.name)) : scenarios;
    await warmUp(stack, workers, planned, options.say);
    const master = generator(options.seed);
    const started = Date.now();
    const seeds = options.runSeed !== undefined ? [options.runSeed] : [];
    for (let index = 0; ; index++) {
      if (options.plan) {
        if (index >= options.plan.length) break;
        seeds.push(master(0, 0x7fffffff));
      } else if (options.runSeed === undefined) {
        if (index >= options.runs || Date.now() - started > options.budgetMs) break;
        seeds.push(master(0, 0x7fffffff));
      } else if (index >= 1) break;
      const planned = options.plan?.[index];
      const record = await oneRun(stack, workers, index, seeds[index], planned ? scenarios.filter((s) => s.name === planned.scenario) : scenarios, planned ? [planned.fault] : faults, options, reported);
      records.push(record);
      options.onRun?.(record);
    }
  } finally {
    await workers.stopAll();
  }
  return records;
}

/**
 * One clean run of each scenario, checked like any other (without a fault, a violation means
 * the stack or the product is broken, and the runs would mean nothing): a backup to restore
 * from, and each scenario's typical time, from its start (after its preparation) to its close.
 */
async function warmUp(stack: ChaosStack, workers: WorkerPool, scenarios: Scenario[], say: (line: string) => void): Promise<void> {
  const ordered = [...scenarios].sort((a, b) => Number(b.name === 'database backup') - Number(a.name === 'database backup'));
  if (!ordered.some((s) => s.name === 'database backup')) ordered.unshift(SCENARIOS.find((s) => s.name === 'database backup')!);
  for (const scenario of ordered) {
    const workflowId = `chaos-warmup-${scenario.name.replace(/\W+/g, '-')}-${Date.now()}`;
    const liveOidBefore = await liveOid(stack);
    const run = await scenario.start(stack, workflowId);
    const t0 = Date.now();
    const outcome = await within(run.outcome, 240_000, { status: 'hung' } as Outcome);
    if (outcome.status === 'hung') await run.terminate().catch(() => undefined);
    scenario.typicalMs = Date.now() - t0;
    const problems = outcome.status === 'completed' ? [] : [`it ended ${outcome.status}${outcome.errorType ? ` ${outcome.errorType}` : ''}: ${outcome.message ?? ''}`];
    problems.push(...(await scenario.check(stack, outcome, { workflowId, unwritable: [], unreadable: [], liveOidBefore, draw: generator(0) })));
    problems.push(...(await globalProblems(stack, workers.livePids())), ...workers.takeDeaths());
    if (problems.length) throw new Error(`warm-up: ${scenario.name}, without any fault:\n  - ${problems.join('\n  - ')}`);
    say(`warm-up: ${scenario.name} in ${scenario.typicalMs} ms (checked in ${Date.now() - t0 - scenario.typicalMs} ms)`);
  }
}

async function oneRun(stack: ChaosStack, workers: WorkerPool, index: number, runSeed: number, scenarios: Scenario[], faults: readonly FaultKind[], options: ChaosOptions, reported: Set<string>): Promise<RunRecord> {
  const runStarted = Date.now();
  const draw = generator(runSeed);
  const scenario = scenarios[draw(0, scenarios.length - 1)];
  const fault = faults[draw(0, faults.length - 1)];
  const delayMs = draw(0, Math.max(200, Math.round(scenario.typicalMs * 0.9)));
  const workflowId = `chaos-${index}-${runSeed}`;
  await workers.current();
  const liveOidBefore = await liveOid(stack);
  let run: ScenarioRun;
  try {
    run = await scenario.start(stack, workflowId);
  } catch (err) {
    const record: RunRecord = {
      index,
      runSeed,
      scenario: scenario.name,
      fault,
      faultDetail: 'not injected: the run did not start',
      landed: false,
      faultAtMs: Date.now(),
      outcome: 'failed',
      errorType: 'NotStarted',
      tookMs: Date.now() - runStarted,
      violations: [`the run could not be started: ${(err as Error).message.slice(0, 300)}`],
    };
    options.say(`#${index} seed ${runSeed}: ${scenario.name} did not start\n  VIOLATIONS:\n  - ${record.violations[0]}`);
    return record;
  }
  let closedAt: number | undefined;
  const outcomePromise = run.outcome.then((o) => ((closedAt = Date.now()), o));
  await within(outcomePromise, delayMs, undefined);
  const landed = closedAt === undefined;
  const faultAt = Date.now();
  // A fault the harness could not inject is reported as such, never as a run that survived it.
  const injected = await injectFault(fault, { stack, workers, draw }).catch((err: Error) => ({
    detail: `NOT INJECTED: ${err.message.split('\n')[0].slice(0, 160)}`,
    afterRun: async () => undefined,
    failed: true,
  }));
  const hangMs = options.hangMs ?? 240_000;
  let outcome = await within(outcomePromise, hangMs, { status: 'hung' } as Outcome);
  if (outcome.status === 'hung') await run.terminate().catch(() => undefined);
  await injected.afterRun();
  // A stale attempt that woke may still be finishing: let the workflow's last word settle.
  if (outcome.status === 'hung') outcome = { status: 'hung' };
  const violations: string[] = [];
  if ('failed' in injected) violations.push(`the harness could not inject the fault: ${injected.detail}`);
  violations.push(...outcomeViolations(scenario.name, fault, outcome, hangMs));
  const context = { workflowId, liveOidBefore, draw, unwritable: unwritableUnder(fault), unreadable: unreadableUnder(fault) };
  violations.push(...(await scenario.check(stack, outcome, context).catch((err: Error) => [`checking the ${scenario.name} failed: ${err.message}`])));
  // Under a fault that left a repository unwritable, what the run could not remove there
  // (objects, temp files, open uploads) is the sweep's, checked after it.
  const sweepAfter = unwritableUnder(fault).length > 0;
  const global = await globalProblems(stack, workers.livePids(), { sweptLater: unwritableUnder(fault) }).catch((err: Error) => [`checking the global invariants failed: ${err.message}`]);
  violations.push(...newGlobalProblems(global, reported));
  violations.push(...workers.takeDeaths());
  let sweepDetail = '';
  if (sweepAfter) {
    const swept = await sweptAfterFault(stack, scenario.name, outcome, workflowId).catch((err: Error) => ({ problems: [`the sweep after the fault failed: ${err.message}`], summary: '' }));
    violations.push(...swept.problems);
    sweepDetail = swept.summary ? `; then ${swept.summary}` : '';
  }
  const record: RunRecord = {
    index,
    runSeed,
    scenario: scenario.name,
    fault,
    faultDetail: injected.detail + sweepDetail,
    landed,
    faultAtMs: faultAt,
    outcome: outcome.status,
    errorType: outcome.errorType,
    recoverMs: landed && closedAt && outcome.status !== 'hung' ? closedAt - faultAt : undefined,
    tookMs: Date.now() - runStarted,
    violations,
  };
  options.say(
    `#${index} seed ${runSeed}: ${scenario.name} + ${fault} (${record.faultDetail}${landed ? '' : '; after the run closed'}) -> ${outcome.status}${outcome.errorType ? ` ${outcome.errorType}` : ''}` +
      `${record.recoverMs !== undefined ? `, closed ${(record.recoverMs / 1000).toFixed(1)} s after the fault` : ''} [${(record.tookMs / 1000).toFixed(1)} s]${violations.length ? `\n  VIOLATIONS:\n  - ${violations.join('\n  - ')}` : ''}`,
  );
  return record;
}
