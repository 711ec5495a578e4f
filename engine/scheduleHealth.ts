// Are our Temporal Schedules doing what the configuration says: each one it implies there, not
// paused, and acting at its cadence? No Temporal here: the caller describes each schedule
// (activities/scheduleLook.ts for the monitor, client/scheduleProblems.ts for status) as a
// plain ScheduleView, and this decides.
import type { Config } from '../common/config.js';
import { redact } from '../common/redact.js';
import { MANAGED_BY, plannedSchedules, SCHEDULED_WORKFLOWS } from '../common/schedulePlan.js';
import { errorText } from './errors.js';
import type { Problem } from './problem.js';

/** What a described schedule says, in plain values (ISO 8601 times). */
export interface ScheduleView {
  paused: boolean;
  note?: string;
  createdAt: string;
  /** The scheduled time of its newest action (recent actions), if it ever acted. */
  lastActionAt?: string;
  /** Its next action times, as the server computes them from its spec, soonest first. */
  nextActionTimes: string[];
  /** Not made by backupctl (no managedBy memo of ours): the workflow type it starts. */
  foreign?: string;
}

/** A schedule described, absent (undefined), or not describable (the error). */
export type DescribedSchedule = ScheduleView | undefined | { error: string };

/** A schedule is missed past its cadence plus this much: an hour, or a tenth of a long cadence. */
export function missedGraceMs(cadenceMs: number): number {
  return Math.max(3_600_000, cadenceMs / 10);
}

/**
 * The longest gap between its next action times: a cron of weekdays acts daily but waits three
 * days over a weekend, and a miss is called only past the longest wait (so on Tuesday a Monday
 * missed is told late, never a weekend falsely). Undefined with fewer than two times.
 */
export function cadenceOf(nextActionTimes: string[]): number | undefined {
  const times = nextActionTimes.map((t) => Date.parse(t)).sort((a, b) => a - b);
  let longest: number | undefined;
  for (let i = 1; i < times.length; i++) longest = Math.max(longest ?? 0, times[i] - times[i - 1]);
  return longest;
}

function hours(ms: number): string {
  const h = ms / 3_600_000;
  return h >= 48 ? `${(h / 24).toFixed(1)} days` : `${h.toFixed(1)} hours`;
}

/** The problems of our schedules now: each the configuration implies, described as `described` has it. */
export function scheduleIssues(config: Config, described: Record<string, DescribedSchedule>, now: number): Problem[] {
  const problems: Problem[] = [];
  for (const { scheduleId, name, reason } of plannedSchedules(config)) {
    if (reason) continue; // not implied: its absence is right, and apply deletes one of ours
    const found = described[scheduleId];
    if (found === undefined) {
      problems.push({ key: `schedule.absent:${scheduleId}`, message: `schedule ${scheduleId} (schedules.${name}) is missing: nothing starts these runs; backupctl schedules apply makes it` });
      continue;
    }
    if ('error' in found) {
      problems.push({ key: `schedule.unreadable:${scheduleId}`, message: `schedule ${scheduleId} cannot be described: ${found.error}` });
      continue;
    }
    // Not ours (apply leaves such a one alone), unless one of ours from before the memo (it starts our workflow; apply adopts it).
    if (found.foreign !== undefined && found.foreign !== SCHEDULED_WORKFLOWS[scheduleId]) {
      problems.push({
        key: `schedule.foreign:${scheduleId}`,
        message: `schedule ${scheduleId} (schedules.${name}) was not made by backupctl (no managedBy memo; it starts ${found.foreign || '(no workflow)'}): nothing of ours starts these runs; delete or rename it, then backupctl schedules apply`,
      });
      continue;
    }
    if (found.paused) {
      // Paused as the configuration says (schedules.<name>.paused): the operator's own decision,
      // not a problem to remind of; a stale component still says what it costs.
      if (config.schedules[name].paused) continue;
      // Paused is why it does not act: that is the problem to tell, not a miss as well.
      problems.push({ key: `schedule.paused:${scheduleId}`, message: `schedule ${scheduleId} (schedules.${name}) is paused: ${found.note || '(no note)'}; nothing starts these runs until it is unpaused` });
      continue;
    }
    // Our specs never end: none to come is an end time or an action limit set by hand.
    if (found.nextActionTimes.length === 0) {
      problems.push({
        key: `schedule.idle:${scheduleId}`,
        message: `schedule ${scheduleId} (schedules.${name}) is not paused but has no next action: it will never start these runs again (an end time or an action limit set on it?); backupctl schedules apply makes it anew`,
      });
      continue;
    }
    const cadence = cadenceOf(found.nextActionTimes);
    if (cadence === undefined) continue;
    const last = found.lastActionAt ?? found.createdAt;
    const expected = Date.parse(last) + cadence;
    if (now > expected + missedGraceMs(cadence)) {
      problems.push({
        key: `schedule.missed:${scheduleId}`,
        message: `schedule ${scheduleId} (schedules.${name}) missed its runs: ${found.lastActionAt ? `its last action was scheduled at ${last}` : `it has not acted since it was made at ${last}`}, and the next was expected by ${new Date(expected).toISOString()} (it acts at least every ${hours(cadence)}; ${hours(now - expected)} late). Are the workers and the Temporal server up? (backupctl schedules list)`,
      });
    }
  }
  return problems;
}

/** The part of a Temporal schedule description judged here (the client's ScheduleDescription has it). */
export interface ScheduleDescriptionLike {
  memo?: Record<string, unknown>;
  action?: { workflowType?: string };
  state: { paused: boolean; note?: string };
  info: { createdAt: Date; recentActions: { scheduledAt: Date }[]; nextActionTimes: Date[] };
}

export function scheduleView(d: ScheduleDescriptionLike): ScheduleView {
  const last = d.info.recentActions.map((a) => a.scheduledAt.getTime()).reduce<number | undefined>((max, t) => (max === undefined || t > max ? t : max), undefined);
  return {
    paused: d.state.paused,
    ...(d.state.note ? { note: d.state.note } : {}),
    createdAt: d.info.createdAt.toISOString(),
    ...(last === undefined ? {} : { lastActionAt: new Date(last).toISOString() }),
    nextActionTimes: d.info.nextActionTimes.map((t) => t.toISOString()),
    ...(d.memo?.managedBy === MANAGED_BY ? {} : { foreign: d.action?.workflowType ?? '' }),
  };
}

/**
 * Describes each implied schedule through `describe` (undefined: no such schedule) and judges
 * them. A describe that fails is that schedule's problem, not the caller's failure.
 */
export async function lookAtSchedules(config: Config, describe: (scheduleId: string) => Promise<ScheduleDescriptionLike | undefined>, now = Date.now()): Promise<Problem[]> {
  const described: Record<string, DescribedSchedule> = {};
  for (const { scheduleId, reason } of plannedSchedules(config)) {
    if (reason) continue;
    try {
      const found = await describe(scheduleId);
      described[scheduleId] = found && scheduleView(found);
    } catch (err) {
      described[scheduleId] = { error: redact(errorText(err)) };
    }
  }
  return scheduleIssues(config, described, now);
}
