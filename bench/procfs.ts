// What the processes cost, from /proc: resident memory (of one process and of its whole tree)
// and CPU time per program, sampled every ~100 ms while a contender runs. Linux only.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

const PAGE = 4096;
/** The label of CPU used by processes the benchmark did not start. */
export const OTHER = 'other processes (not the benchmark)';
const TICK_S = 0.01; // USER_HZ is 100 on Linux

interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  /** Field 22: distinguishes a reused pid. */
  start: string;
  /** utime + stime of all threads, in ticks. */
  ticks: number;
  rssBytes: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // comm is in parentheses and may hold spaces or parentheses itself.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const comm = text.slice(open + 1, close);
  const f = text.slice(close + 2).split(' '); // f[0] is field 3 (state)
  return { pid, comm, ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), start: f[19], rssBytes: Number(f[21]) * PAGE };
}

function allProcesses(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const stat = readStat(Number(name));
    if (stat) out.push(stat);
  }
  return out;
}

/** The system-wide busy and total CPU ticks (first line of /proc/stat). */
function cpuTotals(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'latin1').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = fields[3] + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/** A process's peak resident set (VmHWM) in bytes. */
export function peakRss(pid: number): number | undefined {
  return statusField(pid, 'VmHWM');
}

/** A process's current resident set (VmRSS) in bytes. */
export function currentRss(pid: number): number | undefined {
  return statusField(pid, 'VmRSS');
}

function statusField(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Waits until processes outside the benchmark's own trees use less than `maxCores` for one
 * second (another job on a shared machine would distort every number), at most maxWaitMs.
 * Returns the CPU cores they used in the last second measured.
 */
export async function waitForQuiet(ours: number[], maxCores = 0.15, maxWaitMs = 180_000): Promise<{ otherCores: number; waitedMs: number }> {
  const start = performance.now();
  for (;;) {
    const sampler = new Sampler(undefined, new Map(), 100, ours);
    await new Promise((r) => setTimeout(r, 1000));
    const usage = sampler.stop();
    const otherCores = (usage.programs[OTHER]?.cpuSeconds ?? 0) / usage.wallSeconds;
    const waitedMs = performance.now() - start;
    if (otherCores < maxCores || waitedMs > maxWaitMs) return { otherCores, waitedMs };
  }
}

/** Resets VmHWM to the current RSS (writing 5 to clear_refs), so a later peak covers one run only. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface ProgramUsage {
  /** CPU seconds (user + system) used during the sample window. */
  cpuSeconds: number;
  /** Seconds from the window's start when a process of this program was first and last seen. */
  firstSeen: number;
  lastSeen: number;
  /** Largest single-process RSS seen. */
  peakRssBytes: number;
}

/** CPU use within a time window (a workflow activity, say). */
export interface WindowUsage {
  seconds: number;
  busyCores: number;
  /** CPU seconds by program within the window. */
  cpuSeconds: Record<string, number>;
}

interface TimelinePoint {
  /** Epoch milliseconds (comparable with Temporal's event times on the same machine). */
  at: number;
  busy: number;
  total: number;
  byComm: Map<string, number>;
}

export interface SampleResult {
  wallSeconds: number;
  /** Peak of the summed RSS of the root and all its descendants. */
  treePeakRssBytes: number;
  /** Peak RSS of the root process as sampled (VmHWM is exact; this is a cross-check). */
  rootPeakRssBytes: number;
  /** System-wide CPU busy over the window, in cores (2.0 = both cores of a 2-core machine). */
  busyCores: number;
  /** CPU by program (comm), all processes on the machine; labelled pids get their label. */
  programs: Record<string, ProgramUsage>;
  samples: number;
  /** CPU use between two epoch-millisecond instants, to the nearest samples. */
  window(from: number, to: number): WindowUsage;
}

/**
 * Samples every process on the machine: cumulative CPU per pid (the last value seen before a
 * process exits counts, so a process living less than one period is missed), and the RSS of
 * the tree under `root`.
 */
export class Sampler {
  private readonly timer: NodeJS.Timeout;
  private readonly t0 = performance.now();
  private readonly baseline = new Map<string, number>();
  private readonly last = new Map<string, { comm: string; ticks: number; first: number; last: number; peak: number }>();
  private readonly cpu0 = cpuTotals();
  private treePeak = 0;
  private rootPeak = 0;
  private samples = 0;
  private readonly timeline: TimelinePoint[] = [];

  /**
   * root: the contender's process (tree memory); labels: names for some pids; ours: the roots of
   * every process the benchmark started (itself, the PostgreSQL postmaster): anything outside
   * those trees counts as 'other processes', load the benchmark did not cause.
   */
  constructor(
    private root: number | undefined,
    private readonly labels: Map<number, string> = new Map(),
    periodMs = 100,
    private readonly ours: number[] = [],
  ) {
    for (const p of allProcesses()) this.baseline.set(`${p.pid}:${p.start}`, p.ticks);
    this.sample();
    this.timer = setInterval(() => this.sample(), periodMs);
  }

