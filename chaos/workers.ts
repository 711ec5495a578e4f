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
  /** Stops a worker that is no longer current. */
  retire(worker: WorkerProcess): Promise<void>;
  stopAll(): Promise<void>;
}

export function workerPool(configFile: string): WorkerPool {
  let serving: WorkerProcess | undefined;
  const all = new Set<WorkerProcess>();
  const start = async () => {
    const worker = await startWorkerProcess(configFile);
    all.add(worker);
    void worker.exited.then(() => {
      all.delete(worker);
      if (serving === worker) serving = undefined;
    });
    return worker;
  };
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
    async retire(worker) {
      worker.signal('SIGCONT');
      await worker.stop();
    },
    async stopAll() {
      for (const worker of all) {
        worker.signal('SIGCONT');
        await worker.stop();
      }
      serving = undefined;
    },
  };
}
