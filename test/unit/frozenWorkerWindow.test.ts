// Found by the chaos suite (verification + a frozen worker, seed 20261128): for about a minute
// after a freeze the Temporal server hands the frozen worker's open long polls one attempt
// after another, each lost at its heartbeat timeout; quickMetadata's 5 attempts and
// longRestore's 4 ran out inside that window and the verification failed with an untyped
// "Activity task timed out". Every preset must keep an attempt that starts after the window.
import type { ActivityOptions } from '@temporalio/workflow';
import { msToNumber } from '@temporalio/common/lib/time.js';
import * as presets from '../../workflows/activityOptions.js';

const { BOUNDED_HEARTBEAT_TIMEOUT, FROZEN_WORKER_WINDOW_MS } = presets;

/**
 * When each attempt starts if every one is lost to a frozen worker: it ends at its heartbeat
 * timeout (the bounded one that hostActivities gives a preset without its own), and the next
 * starts after the retry policy's backoff.
 */
function attemptStartsWhenAllLost(options: ActivityOptions): number[] {
  const retry = options.retry ?? {};
  const heartbeat = msToNumber(options.heartbeatTimeout ?? BOUNDED_HEARTBEAT_TIMEOUT);
  const initial = msToNumber(retry.initialInterval ?? '1 second');
  const coefficient = retry.backoffCoefficient ?? 2;
  const maximum = retry.maximumInterval === undefined ? initial * 100 : msToNumber(retry.maximumInterval);
  const attempts = retry.maximumAttempts ?? Infinity;
  const starts: number[] = [];
  let at = 0;
  for (let n = 1; n <= Math.min(attempts, 1000); n++) {
    starts.push(at);
    at += heartbeat + Math.min(initial * coefficient ** (n - 1), maximum);
  }
  return starts;
}

const named: [string, ActivityOptions][] = Object.entries(presets as Record<string, unknown>).flatMap(([name, value]) =>
  typeof value === 'object' && value !== null && 'retry' in value ? [[name, value as ActivityOptions]] : [],
);

test('every retry preset is checked', () => {
  expect(named.map(([name]) => name).sort()).toEqual(['longRecovery', 'longRestore', 'longTransfer', 'monitorLook', 'monitorStep', 'quickMetadata', 'retentionStep', 'serviceControl', 'sweepStep', 'walShippingPass']);
});

test.each(named)('%s keeps an attempt that starts after a frozen worker stops taking attempts', (_name, options) => {
  const starts = attemptStartsWhenAllLost(options);
  expect(starts[starts.length - 1]).toBeGreaterThan(FROZEN_WORKER_WINDOW_MS);
});

test('the arithmetic: quickMetadata before this change (5 attempts) ran out inside the window', () => {
  const starts = attemptStartsWhenAllLost({ ...presets.quickMetadata, retry: { ...presets.quickMetadata.retry, maximumAttempts: 5 } });
  expect(starts).toEqual([0, 11_000, 23_000, 37_000, 55_000]);
  expect(starts[starts.length - 1]).toBeLessThan(FROZEN_WORKER_WINDOW_MS);
});