  /** Follow another process tree from now on (a procedure of several commands). */
  setRoot(pid: number | undefined): void {
    this.root = pid;
    this.sample();
  }

  private sample(): void {
    const now = (performance.now() - this.t0) / 1000;
    const procs = allProcesses();
    this.samples++;
    const children = new Map<number, ProcStat[]>();
    for (const p of procs) {
      const list = children.get(p.ppid);
      if (list) list.push(p);
      else children.set(p.ppid, [p]);
    }
    const ours = new Set<number>();
    if (this.ours.length) {
      const stack = [...this.ours];
      while (stack.length) {
        const pid = stack.pop()!;
        if (ours.has(pid)) continue;
        ours.add(pid);
        for (const c of children.get(pid) ?? []) stack.push(c.pid);
      }
    }
    for (const p of procs) {
      const key = `${p.pid}:${p.start}`;
      const seen = this.last.get(key);
      // pgBackRest's asynchronous archive-get/-push process detaches itself (its parent is init):
      // nothing else on the machine runs pgbackrest, so it is the benchmark's, not other load.
      const comm = this.labels.get(p.pid) ?? (this.ours.length && !ours.has(p.pid) && p.comm !== 'pgbackrest' ? OTHER : p.comm);
      if (seen) {
        seen.ticks = p.ticks;
        seen.last = now;
        seen.peak = Math.max(seen.peak, p.rssBytes);
      } else {
        this.last.set(key, { comm, ticks: p.ticks, first: now, last: now, peak: p.rssBytes });
      }
    }
    const byComm = new Map<string, number>();
    for (const [key, p] of this.last) {
      const ticks = p.ticks - (this.baseline.get(key) ?? 0);
      if (ticks > 0) byComm.set(p.comm, (byComm.get(p.comm) ?? 0) + ticks);
    }
    this.timeline.push({ at: Date.now(), ...cpuTotals(), byComm });
    if (this.root !== undefined) {
      const root = procs.find((p) => p.pid === this.root);
      if (root) {
        this.rootPeak = Math.max(this.rootPeak, root.rssBytes);
        let sum = 0;
        const stack = [root];
        while (stack.length) {
          const p = stack.pop()!;
          sum += p.rssBytes;
          stack.push(...(children.get(p.pid) ?? []));
        }
        this.treePeak = Math.max(this.treePeak, sum);
      }
    }
  }

  stop(): SampleResult {
    this.sample();
    clearInterval(this.timer);
    const wallSeconds = (performance.now() - this.t0) / 1000;
    const cpu1 = cpuTotals();
    const programs: Record<string, ProgramUsage> = {};
    for (const [key, p] of this.last) {
      const ticks = p.ticks - (this.baseline.get(key) ?? 0);
      if (ticks <= 0 && this.baseline.has(key)) continue;
      const usage = (programs[p.comm] ??= { cpuSeconds: 0, firstSeen: p.first, lastSeen: p.last, peakRssBytes: 0 });
      usage.cpuSeconds += ticks * TICK_S;
      usage.firstSeen = Math.min(usage.firstSeen, p.first);
      usage.lastSeen = Math.max(usage.lastSeen, p.last);
      usage.peakRssBytes = Math.max(usage.peakRssBytes, p.peak);
    }
    const busyCores = cpu1.total > this.cpu0.total ? ((cpu1.busy - this.cpu0.busy) / (cpu1.total - this.cpu0.total)) * cpuCount() : 0;
    const timeline = this.timeline;
    const nearest = (at: number) => timeline.reduce((best, p) => (Math.abs(p.at - at) < Math.abs(best.at - at) ? p : best), timeline[0]);
    const window = (from: number, to: number): WindowUsage => {
      const a = nearest(from);
      const b = nearest(to);
      const cpuSeconds: Record<string, number> = {};
      for (const [comm, ticks] of b.byComm) {
        const d = ticks - (a.byComm.get(comm) ?? 0);
        if (d > 0) cpuSeconds[comm] = d * TICK_S;
      }
      const busyCores = b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * cpuCount() : 0;
      return { seconds: (b.at - a.at) / 1000, busyCores, cpuSeconds };
    };
    return { wallSeconds, treePeakRssBytes: this.treePeak, rootPeakRssBytes: this.rootPeak, busyCores, programs, samples: this.samples, window };
  }
}

function cpuCount(): number {
  return readFileSync('/proc/stat', 'latin1').split('\n').filter((l) => /^cpu\d+ /.test(l)).length || 1;
}
