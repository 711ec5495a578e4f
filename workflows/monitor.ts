// Watches it all, forever: every `intervalSeconds` (15 minutes) it looks at the backups as
// `backupctl status` does (on the database host's worker: the repositories, the spool,
// PostgreSQL's archiver), and every `failedRunsSeconds` (a minute) for runs of ours that
// failed. People are told of a problem once when it opens, reminded at config
// alerts.reminderMinutes while it lasts, and told once when it is resolved; a failed run is told
// once, with its error and a link to it. A channel that cannot take an alert now keeps it for
// the next tick; the others deliver. A look that cannot be made is itself a problem
// (monitor.blind). The state lives in the workflow (and over continue-as-new), so a crash
// loses nothing and tells nothing twice. `schedules apply` starts it when absent.
import { allHandlersFinished, condition, continueAsNew, log, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { Alert } from '../common/alertTypes.js';
import type { MonitorInput, MonitorState } from '../common/monitorTypes.js';
import { hostActivities, monitorLook, monitorStep } from './activityOptions.js';
import { describeFailure } from './failures.js';
import { checkObject, checkTaskQueue, invalidInput } from './inputChecks.js';
import { monitorQuery } from './messages.js';
import { deliveriesDone, failedRunsSeen, initialState, lookedAt, runIsFull } from './monitorLifecycle.js';

/** Ticks per run before continuing as new (a day of one-minute ticks), unless its history is long first (runIsFull). */
const TICKS_PER_RUN = 1440;
/** Until the first look says otherwise (config alerts.reminderMinutes). */
const DEFAULT_REMINDER_MINUTES = 240;

function seconds(name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > max) throw invalidInput(name, value, `expected 1 to ${max}`);
  return value as number;
}

export async function monitor(input: MonitorInput): Promise<void> {
  checkObject(input);
  checkTaskQueue(input.hostTaskQueue);
  const interval = seconds('intervalSeconds', input.intervalSeconds, 900, 86_400);
  const tick = Math.min(interval, seconds('failedRunsSeconds', input.failedRunsSeconds, 60, 3_600));

  // The look needs the database host's worker; listing failed runs and telling people, any
  // worker (the monitor's own queue, the shared one): with that host down, another worker still says so.
  const look = hostActivities(monitorLook, input.hostTaskQueue);
  const step = hostActivities(monitorStep, workflowInfo().taskQueue);
  const state: MonitorState = input.state ?? initialState(Date.now());
  let reminderMinutes = DEFAULT_REMINDER_MINUTES;
  let hostName = input.hostTaskQueue;
  setHandler(monitorQuery, () => state);

  for (let i = 0; i < TICKS_PER_RUN; i++) {
    const alerts: Alert[] = [];
    if (state.lastLookAt === null || Date.now() - Date.parse(state.lastLookAt) >= interval * 1000) {
      try {
        // The integrity sample's cursor goes in and comes back: an input and a result, no command of its own.
        const findings = await look.monitorChecks({ intervalSeconds: interval, ...(state.integrity ? { integrity: state.integrity } : {}) });
        if (findings.integrity) state.integrity = findings.integrity;
        else delete state.integrity;
        reminderMinutes = findings.reminderMinutes;
        hostName = findings.host;
        delete state.lastLookError;
        alerts.push(...lookedAt(state, findings.problems, Date.now(), reminderMinutes * 60_000, hostName));
      } catch (err) {
        // The checks cannot run (the host's worker is gone, or they fail): that is a problem of
        // its own, and the problems open stay open (nothing is known of them).
        state.lastLookError = describeFailure(err);
        log.warn('monitor: the look at the backups failed', { error: state.lastLookError });
        const blind = { key: 'monitor.blind', message: `the monitor cannot look at the backups: ${state.lastLookError}` };
        const known = Object.entries(state.open).filter(([key]) => key !== 'monitor.blind').map(([key, open]) => ({ key, message: open.message }));
        alerts.push(...lookedAt(state, [...known, blind], Date.now(), reminderMinutes * 60_000, hostName));
      }
    }
    try {
      alerts.push(...failedRunsSeen(state, await step.failedRunsSince({ since: state.failedRunsSince }), Date.now(), hostName));
    } catch (err) {
      log.warn('monitor: failed runs could not be listed', { error: describeFailure(err) });
    }
    const sending: MonitorState['undelivered'] = [...state.undelivered, ...alerts.map((alert) => ({ alert }))];
    if (sending.length) {
      // One activity per alert and channel: a retry (a worker killed mid-send) sends again only
      // to the one channel it was sending to, never to those that took the alert already.
      let channels: string[] | undefined;
      try {
        channels = await step.alertChannels();
      } catch (err) {
        log.warn('monitor: the alert channels could not be read', { error: describeFailure(err) });
      }
      if (channels) {
        const pairs = sending.flatMap(({ alert, only }) => channels.filter((c) => !only || only.includes(c)).map((channel) => ({ alert, channel })));
        // What waits stays in the state (and the query) until the outcomes are back.
        const settled = await Promise.allSettled(pairs.map(({ alert, channel }) => step.deliverAlerts({ alerts: [{ alert, only: [channel] }] })));
        state.undelivered = [];
        deliveriesDone(
          state,
          settled.flatMap((outcome, i) =>
            outcome.status === 'fulfilled' ? outcome.value : [{ alert: pairs[i].alert, results: [{ channel: pairs[i].channel, ok: false, error: describeFailure(outcome.reason), retryable: true }] }],
          ),
          Date.now(),
        );
      } else {
        state.undelivered = sending.slice(-200);
      }
    }
    await sleep(tick * 1000);
    // A long history (alerts waiting for a channel that is down, sent again every tick) ends the run early.
    if (runIsFull(workflowInfo())) break;
  }
  await condition(allHandlersFinished);
  await continueAsNew<typeof monitor>({ ...input, state });
}
