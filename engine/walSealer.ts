// Sealing WAL files (checksum, compress, encrypt): in worker threads (ThreadSealerPool,
// engine/walSealThread.cjs) for files up to a size, or in long-lived bash workers
// (engine/bashWorkers.ts) for any size: for each file a sealer checksums the plaintext,
// compresses it into gpg, which writes the sealed file itself, and checksums that file.
//
// The bash sealers' protocol, NUL-separated (a path may hold any byte but NUL):
//   request  <file>\0<out>\0          out: a file name of the caller's own, created here (noclobber)
//   answer   ok <plain sha256> <sealed sha256>\0
//            error <stage> <message>\0    stage: read, encrypt, compress, sealed
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { errnoOfMessage, errorText, permanent, transient, classifyFilesystemError } from './errors.js';
import { ErrorType } from '../common/types.js';
import type { CompressionSettings } from './compression.js';
import { BashWorkerPool, ONE_LINE_FUNCTION } from './bashWorkers.js';

const SEALER_SCRIPT = [
  'set -u',
  'umask 077',
  // The out file is created, never overwritten, nor a link planted there followed.
  'set -o noclobber',
  'n=$1; shift',
  'compress=("${@:1:n}"); encrypt=("${@:n+1}")',
  'reply() { printf "%s\\0" "$1"; }',
  ONE_LINE_FUNCTION,
  'while IFS= read -r -d "" file && IFS= read -r -d "" out; do',
  '  if ! plain=$(openssl dgst -sha256 -r -- "$file" 2>&1); then reply "error read $(oneLine "$plain")"; continue; fi',
  '  errs=$( { "${compress[@]}" -- "$file" | "${encrypt[@]}" >"$out"; echo "exit ${PIPESTATUS[*]}"; } 2>&1 )',
  '  last=${errs##*$\'\\n\'}; said=${errs%"$last"}',
  '  case $last in',
  '    "exit 0 0") ;;',
  '    "exit "*" 0") reply "error compress ${compress[0]} exited with ${last#exit } $(oneLine "$said")"; continue ;;',
  '    "exit "*) reply "error encrypt gpg exited with ${last##* } $(oneLine "$said")"; continue ;;',
  '    *) reply "error ended the sealing ended without its status (killed?) $(oneLine "$errs")"; continue ;;',
  '  esac',
  '  if ! sealed=$(openssl dgst -sha256 -r -- "$out" 2>&1); then reply "error sealed $(oneLine "$sealed")"; continue; fi',
  // A path holding a newline has openssl escape its line, a backslash first (as sha256sum does).
  '  plain=${plain#\\\\}; sealed=${sealed#\\\\}',
  '  reply "ok ${plain%% *} ${sealed%% *}"',
  'done',
].join('\n');

/**
 * How long one file's sealing may take before its sealer is taken for frozen and killed (the
 * file then fails, retryably). A 16 MiB segment takes about 0.1 s; the largest, 1 GiB, some seconds.
 */
export const SEAL_WITHIN_MS = 120_000;

export interface Sealed {
  /** The sha256 of the file given. */
  plainSha256: string;
  /** The sha256 of the sealed file written. */
  sha256: string;
}

/** What seals one file into another: a SealerPool, or anything that answers alike. */
export interface Sealing {
  seal(file: string, out: string): Promise<Sealed>;
}

/**
 * `size` sealers, each sealing one file at a time: a seal waits for one that is free. `compress`
 * reads the file named after its words (`-- <file>`) and writes to stdout; `encrypt` reads stdin
 * and writes stdout (encryptorCommand).
 */
export class SealerPool implements Sealing {
  private readonly pool: BashWorkerPool;

  constructor(size: number, compress: string[], encrypt: string[], answerWithinMs = SEAL_WITHIN_MS) {
    this.pool = new BashWorkerPool(size, 'WAL sealer', SEALER_SCRIPT, [String(compress.length), ...compress, ...encrypt], answerWithinMs);
  }

