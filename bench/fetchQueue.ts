// Where a recovery's time goes, seen from outside both contenders: how far the asynchronous
// fetcher is ahead of replay (the segments waiting in its queue folder, sampled), how long
// replay waited for a segment it asked for (ours: a <name>.want file until <name> is there),
// and the pace of replay itself (the recovered server's "restored log file" lines).
import { existsSync, readdirSync, readFileSync } from 'node:fs';

const SEGMENT = /^[0-9A-F]{24}$/;

export interface QueueStats {
  /** Samples of the segments waiting in the queue folder (fetched, not yet copied by restore_command). */
  depthSamples: number;
  depthMedian: number;
  depthMax: number;
  /** Share of samples with no segment waiting: replay ahead of (or level with) the fetcher. */
  emptyShare: number;
  /** Ours only: segments asked for (a .want seen) before they were there, and the seconds replay waited for them. */
  waitedSegments?: number;
  waitedSeconds?: number;
  waitedMaxSeconds?: number;
}

export interface ReplayPace {
  /** Segments the server logged as restored from the archive. */
  segments: number;
  /** From the first restored segment to the last, seconds. */
  spanSeconds: number;
  /** The largest gap between two restored segments, seconds. */
  maxGapSeconds: number;
  /** Median gap, seconds. */
  medianGapSeconds: number;
}

/**
 * Samples the queue folder `find` names (it may appear only once the recovery started) every
 * `everyMs` until stopped. `wants`: the folder holds ours' <name>.want protocol files.
 */
export function watchQueue(find: () => string | undefined, wants: boolean, everyMs = 100): { stop(): QueueStats | undefined } {
  const depths: number[] = [];
  const asked = new Map<string, number>();
  const waited = new Map<string, number>();
  const look = () => {
    const dir = find();
    if (!dir || !existsSync(dir)) return;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    const now = performance.now();
    const present = new Set(names.filter((n) => SEGMENT.test(n)));
    depths.push(present.size);
    if (!wants) return;
    for (const n of names) {
      if (!n.endsWith('.want')) continue;
      const name = n.slice(0, -5);
      if (!SEGMENT.test(name) || present.has(name) || asked.has(name)) continue;
      asked.set(name, now);
    }
    for (const [name, since] of asked) {
      if (!waited.has(name) && (present.has(name) || !names.includes(`${name}.want`))) waited.set(name, (now - since) / 1000);
    }
  };
  const timer = setInterval(look, everyMs);
  return {
    stop() {
      clearInterval(timer);
      look();
      if (depths.length === 0) return undefined;
      const sorted = [...depths].sort((a, b) => a - b);
      const waits = [...waited.values()];
      return {
        depthSamples: depths.length,
        depthMedian: sorted[Math.floor(sorted.length / 2)],
        depthMax: sorted.at(-1)!,
        emptyShare: depths.filter((d) => d === 0).length / depths.length,
        ...(wants ? { waitedSegments: waits.length, waitedSeconds: waits.reduce((a, b) => a + b, 0), waitedMaxSeconds: waits.length ? Math.max(...waits) : 0 } : {}),
      };
    },
  };
}

/** The pace of replay from a server log (log_line_prefix starting with %m, PostgreSQL's default). */
export function replayPace(serverLog: string): ReplayPace | undefined {
  if (!existsSync(serverLog)) return undefined;
  const times: number[] = [];
  for (const line of readFileSync(serverLog, 'utf8').split('\n')) {
    if (!/restored log file "[0-9A-F]{24}" from archive/.test(line)) continue;
    const m = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (UTC|[+-]\d\d)/.exec(line);
    if (!m) continue;
    const zone = m[2] === 'UTC' ? 'Z' : `${m[2]}:00`;
    times.push(Date.parse(`${m[1].replace(' ', 'T')}${zone}`));
  }
  if (times.length === 0) return undefined;
  const gaps = times.slice(1).map((t, i) => (t - times[i]) / 1000).sort((a, b) => a - b);
  return {
    segments: times.length,
    spanSeconds: (times.at(-1)! - times[0]) / 1000,
    maxGapSeconds: gaps.at(-1) ?? 0,
    medianGapSeconds: gaps.length ? gaps[Math.floor(gaps.length / 2)] : 0,
  };
}
