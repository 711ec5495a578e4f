// Heartbeats that vouch for progress (DESIGN.md, safety rule 10): a tick beats only while the
// watched counters have moved within the stall timeout; once they stand still that long the
// beats stop (so the server times the attempt out even if this process cannot act) and the
// caller's onStall ends the work. Short pauses are normal (zstd at level 19 reads nothing
// while it compresses a job), so the timeout is minutes, not the heartbeat timeout's seconds.

export const DEFAULT_STALL_TIMEOUT_MS = 120_000;

export interface ProgressWatch {
  /** The counters that prove progress (bytes read, bytes stored...). */
  counters: () => readonly number[];
  /** A heartbeat, called every second while progress is recent. */
  beat?: () => void;
  /** Called once, when nothing moved for stallTimeoutMs. */
  onStall: (stillMs: number) => void;
  stallTimeoutMs?: number;
}

/** Starts watching; returns the function that stops it. */
export function watchProgress(watch: ProgressWatch): () => void {
  const stallTimeoutMs = watch.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  let seen = watch.counters().join(',');
  let movedAt = Date.now();
  let stalled = false;
  const timer = setInterval(() => {
    const now = watch.counters().join(',');
    if (now !== seen) {
      seen = now;
      movedAt = Date.now();
    }
    const still = Date.now() - movedAt;
    if (still < stallTimeoutMs) watch.beat?.();
    else if (!stalled) {
      stalled = true;
      watch.onStall(still);
    }
  }, Math.min(1000, stallTimeoutMs));
  return () => clearInterval(timer);
}
