// The host's workers during chaos: real `backupctl worker` processes, each in its own process
// group (a SIGKILL or SIGSTOP reaches pg_dump, gpg and zstd too). One serves at a time; a
// fault may replace it (kill) or set a second beside a frozen one.
import { startWorkerProcess, type WorkerProcess } from '../bench/workerProcess.js';

export interface WorkerPool {
  /** The worker serving now (started if none). */
  current(): Promise<WorkerProcess>;
  /** Starts a new worker and makes it current; the old one is the caller's to handle. */
  replace(): Promise<WorkerProcess>;
  /** Pids of every worker process still running (their groups may hold tool processes). */
  livePids(): number[];
  /**
   * Workers that exited on their own (not killed by a fault, not stopped): each a violation,
   * with its exit and the end of its stderr. Taken (and cleared) by the caller.
   */
  takeDeaths(): string[];
  /** Stops a worker that is no longer current. */
  retire(worker: WorkerProcess): Promise<void>;
  stopAll(): Promise<void>;
  /** A fault is about to end this worker (SIGKILL): not a death to report. */
  expectExit(worker: WorkerProcess): void;
}

export function workerPool(configFile: string, env: Record<string, string> = {}): WorkerPool {
  let serving: WorkerProcess | undefined;
  const all = new Set<WorkerProcess>();
  const expected = new Set<WorkerProcess>();
  let deaths: string[] = [];
  let closing = false;
  const start = async () => {
    const worker = await startWorkerProcess(configFile, env);
    all.add(worker);
    void worker.exited.then((how) => {
      all.delete(worker);
      if (!expected.has(worker)) {
        deaths.push(`worker ${worker.pid} died on its own (${how}): ${worker.stderrTail().split('\n').filter(Boolean).slice(-30).join(' | ').slice(-5000)}`);
        // What a service manager would do: another worker serves.
        if (serving === worker && !closing) void start().then((next) => (serving ??= next), () => undefined);
      }
      if (serving === worker) serving = undefined;
    });
    return worker;
  };
  const stopping = (worker: WorkerProcess) => expected.add(worker);
  return {
    async current() {
      serving ??= await start();
      return serving;
    },
    async replace() {
      serving = await start();
      return serving;
    },
    livePids: () => [...all].map((w) => w.pid),
    takeDeaths() {
      const taken = deaths;
      deaths = [];
      return taken;
    },
    expectExit: stopping,
    async retire(worker) {
      stopping(worker);
      worker.signal('SIGCONT');
      await worker.stop();
    },
    async stopAll() {
      closing = true;
      for (const worker of all) {
        stopping(worker);
        worker.signal('SIGCONT');
        await worker.stop();
      }
      serving = undefined;
    },
  };
}
