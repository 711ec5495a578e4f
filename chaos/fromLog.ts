// Rebuilds docs/reliability.md from what `npm run chaos` printed, one line per run (with its
// violations under it), when the runner itself stopped before it could write the report.
//   node --import tsx chaos/fromLog.ts --log FILE --started ISO --ended ISO --seed S --lanes L --command "..." --why "..."
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { NOT_COVERED } from './coverage.js';
import type { FaultKind } from './faults.js';
import { reliabilityReport } from './report.js';
import type { RunRecord } from './runner.js';
import type { Outcome } from './scenarios.js';

const RUN = /^(?:\[lane (\d+)\] )?#(\d+) seed (\d+): (.+?) \+ (\S+) \((.*)\) -> (\S+)(?: (\w+))?(?:, closed ([\d.]+) s after the fault)? \[([\d.]+) s\]$/;

export function recordsFromLog(text: string): RunRecord[] {
  const records: RunRecord[] = [];
  let last: RunRecord | undefined;
  for (const line of text.split('\n')) {
    const run = RUN.exec(line);
    if (run) {
      const detail = run[6];
      last = {
        index: Number(run[2]),
        runSeed: Number(run[3]),
        scenario: run[4],
        fault: run[5] as FaultKind,
        faultDetail: detail.replace(/; after the run closed$/, ''),
        landed: !detail.endsWith('; after the run closed'),
        faultAtMs: 0,
        outcome: run[7] as Outcome['status'],
        errorType: run[8],
        recoverMs: run[9] !== undefined ? Number(run[9]) * 1000 : undefined,
        tookMs: Number(run[10]) * 1000,
        violations: [],
      };
      records.push(last);
    } else if (last && /^ {2}- /.test(line)) {
      last.violations.push(line.slice(4));
    } else if (!/^ {2}VIOLATIONS:$/.test(line)) {
      last = undefined;
    }
  }
  return records;
}

const isMain = process.argv[1]?.endsWith('fromLog.ts');
if (isMain) {
  const { values } = parseArgs({
    options: {
      log: { type: 'string' },
      started: { type: 'string' },
      ended: { type: 'string' },
      seed: { type: 'string' },
      lanes: { type: 'string', default: '1' },
      command: { type: 'string', default: 'defaults' },
      why: { type: 'string', multiple: true },
      out: { type: 'string', default: 'docs/reliability.md' },
    },
  });
  const records = recordsFromLog(readFileSync(values.log!, 'utf8'));
  const startedAt = new Date(values.started!);
  const elapsedMs = new Date(values.ended!).getTime() - startedAt.getTime();
  writeFileSync(
    values.out!,
    reliabilityReport(records, { seed: Number(values.seed), startedAt, elapsedMs, command: values.command!, notCovered: NOT_COVERED, lanes: Number(values.lanes), preface: values.why }),
  );
  console.log(`${records.length} runs, ${records.filter((r) => r.violations.length).length} with violations -> ${values.out}`);
}
