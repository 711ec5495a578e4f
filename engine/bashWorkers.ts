// Long-lived bash processes that answer NUL-separated requests, one at a time each: the WAL
// sealers (engine/walSealer.ts) and openers (engine/walOpener.ts). Their work is per file and
// CPU-bound, several files a second: each spawn from node (a 150 MiB process) cost its one
// thread 5-20 ms, and the file's bytes flowing through it another 20-40 ms (its writes and its
// garbage collection). A worker is started once; node only asks and reads the answer.
//
// The protocol: a request is its fields, each ended by NUL (a path may hold any byte but NUL);
// the answer is one text ended by NUL.
import { spawnStreaming, type StreamingProcess } from './exec.js';

/** One long-lived bash process; started on first use, and again if it died. */
class BashWorker {
  private proc?: StreamingProcess;
  private answer?: { resolve: (text: string) => void; reject: (err: Error) => void };
  private pending = '';
  private closed = false;
  /** Set when the watchdog killed it: its end is then told as what it was. */
  private frozen = false;

  constructor(
    private readonly name: string,
    private readonly script: string,
    private readonly args: string[],
    private readonly answerWithinMs: number,
  ) {}

  async ask(fields: string[]): Promise<string> {
    // Closed: a request that comes after (from a caller's other half still under way) would start
    // a process nobody ends.
    if (this.closed) throw new Error(`the ${this.name} was closed`);
    const proc = this.started();
    const answered = new Promise<string>((resolve, reject) => {
      this.answer = { resolve, reject };
    });
    // A request it does not answer in time (a stage stopped by SIGSTOP, a frozen disk, an input
    // that never ends): the worker and every process it started are killed (its own process
    // group), so the caller fails retryably instead of waiting for ever.
    const watchdog = setTimeout(() => {
      this.frozen = true;
      try {
        process.kill(-proc.pid!, 'SIGKILL');
      } catch {
        proc.kill('SIGKILL');
      }
    }, this.answerWithinMs);
    proc.stdin!.write(fields.map((f) => `${f}\0`).join(''));
    return answered.finally(() => clearTimeout(watchdog));
  }

  private started(): StreamingProcess {
    if (this.proc) return this.proc;
    const proc = spawnStreaming('bash', ['-c', this.script, this.name, ...this.args], { stdin: 'pipe', ownProcessGroup: true });
    this.frozen = false;
    this.proc = proc;
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      this.pending += chunk;
      let end: number;
      while ((end = this.pending.indexOf('\0')) >= 0) {
        const text = this.pending.slice(0, end);
        this.pending = this.pending.slice(end + 1);
        const answer = this.answer;
        this.answer = undefined;
        answer?.resolve(text);
      }
    });
    // A write to a worker that died fails here, and its end below says why.
    proc.stdin!.on('error', () => undefined);
    const ended = (how: { signal?: string; exitCode?: number }) => {
      if (this.proc === proc) this.proc = undefined;
      this.pending = '';
      const answer = this.answer;
      this.answer = undefined;
      // How it ended, not execa's whole command line (the script).
      const end = this.frozen ? `gave no answer within ${this.answerWithinMs / 1000} s (a stage stopped or stuck), and was killed with every process it started` : `ended, ${how.signal ? `killed by ${how.signal}` : `exit ${how.exitCode}`}`;
      answer?.reject(new Error(`the ${this.name} (bash) ${end}`));
    };
    // On its exit, not when its pipes close: a child it left (a checksum waiting on its input)
    // may hold them open long after.
    proc.once('exit', (exitCode, signal) => ended(signal ? { signal } : { exitCode: exitCode ?? undefined }));
    proc.catch(() => undefined);
    return proc;
  }

  async close(): Promise<void> {
    this.closed = true;
    const proc = this.proc;
    if (!proc) return;
    proc.stdin!.end();
    await proc.catch(() => undefined);
  }
}

/** `size` workers running one script, each answering one request at a time: a request waits for one that is free. */
export class BashWorkerPool {
  private readonly idle: BashWorker[];
  private readonly all: BashWorker[];
  private readonly waiting: Array<(worker: BashWorker) => void> = [];

  /** answerWithinMs: how long a request may take before its worker is taken for frozen and killed. */
  constructor(size: number, name: string, script: string, args: string[], answerWithinMs: number) {
    this.all = Array.from({ length: Math.max(1, size) }, () => new BashWorker(name, script, args, answerWithinMs));
    this.idle = [...this.all];
  }

  /** The answer; rejects when the worker ended (killed, or its bash failed) before answering. */
  async ask(fields: string[]): Promise<string> {
    const worker = this.idle.pop() ?? (await new Promise<BashWorker>((resolve) => this.waiting.push(resolve)));
    try {
      return await worker.ask(fields);
    } finally {
      const next = this.waiting.shift();
      if (next) next(worker);
      else this.idle.push(worker);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((w) => w.close()));
  }
}

/** A message as one line of an answer (bash, in a worker's script). */
export const ONE_LINE_FUNCTION = 'oneLine() { local t=${1//$\'\\n\'/ | }; printf "%s" "${t:0:2000}"; }';
