// Bounded activities (the quick reads and checks, service control: minutes at most) send no
// progress of their own. Without a heartbeat, a worker that dies in one of them is noticed only
// at its start-to-close timeout (two minutes and more: a chaos run saw a base backup wait 150 s
// after a SIGKILL). So the worker heartbeats for them while they run: a beat says only "this
// worker lives", which is all a bounded activity needs to prove, and it is what carries a
// cancellation to them. Long activities (hours) are left alone: they heartbeat on progress
// only (engine/progressWatch.ts, activities/progressHeartbeat.ts), so a stall still times out.
import type { Context } from '@temporalio/activity';
import type { ActivityInterceptors } from '@temporalio/worker';

/** Activities with a start-to-close timeout up to this are bounded ones. */
export const BOUNDED_ACTIVITY_MS = 10 * 60_000;

export function livenessHeartbeats(ctx: Context): ActivityInterceptors {
  return {
    inbound: {
      async execute(input, next) {
        const { heartbeatTimeoutMs, startToCloseTimeoutMs } = ctx.info;
        if (!heartbeatTimeoutMs || !startToCloseTimeoutMs || startToCloseTimeoutMs > BOUNDED_ACTIVITY_MS) return next(input);
        const timer = setInterval(() => ctx.heartbeat(), Math.max(250, Math.floor(heartbeatTimeoutMs / 3)));
        try {
          return await next(input);
        } finally {
          clearInterval(timer);
        }
      },
    },
  };
}
