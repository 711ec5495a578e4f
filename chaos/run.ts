// `npm run chaos`: the chaos suite on the real stack. Prints every run as it ends, writes
// docs/reliability.md, and exits 1 when any invariant was violated.
//   --runs N (300)  --minutes M (55)  --seed S (random, printed)  --run-seed R (replay one run)
//   --lanes L (1: stacks side by side, each its own servers and workers)
//   --scenario NAME (repeatable)  --fault KIND (repeatable)  --out FILE (docs/reliability.md; - for none)
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FAULT_KINDS, type FaultKind } from './faults.js';
import { NOT_COVERED } from './coverage.js';
import { reliabilityReport } from './report.js';
import { runChaos } from './runner.js';
import { startChaosStack, type ChaosStack } from './stack.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '300' },
    minutes: { type: 'string', default: '55' },
    seed: { type: 'string' },
    'run-seed': { type: 'string' },
    scenario: { type: 'string', multiple: true },
    fault: { type: 'string', multiple: true },
    out: { type: 'string', default: 'docs/reliability.md' },
    lanes: { type: 'string', default: '1' },
  },
});
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 0x7fffffff);
const faults = values.fault as FaultKind[] | undefined;
for (const f of faults ?? []) if (!FAULT_KINDS.includes(f)) throw new Error(`unknown fault ${f}; one of ${FAULT_KINDS.join(', ')}`);
const say = (line: string) => console.log(line);
const lanes = values['run-seed'] !== undefined ? 1 : Number(values.lanes);
if (!Number.isInteger(lanes) || lanes < 1 || lanes > 4) throw new Error(`--lanes ${values.lanes}: expected 1 to 4`);
say(`chaos: master seed ${seed}${lanes > 1 ? `, ${lanes} lanes` : ''}`);
const startedAt = new Date();
const stacks: ChaosStack[] = [];
const stopAll = () => Promise.all(stacks.map((s) => s.stop()));
// Ctrl-C or a kill: the stacks go with us (their tmpfs unmounted, their servers stopped).
// `on`, not `once`: execa's child cleanup (signal-exit) re-raises a signal as soon as it sees no
// listener but its own, which killed this process mid-stop: the servers went (execa's children),
// and the workers, gpg-agents, NAS tmpfs and folders stayed. A second signal is ignored.
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping the stack`);
    // The runs still under way fail as their stack goes (a Temporal call retried on a closed
    // connection throws from a timer): said, not fatal, so the stop reaches its end.
    const ignore = (err: unknown) => say(`while stopping: ${(err as Error)?.message ?? String(err)}`);
    process.on('uncaughtException', ignore);
    process.on('unhandledRejection', ignore);
    void stopAll().finally(() => process.exit(130));
  });
}
let violations: number | undefined;
try {
  // One after the other: each start is CPU-heavy, and the runs must not start half-ready.
  for (let lane = 0; lane < lanes; lane++) stacks.push(await startChaosStack(lanes > 1 ? (line) => say(`[lane ${lane}] ${line}`) : say));
  const perLane = Math.ceil(Number(values.runs) / lanes);
  const results = await Promise.all(
    stacks.map((stack, lane) =>
      runChaos(stack, {
        seed: seed + lane,
        runs: perLane,
        budgetMs: Number(values.minutes) * 60_000,
        runSeed: values['run-seed'] !== undefined ? Number(values['run-seed']) : undefined,
        scenarios: values.scenario,
        faults,
        say: lanes > 1 ? (line) => say(`[lane ${lane}] ${line}`) : say,
      }),
    ),
  );
  const records = results.flat();
  violations = records.filter((r) => r.violations.length).length;
  const report = reliabilityReport(records, { seed, startedAt, elapsedMs: Date.now() - startedAt.getTime(), command: process.argv.slice(2).join(' ') || 'defaults', notCovered: NOT_COVERED, lanes });
  if (values.out !== '-' && values['run-seed'] === undefined) writeFileSync(values.out!, report);
  say(`\n${records.length} runs, ${violations} with violations`);
} finally {
  await stopAll();
}
process.exit(violations ? 1 : 0);
