// docs/reliability.md: per workflow and fault kind, how many runs, how many completed, how many
// failed cleanly, the violations (with the seed that reproduces each), and the median time
// from the fault to the run's close.
import os from 'node:os';
import type { RunRecord } from './runner.js';

function median(values: number[]): number | undefined {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const seconds = (ms: number | undefined) => (ms === undefined ? '–' : (ms / 1000).toFixed(1));

export interface ReportContext {
  seed: number;
  startedAt: Date;
  elapsedMs: number;
  command: string;
  notCovered: string[];
  /** Stacks run side by side, each with its own servers and workers (--lanes). */
  lanes: number;
  /** Said right under the title (how this report was made, when not by a whole run). */
  preface?: string[];
}

export function reliabilityReport(records: RunRecord[], context: ReportContext): string {
  const violating = records.filter((r) => r.violations.length);
  const landed = records.filter((r) => r.landed);
  const lines = [
    '# Reliability under faults',
    '',
    ...(context.preface ?? []).flatMap((line) => [line, '']),
    `Written by \`npm run chaos\` (${context.command}) on ${context.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC: ` +
      `${records.length} runs with one injected fault each (${landed.length} landed while the workflow was running, the rest just after it closed), ` +
      `in ${(context.elapsedMs / 60000).toFixed(1)} minutes; master seed ${context.seed}` +
      (context.lanes > 1 ? `, on ${context.lanes} lanes side by side (each its own Temporal server, PostgreSQL, S3, repositories and workers; lane k draws its runs from master seed + k)` : '') +
      '. ' +
      `Machine: ${os.cpus().length} CPU (${os.cpus()[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}.`,
    '',
    `**Violations: ${violating.length}.** Faults injected per hour: ${Math.round((records.length / context.elapsedMs) * 3_600_000)} (${Math.round((landed.length / context.elapsedMs) * 3_600_000)} of them into a running workflow); median run (start, fault, close, healing, checks): ${seconds(median(records.map((r) => r.tookMs)))} s.`,
    '',
    'Each run: a workflow on the real stack (Temporal dev server, PostgreSQL, SeaweedFS S3 behind a fault proxy, filesystem repositories, real `backupctl worker` processes), one fault at a moment drawn from the run\'s seed, then every invariant checked (chaos/invariants.ts): a completed backup has a whole copy in every repository and restores identical with plain gpg, zstd and pg_restore; a failed one left nothing under its id; no restore or scratch database, staged plaintext, unfinished write, open multipart upload, orphaned tool process or dead worker\'s temp folder is left; the live database is unchanged unless a swap completed; the application\'s services run; a run under a fault it must survive completes, and one under a full or read-only repository fails only with DiskFull or StorageAccessDenied. "Recover" is the median time from the fault to the workflow\'s close, over the runs where the fault landed in a running workflow.',
    '',
    '| workflow | fault | runs | landed | completed | failed clean | violations | median recover (s) |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  const groups = new Map<string, RunRecord[]>();
  for (const r of records) {
    const key = `${r.scenario}\u0000${r.fault}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  for (const [key, runs] of [...groups.entries()].sort()) {
    const [scenario, fault] = key.split('\u0000');
    const bad = runs.filter((r) => r.violations.length);
    lines.push(
      `| ${scenario} | ${fault} | ${runs.length} | ${runs.filter((r) => r.landed).length} | ${runs.filter((r) => r.outcome === 'completed').length} | ` +
        `${runs.filter((r) => r.outcome !== 'completed' && !r.violations.length).length} | ${bad.length ? `${bad.length} (seed ${bad.map((r) => r.runSeed).join(', ')})` : 0} | ` +
        `${seconds(median(runs.filter((r) => r.recoverMs !== undefined).map((r) => r.recoverMs!)))} |`,
    );
  }
  const byFault = new Map<string, RunRecord[]>();
  for (const r of records) byFault.set(r.fault, [...(byFault.get(r.fault) ?? []), r]);
  lines.push('', '## By fault kind', '', '| fault | runs | violations | median recover (s) |', '|---|---:|---:|---:|');
  for (const [fault, runs] of [...byFault.entries()].sort()) {
    lines.push(`| ${fault} | ${runs.length} | ${runs.filter((r) => r.violations.length).length} | ${seconds(median(runs.filter((r) => r.recoverMs !== undefined).map((r) => r.recoverMs!)))} |`);
  }
  if (violating.length) {
    lines.push('', '## Violations', '', 'Reproduce one with `npm run chaos -- --run-seed <seed>`.', '');
    for (const r of violating) lines.push(`- seed ${r.runSeed}: ${r.scenario} + ${r.fault} (${r.faultDetail}) -> ${r.outcome}${r.errorType ? ` ${r.errorType}` : ''}: ${r.violations.join('; ')}`);
  }
  if (context.notCovered.length) {
    lines.push('', '## Not covered yet', '', ...context.notCovered.map((n) => `- ${n}`));
  }
  return lines.join('\n') + '\n';
}
