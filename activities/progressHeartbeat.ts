// Heartbeats that report progress, not liveness: a beat goes out only when bytes moved since
// the last one, or when a probe proves the work is advancing elsewhere (a server-side phase
// such as building indexes). A stage that stops moving bytes sends nothing, so the activity's
// heartbeat timeout ends it, instead of a timer keeping a stalled pipeline alive for a day.
import { Context } from '@temporalio/activity';

export interface ProgressHeartbeat {
  /** Counts bytes any stage moved. */
  moved(bytes: number): void;
  /** Probes whether work advances where no bytes are counted (undefined: bytes only). */
  setProbe(probe: (() => Promise<boolean>) | undefined): void;
  stop(): void;
}

export interface ProgressHeartbeatOptions {
  /** How often progress is checked; 1 s by default. */
  intervalMs?: number;
  probe?: () => Promise<boolean>;
}

export function progressHeartbeat(details: () => Record<string, unknown>, options: ProgressHeartbeatOptions = {}): ProgressHeartbeat {
  const ctx = Context.current();
  const started = Date.now();
  let bytes = 0;
  let reported = -1;
  let probe = options.probe;
  let probing = false;
  const beat = () => ctx.heartbeat({ ...details(), bytes, seconds: Math.round((Date.now() - started) / 1000) });
  const timer = setInterval(() => {
    if (bytes !== reported) {
      reported = bytes;
      beat();
      return;
    }
    if (!probe || probing) return;
    probing = true;
    probe()
      .then((advancing) => advancing && beat())
      // A probe that fails proves nothing: no beat.
      .catch(() => undefined)
      .finally(() => (probing = false));
  }, options.intervalMs ?? 1000);
  return {
    moved(n) {
      bytes += n;
    },
    setProbe(next) {
      probe = next;
    },
    stop() {
      clearInterval(timer);
    },
  };
}
