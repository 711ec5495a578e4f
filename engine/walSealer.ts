// Sealing WAL files (checksum, compress, encrypt) in long-lived bash processes, one request at a
// time each. The pusher stores several segments a second on what may be a two-core machine, and
// its throughput is CPU: each spawn from node (a 150 MiB process) cost its one thread 5-20 ms,
// and the sealed bytes flowing through it another 20-40 ms per segment (its writes and its
// garbage collection). A sealer is started once; for each file it checksums the plaintext,
// compresses it into gpg, which writes the sealed file itself, and checksums that file. Node only
// asks and reads the answer.
//
// The protocol, NUL-separated (a path may hold any byte but NUL):
//   request  <file>\0<out>\0          out: a file name of the caller's own, created here (noclobber)
//   answer   ok <plain sha256> <sealed sha256>\0
//            error <stage> <message>\0    stage: read, encrypt, compress, sealed
import { errnoOfMessage, errorText, permanent, transient, classifyFilesystemError } from './errors.js';
import { ErrorType } from '../common/types.js';
import { spawnStreaming, type StreamingProcess } from './exec.js';

const SEALER_SCRIPT = [
  'set -u',
  'umask 077',
  // The out file is created, never overwritten, nor a link planted there followed.
  'set -o noclobber',
  'n=$1; shift',
  'compress=("${@:1:n}"); encrypt=("${@:n+1}")',
  'reply() { printf "%s\\0" "$1"; }',
  'oneLine() { local t=${1//$\'\\n\'/ | }; printf "%s" "${t:0:2000}"; }',
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

/** One long-lived sealer process; started on first use, and again if it died. */
class Sealer {
  private proc?: StreamingProcess;
  private answer?: { resolve: (text: string) => void; reject: (err: Error) => void };
  private pending = '';

  constructor(private readonly args: string[]) {}

  async seal(file: string, out: string): Promise<string> {
    const proc = this.started();
    const answered = new Promise<string>((resolve, reject) => {
      this.answer = { resolve, reject };
    });
    proc.stdin!.write(`${file}\0${out}\0`);
    return answered;
  }

  private started(): StreamingProcess {
    if (this.proc) return this.proc;
    const proc = spawnStreaming('bash', ['-c', SEALER_SCRIPT, 'sealer', ...this.args], { stdin: 'pipe' });
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
    // A write to a sealer that died fails here, and its end below says why.
    proc.stdin!.on('error', () => undefined);
    const ended = (err: unknown) => {
      if (this.proc === proc) this.proc = undefined;
      this.pending = '';
      const answer = this.answer;
      this.answer = undefined;
      answer?.reject(new Error(`the WAL sealer (bash) ended: ${errorText(err)}`));
    };
    proc.then(() => ended(new Error('it exited')), ended);
    return proc;
  }

  async close(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    proc.stdin!.end();
    await proc.catch(() => undefined);
  }
}

/**
 * `size` sealers, each sealing one file at a time: a seal waits for one that is free. `compress`
 * reads the file named after its words (`-- <file>`) and writes to stdout; `encrypt` reads stdin
 * and writes stdout (encryptorCommand).
 */
export class SealerPool implements Sealing {
  private readonly idle: Sealer[];
  private readonly all: Sealer[];
  private readonly waiting: Array<(sealer: Sealer) => void> = [];

  constructor(size: number, compress: string[], encrypt: string[]) {
    this.all = Array.from({ length: Math.max(1, size) }, () => new Sealer([String(compress.length), ...compress, ...encrypt]));
    this.idle = [...this.all];
  }

  async seal(file: string, out: string): Promise<Sealed> {
    const sealer = this.idle.pop() ?? (await new Promise<Sealer>((resolve) => this.waiting.push(resolve)));
    let text: string;
    try {
      text = await sealer.seal(file, out);
    } catch (err) {
      throw transient(ErrorType.StorageUnreachable, `wal-push: sealing ${file}: ${errorText(err)}`);
    } finally {
      const next = this.waiting.shift();
      if (next) next(sealer);
      else this.idle.push(sealer);
    }
    return sealedOrThrow(text, file, out);
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((s) => s.close()));
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
