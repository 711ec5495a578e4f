// How the runner judges a run's close and which of the global problems are this run's: pure,
// so each rule is proved against a planted outcome (test/unit/chaosJudgement.test.ts).
import { PERMANENT_FAULT_ERRORS, type FaultKind } from './faults.js';
import type { Outcome } from './scenario.js';

/**
 * Scenarios that read one repository's copy and no other (the drill reads the offsite S3
 * copy, drill.repository): only those may find no usable copy when that repository's key is
 * revoked. A restore or a verification that ended NoUsableCopy there ignored the local and NAS
 * copies it had.
 */
const READS_ONE_COPY: Record<string, string> = { 'recovery drill': 's3' };

/** The error types `scenario` may end with under `fault`. */
export function permanentFaultErrors(scenario: string, fault: FaultKind): string[] {
  const allowed = PERMANENT_FAULT_ERRORS[fault] ?? [];
  if (fault === 's3-revoke' && READS_ONE_COPY[scenario] === 's3') return [...allowed, 'NoUsableCopy'];
  return allowed;
}

/**
 * What is wrong with how a run closed: it did not close, it failed under a fault it must
 * survive (or with another error than the fault explains, or none), or it ended cancelled,
 * terminated or timed out, which nobody asked for (the harness cancels no run, and one it
 * terminates for hanging is judged as hung).
 */
export function outcomeViolations(scenario: string, fault: FaultKind, outcome: Outcome, hangMs: number): string[] {
  const violations: string[] = [];
  if (outcome.status === 'hung') violations.push(`the run did not close within ${hangMs / 1000} s of the fault`);
  const allowed = permanentFaultErrors(scenario, fault);
  if (outcome.status === 'failed' && !(outcome.errorType && allowed.includes(outcome.errorType))) {
    violations.push(`failed under a fault it must survive: ${outcome.errorType ?? 'untyped'}: ${outcome.message?.slice(0, 200)}`);
  }
  if (outcome.status === 'failed' && !outcome.errorType) violations.push('failed without an error type');
  if (outcome.status === 'cancelled' || outcome.status === 'terminated' || outcome.status === 'timed-out') {
    violations.push(`it ended ${outcome.status}, which nobody asked for${outcome.message ? `: ${outcome.message.slice(0, 200)}` : ''}`);
  }
  return violations;
}

/**
 * The global problems found after a run that are its own: a problem found after the run
 * before and still there is that earlier run's violation (a hung run's leftover, terminated
 * without cleanup), reported once; one that went away and came back is this run's.
 * `standing` holds what the previous check found, and is updated to what this one found.
 */
export function newGlobalProblems(found: string[], standing: Set<string>): string[] {
  const fresh = found.filter((problem) => !standing.has(problem));
  standing.clear();
  for (const problem of found) standing.add(problem);
  return fresh;
}
