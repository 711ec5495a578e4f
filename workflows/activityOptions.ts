// Named activity option presets, so every workflow times and retries alike, and the one way
// every workflow reaches its host's activities.
import { ActivityCancellationType, patched, proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { TRANSFER_MAX_ATTEMPTS } from '../common/attempts.js';

/**
 * How soon a bounded activity (no heartbeat of its own) is given up when its worker dies: the
 * worker heartbeats for it while it runs (workers/livenessHeartbeat.ts).
 */
export const BOUNDED_HEARTBEAT_TIMEOUT = '10 seconds';

/**
 * How long attempts may be lost to a frozen worker (SIGSTOP, a VM paused, a swapped-out
 * host). The Temporal server keeps the frozen worker's open long polls (one per poller, held
 * for about a minute) and hands them attempt after attempt; each is lost at its heartbeat
 * timeout. Measured by the chaos suite: about 60 s. Every preset keeps an attempt that starts
 * after this window, counting each lost attempt's heartbeat timeout and backoff
 * (test/unit/frozenWorkerWindow.test.ts), so a freeze alone never exhausts the retries.
 */
export const FROZEN_WORKER_WINDOW_MS = 90_000;

/**
 * The activities of a host's task queue, with `options`. A cancelled activity is waited for
 * until it has stopped (it hears of the cancel on its next heartbeat; one that sends none ends
 * at its timeout): the workflow's compensation runs after the activity's last act, never
 * before, so nothing the activity makes after it (a database, a folder, a claim) is left with
 * nobody to remove it. Bounded activities get a heartbeat timeout, so a dead worker's attempt
 * is retried within seconds, not at its start-to-close timeout. Histories recorded before
 * this change replay as they ran.
 */
export function hostActivities(options: ActivityOptions, taskQueue: string) {
  const newer = patched('wait-for-cancelled-activities');
  return proxyActivities<Activities>({
    ...options,
    taskQueue,
    ...(newer ? { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED, heartbeatTimeout: options.heartbeatTimeout ?? BOUNDED_HEARTBEAT_TIMEOUT } : {}),
  });
}

/** Reads and checks that finish in seconds: fail fast when something stays down. */
export const quickMetadata = {
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 7 },
} as const satisfies ActivityOptions;

/**
 * Streams that may run for hours. The short heartbeat timeout is what lets another worker
 * take over within seconds when this one dies.
 */
export const longTransfer = {
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: TRANSFER_MAX_ATTEMPTS },
} as const satisfies ActivityOptions;

/**
 * Restores and inspections: as long as a transfer, with fewer attempts, since a retry starts
 * the whole restore again.
 */
export const longRestore = {
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 5 },
} as const satisfies ActivityOptions;

/** Starting the application again must not give up after a blip: retried for about an hour. */
export const serviceControl = {
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 60 },
} as const satisfies ActivityOptions;

/** A recovery cluster's steps (restore, replay, promote): long, and worth more attempts. */
export const longRecovery = {
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 10 },
} as const satisfies ActivityOptions;

/** One WAL shipping pass: few attempts, since the next pass is the retry and a failure must show. */
export const walShippingPass = {
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '2 seconds', maximumAttempts: 5 },
} as const satisfies ActivityOptions;

/**
 * One step of the sweep of leftovers: finding them, asking Temporal, dropping or removing one.
 * Each heartbeats as it goes (a key removed, a folder looked at), so a killed worker's step
 * moves to another worker within seconds; a retry finds what is left and does the rest.
 */
export const sweepStep = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 6 },
} as const satisfies ActivityOptions;

/**
 * Retention's steps: reading every repository's catalog and deciding, then pruning one
 * repository. Each heartbeats as keys are read or removed, so a killed worker's step moves to
 * another within seconds; a retry decides again, or carries out the same report again.
 */
export const retentionStep = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 6 },
} as const satisfies ActivityOptions;

/**
 * The monitor's look at the backups (the catalog, the WAL archive, PostgreSQL's archiver):
 * seconds usually, minutes on a large catalog; it heartbeats while it reads. A look that fails
 * five times is reported (monitor.blind) and made again at the next interval.
 */
export const monitorLook = {
  // The database host's worker gone: the look fails (monitor.blind), it does not wait for ever.
  scheduleToStartTimeout: '10 minutes',
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', maximumAttempts: 5 },
} as const satisfies ActivityOptions;

/** Listing failed runs, delivering alerts (each channel with its own timeout): short, retried a little. */
export const monitorStep = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', maximumAttempts: 5 },
} as const satisfies ActivityOptions;
