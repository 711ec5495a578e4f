// `npm run chaos`: the chaos suite on the real stack. Prints every run as it ends, writes
// docs/reliability.md, and exits 1 when any invariant was violated.
//   --runs N (300)  --minutes M (55)  --seed S (random, printed)  --run-seed R (replay one run)
//   --scenario NAME (repeatable)  --fault KIND (repeatable)  --out FILE (docs/reliability.md; - for none)
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FAULT_KINDS, type FaultKind } from './faults.js';
import { NOT_COVERED } from './coverage.js';
import { reliabilityReport } from './report.js';
import { runChaos } from './runner.js';
import { startChaosStack } from './stack.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '300' },
    minutes: { type: 'string', default: '55' },
    seed: { type: 'string' },
    'run-seed': { type: 'string' },
    scenario: { type: 'string', multiple: true },
    fault: { type: 'string', multiple: true },
    out: { type: 'string', default: 'docs/reliability.md' },
  },
});
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 0x7fffffff);
const faults = values.fault as FaultKind[] | undefined;
for (const f of faults ?? []) if (!FAULT_KINDS.includes(f)) throw new Error(`unknown fault ${f}; one of ${FAULT_KINDS.join(', ')}`);
const say = (line: string) => console.log(line);
say(`chaos: master seed ${seed}`);
const startedAt = new Date();
const stack = await startChaosStack(say);
// Ctrl-C or a kill: the stack goes with us (its tmpfs is unmounted, its servers stopped).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`${signal}: stopping the stack`);
    void stack.stop().finally(() => process.exit(130));
  });
}
let violations: number;
try {
  const records = await runChaos(stack, {
    seed,
    runs: Number(values.runs),
    budgetMs: Number(values.minutes) * 60_000,
    runSeed: values['run-seed'] !== undefined ? Number(values['run-seed']) : undefined,
    scenarios: values.scenario,
    faults,
    say,
  });
  violations = records.filter((r) => r.violations.length).length;
  const report = reliabilityReport(records, { seed, startedAt, elapsedMs: Date.now() - startedAt.getTime(), command: process.argv.slice(2).join(' ') || 'defaults', notCovered: NOT_COVERED });
  if (values.out !== '-' && values['run-seed'] === undefined) writeFileSync(values.out!, report);
  say(`\n${records.length} runs, ${violations} with violations`);
} finally {
  await stack.stop();
}
process.exit(violations ? 1 : 0);
