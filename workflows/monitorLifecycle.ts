// The life of a problem, as the monitor tells people of it: opened once (the first look that
// finds its key), reminded of every `reminderMs` while it lasts, resolved once (the second look
// in a row that does not find it: one that comes and goes is not told again at every look).
// A failed run of ours is told once. Pure: the state goes in and comes out changed, with the
// alerts to send; no I/O, no clock but the one given.
import type { Alert } from '../common/alertTypes.js';
import { severityOf } from '../common/alertSeverity.js';

export { severityOf };
import { FAILED_RUNS_PER_LOOK, type DeliveryOutcome, type FailedRun, type MonitorState } from '../common/monitorTypes.js';

/** A problem is resolved once this many looks in a row did not find it. */
export const RESOLVED_AFTER_MISSED_LOOKS = 2;
/** Failed runs remembered as told. */
const TOLD_RUNS_KEPT = 500;
/** Alerts kept for channels that could not take them yet. */
const UNDELIVERED_KEPT = 200;
/** Visibility lags behind a run's close: look this far back again (what was told is remembered). */
export const FAILED_RUNS_OVERLAP_MS = 10 * 60_000;
/** A run's history past this many events or bytes ends it (continued as new): Temporal refuses 50,000 events or 50 MB. */
const RUN_EVENTS_MAX = 10_000;
const RUN_BYTES_MAX = 10 * 1024 * 1024;

const titleOf = (message: string) => (message.length > 200 ? `${message.slice(0, 197)}...` : message);

export function initialState(now: number): MonitorState {
  return { open: {}, undelivered: [], channels: {}, toldRuns: [], failedRunsSince: new Date(now - FAILED_RUNS_OVERLAP_MS).toISOString(), lastLookAt: null, looks: 0 };
}

/** A look at the backups: the problems found now, against those open. */
export function lookedAt(state: MonitorState, found: { key: string; message: string }[], now: number, reminderMs: number, host: string): Alert[] {
  const at = new Date(now).toISOString();
  const alerts: Alert[] = [];
  const seen = new Set<string>();
  for (const { key, message } of found) {
    if (seen.has(key)) continue;
    seen.add(key);
    const open = state.open[key];
    if (!open) {
      const severity = severityOf(key);
      state.open[key] = { message, severity, openedAt: at, lastToldAt: at };
      alerts.push({ key, event: 'opened', severity, title: titleOf(message), text: `${message}\n\nSeen from ${host} at ${at}.`, host, at });
      continue;
    }
    open.message = message;
    delete open.missedLooks;
    if (now - Date.parse(open.lastToldAt) >= reminderMs) {
      open.lastToldAt = at;
      alerts.push({ key, event: 'reminder', severity: open.severity, title: titleOf(message), text: `Still so: ${message}\n\nOpen since ${open.openedAt}, seen again from ${host} at ${at}.`, host, at, openedAt: open.openedAt });
    }
  }
  for (const [key, open] of Object.entries(state.open)) {
    if (seen.has(key)) continue;
    // Gone from one look only: kept open (a problem that comes and goes at every look is told
    // once, not opened and resolved again and again); gone from two in a row: resolved.
    open.missedLooks = (open.missedLooks ?? 0) + 1;
    if (open.missedLooks < RESOLVED_AFTER_MISSED_LOOKS) continue;
    delete state.open[key];
    alerts.push({ key, event: 'resolved', severity: open.severity, title: titleOf(`resolved: ${open.message}`), text: `Resolved: ${open.message}\n\nOpen since ${open.openedAt}; not seen from ${host} at ${at}.`, host, at, openedAt: open.openedAt });
  }
  state.lastLookAt = at;
  state.looks++;
  return alerts;
}

/** Failed runs: each told once; the next look starts a little before the newest seen. */
export function failedRunsSeen(state: MonitorState, runs: FailedRun[], now: number, host: string): Alert[] {
  const at = new Date(now).toISOString();
  const alerts: Alert[] = [];
  for (const run of runs) {
    if (state.toldRuns.includes(run.runId)) continue;
    state.toldRuns.push(run.runId);
    alerts.push({
      key: `run.failed:${run.workflowId}`,
      event: 'failed-run',
      severity: 'critical',
      title: titleOf(`${run.type} ${run.workflowId} failed: ${run.failureType}: ${run.failureMessage}`),
      text: `The run ${run.workflowId} (${run.type}, run ${run.runId}) failed at ${run.closeTime}.\n${run.failureType}: ${run.failureMessage}${run.link ? `\n\n${run.link}` : ''}`,
      host,
      at,
      ...(run.link ? { link: run.link } : {}),
    });
  }
  state.toldRuns = state.toldRuns.slice(-TOLD_RUNS_KEPT);
  // A full look (the oldest 50 of more): the next starts just before the newest of them, not at
  // now, or the rest would never be told.
  const newest = runs.reduce<string | undefined>((max, run) => (max === undefined || run.closeTime > max ? run.closeTime : max), undefined);
  state.failedRunsSince = runs.length >= FAILED_RUNS_PER_LOOK && newest ? new Date(Date.parse(newest) - 1).toISOString() : new Date(now - FAILED_RUNS_OVERLAP_MS).toISOString();
  return alerts;
}

/** What each channel did: a retryable failure keeps the alert for that channel; each channel's last outcome is kept. */
export function deliveriesDone(state: MonitorState, outcomes: DeliveryOutcome[], now: number): void {
  const at = new Date(now).toISOString();
  for (const { alert, results } of outcomes) {
    const again = results.filter((r) => !r.ok && r.retryable).map((r) => r.channel);
    if (again.length) state.undelivered.push({ alert, only: again });
    for (const r of results) state.channels[r.channel] = r.ok ? { ok: true, at } : { ok: false, at, error: r.error };
  }
  state.undelivered = state.undelivered.slice(-UNDELIVERED_KEPT);
}

/**
 * Whether the run has told enough to continue as new: when Temporal suggests it, or its history
 * is long (alerts waiting for a channel that is down are sent again at every tick, one activity
 * each, so a day of ticks can pass Temporal's limits).
 */
export function runIsFull(info: { historyLength: number; historySize: number; continueAsNewSuggested: boolean }): boolean {
  return info.continueAsNewSuggested || info.historyLength >= RUN_EVENTS_MAX || info.historySize >= RUN_BYTES_MAX;
}
