// Named activity option presets, so every workflow times and retries alike.
import type { ActivityOptions } from '@temporalio/workflow';

/** Reads and checks that finish in seconds: fail fast when something stays down. */
export const quickMetadata = {
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5 },
} as const satisfies ActivityOptions;

/**
 * Streams that may run for hours. The short heartbeat timeout is what lets another worker
 * take over within seconds when this one dies.
 */
export const longTransfer = {
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 8 },
} as const satisfies ActivityOptions;

/**
 * Restores and inspections: as long as a transfer, with fewer attempts, since a retry starts
 * the whole restore again.
 */
export const longRestore = {
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 4 },
} as const satisfies ActivityOptions;

/** Starting the application again must not give up after a blip: retried for about an hour. */
export const serviceControl = {
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 60 },
} as const satisfies ActivityOptions;