  async seal(file: string, out: string): Promise<Sealed> {
    let text: string;
    try {
      text = await this.pool.ask([file, out]);
    } catch (err) {
      throw transient(ErrorType.StorageUnreachable, `wal-push: sealing ${file}: ${errorText(err)}`);
    }
    return sealedOrThrow(text, file, out);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/**
 * The largest file sealed in a worker thread (read whole into memory there, whose buffers keep
 * the largest size they held); larger ones (a cluster built with a WAL segment size above
 * 64 MiB) stream through bash sealers.
 */
export const SEAL_IN_THREAD_UP_TO = 64 * 1024 * 1024;

/**
 * How long close() waits for the threads to see their killed gpg end and reap it: a thread ended
 * before that leaves a zombie nobody reaps until the process ends (2 s was too short on a loaded
 * machine: a CI run).
 */
const CLOSE_WAIT_MS = 15_000;

const SEAL_THREAD = fileURLToPath(new URL('./walSealThread.cjs', import.meta.url));

/**
 * `size` worker threads, each sealing one file at a time (engine/walSealThread.cjs): the file is
 * read whole, checksummed and compressed in the thread, and gpg, started for it, writes the
 * sealed file. For WAL segments (16 MiB by default): a file is held in memory whole, so larger
 * ones go to a SealerPool (startWalSealing). The answers are the SealerPool's.
 */
export class ThreadSealerPool implements Sealing {
  private readonly pool: Piscina;
  private readonly size: number;
  /** The seals under way, each with its gpg's pid (0: none running), which the thread keeps there. */
  private readonly underWay = new Map<Promise<unknown>, Int32Array>();
  /** Seals waiting for a free thread, here rather than in the pool's queue: see seal. */
  private readonly waiting: Array<() => void> = [];
  private busy = 0;
  private closing = false;

  constructor(
    size: number,
    private readonly compression: Pick<CompressionSettings, 'algorithm' | 'level'>,
    private readonly encrypt: string[],
    private readonly answerWithinMs = SEAL_WITHIN_MS,
    // Checked again in the thread, as it reads: a file may grow after its size chose the thread.
    private readonly largestFile = SEAL_IN_THREAD_UP_TO,
  ) {
    this.size = size;
    this.pool = new Piscina({ filename: SEAL_THREAD, minThreads: size, maxThreads: size, concurrentTasksPerWorker: 1, idleTimeout: 60_000 });
  }

  async seal(file: string, out: string): Promise<Sealed> {
    let text: string;
    const childPid = new Int32Array(new SharedArrayBuffer(4));
    // The time limit below counts from when a thread takes the file: in the pool's queue it ran
    // while the file waited there, and cut short seals that had hardly started.
    // A thread freed is handed to the first that waits, not to whichever seal is asked next.
    if (this.busy >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.busy++;
    try {
      if (this.closing) throw new Error('the sealing threads are closed');
      const task = { file, out, algorithm: this.compression.algorithm, level: this.compression.level, encrypt: this.encrypt, withinMs: this.answerWithinMs, largestFile: this.largestFile, childPid };
      // gpg has its watchdog in the thread; this one is for the thread itself (a read that never returns).
      const run = this.pool.run(task, { signal: AbortSignal.timeout(this.answerWithinMs + 10_000) }) as Promise<string>;
      this.underWay.set(run, childPid);
      try {
        text = await run;
      } finally {
        this.underWay.delete(run);
      }
    } catch (err) {
      // A thread ended under its gpg (the pool's time limit, or closed) leaves that gpg to nobody.
      killChild(childPid);
      throw transient(ErrorType.StorageUnreachable, `wal-push: sealing ${file}: ${errorText(err)}`);
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.busy--;
    }
    return sealedOrThrow(text, file, out);
  }

  /**
   * Ends the seals under way (retryably) and the threads. Their gpg are killed first, so that each
   * thread sees its gpg end and reaps it: a thread ended under a running gpg leaves it running (or
   * stopped) for ever, and one that ended would be left a zombie. A thread stuck elsewhere (a read
   * that never returns) is not waited for long.
   */
  async close(): Promise<void> {
    this.closing = true;
    for (const childPid of this.underWay.values()) killChild(childPid);
    await Promise.race([Promise.allSettled([...this.underWay.keys()]), new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]);
    await this.pool.destroy();
    for (const childPid of this.underWay.values()) killChild(childPid);
  }
}

function killChild(childPid: Int32Array): void {
  const pid = Atomics.load(childPid, 0);
  if (pid > 0) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Ended meanwhile.
    }
  }
}

function sealedOrThrow(text: string, file: string, out: string): Sealed {
  const ok = /^ok ([0-9a-f]{64}) ([0-9a-f]{64})$/.exec(text);
  if (ok) return { plainSha256: ok[1], sha256: ok[2] };
  const failed = /^error (\w+) ?([\s\S]*)$/.exec(text);
  if (!failed) throw transient(ErrorType.StorageUnreachable, `wal-push: sealing ${file}: the sealer answered ${JSON.stringify(text.slice(0, 200))}`);
  const [, stage, message] = failed;
  // What the kernel said (a full disk, a read-only one, no permission) says what it is.
  const code = errnoOfMessage(message);
  const where = stage === 'read' ? `wal-push: reading ${file}` : stage === 'compress' ? `wal-push: reading and compressing ${file}` : `wal-push: writing ${out}`;
  if (code) throw classifyFilesystemError(Object.assign(new Error(message), { code }), where);
  // A gpg killed by a signal (exit 128 + n), or a sealing that ended without its status, says
  // nothing of the key: retried.
  const signalled = /^gpg exited with (\d+)/.exec(message);
  if (stage === 'ended' || (signalled && Number(signalled[1]) > 128)) throw transient(ErrorType.StorageUnreachable, `wal-push: sealing ${file} was cut short: ${message}`);
  if (stage === 'encrypt') throw permanent(ErrorType.InvalidPublicKey, `gpg could not encrypt ${file}: ${message}`);
  throw transient(ErrorType.StorageUnreachable, `${where}: ${message}`);
}
