// Opening archived WAL files (checksum, decrypt, decompress, checksum) in long-lived bash workers
// (engine/bashWorkers.ts), the way back of engine/walSealer.ts. Recovery replays a segment in
// about a tenth of a second; opening one through node (the stored and the plain bytes flowing
// through it, two processes spawned from it) cost its one thread 150-220 ms, more than replay
// took, so the fetcher fell behind on a two-core machine.
//
// The protocol, NUL-separated:
//   request  <file>\0<out>\0<compression>\0   file: the stored (sealed) file, read once;
//                                             out: a name of the caller's own, created here
//                                             (noclobber); compression: zstd or gzip
//   answer   ok <stored sha256> <plain sha256>\0
//            failed <stored sha256> <gpg status> <decompressor status> <message>\0
//            error <stage> <message>\0         stage: read (the stored file), written (out)
// The caller compares both checksums with what the WAL entry records. The stored bytes'
// checksum is of the bytes gpg read (one read, through tee): a failure's verdict (a locked key
// asked for) is about this copy's bytes, never others written over it meanwhile.
import { ErrorType, type Compression } from '../common/types.js';
import { BashWorkerPool, ONE_LINE_FUNCTION } from './bashWorkers.js';
import { gpgKeyOf, LOCKED_KEY, lockedKeyFailure, unlockArgs } from './encryption.js';
import { classifyFilesystemError, errnoOfMessage, errorText, permanent, transient } from './errors.js';

const OPENER_SCRIPT = [
  'set -u',
  'umask 077',
  // The out file is created, never overwritten, nor a link planted there followed.
  'set -o noclobber',
  'decrypt=("$@")',
  'reply() { printf "%s\\0" "$1"; }',
  ONE_LINE_FUNCTION,
  // Where the stored bytes' checksum is written: a folder of this worker's own.
  'work=$(mktemp -d "${TMPDIR:-/tmp}/backupctl-opener.XXXXXX") || exit 1',
  'trap \'rm -rf -- "$work"\' EXIT',
  'sum=$work/stored.sha256',
  'while IFS= read -r -d "" file && IFS= read -r -d "" out && IFS= read -r -d "" compression; do',
  '  case $compression in zstd) decompress=(zstd -d -q -c) ;; gzip) decompress=(gzip -d -c) ;; *) reply "error read unknown compression $(oneLine "$compression")"; continue ;; esac',
  '  rm -f -- "$sum"',
  // One read of the stored file: its checksum is of the very bytes gpg decrypted (a file read
  // twice could be overwritten in between, and gpg's verdict on other bytes, such as a locked
  // key asked for, be taken for this copy's). tee -p goes on feeding the checksum when gpg stops
  // reading early.
  '  errs=$( { { tee -p -- >(exec openssl dgst -sha256 -r >"$sum" 2>&1) <"$file"; s=$?; wait $!; exit $s; } | "${decrypt[@]}" | "${decompress[@]}" >"$out"; echo "exit ${PIPESTATUS[*]}"; } 2>&1 )',
  '  last=${errs##*$\'\\n\'}; said=${errs%"$last"}',
  '  case $last in',
  '    "exit "[0-9]*" "[0-9]*" "[0-9]*) ;;',
  '    *) reply "error ended the opening ended without its status (killed?) $(oneLine "$errs")"; continue ;;',
  '  esac',
  '  read -r reader gpg decompressor <<<"${last#exit }"',
  '  if (( reader > 128 )); then reply "error ended reading the stored file was cut short (exit $reader) $(oneLine "$said")"; continue; fi',
  '  if (( reader != 0 )); then reply "error read $(oneLine "$said")"; continue; fi',
  '  stored=; { read -r stored _ <"$sum"; } 2>/dev/null',
  '  if [[ ! $stored =~ ^[0-9a-f]{64}$ ]]; then reply "error ended the stored file\'s checksum was not taken $(oneLine "$stored")"; continue; fi',
  '  if [[ $gpg != 0 || $decompressor != 0 ]]; then reply "failed $stored $gpg $decompressor $(oneLine "$said")"; continue; fi',
  '  if ! plain=$(openssl dgst -sha256 -r -- "$out" 2>&1); then reply "error written $(oneLine "$plain")"; continue; fi',
  '  plain=${plain#\\\\}',
  '  reply "ok $stored ${plain%% *}"',
  'done',
].join('\n');

/**
 * How long one file's opening may take before its opener is taken for frozen and killed (the
 * file then fails, retryably): less than restore_command waits for an answer (60 s), so the
 * fetcher's answer reaches it. A 16 MiB segment takes about 0.1 s; the largest, 1 GiB, some seconds.
 */
export const OPEN_WITHIN_MS = 30_000;

/** What a stored WAL file must prove to be, and the words that name it. */
export interface WalCopyExpectation {
  /** The stored (sealed) bytes' sha256. */
  sha256: string;
  /** The plaintext's sha256. */
  plainSha256: string;
  compression: Compression;
  /** "repository nas: wal/...": for messages. */
  where: string;
}

/** What opens one stored WAL file into a plain one: an OpenerPool, or anything that answers alike. */
export interface WalOpening {
  /**
   * Writes the plaintext of `file` to `out` (created; the caller removes it on failure).
   * Throws ChecksumMismatch, DecryptionFailed or DumpUnreadable when the copy is at fault (the
   * next copy may do), PassphraseWrong when this host's key stays locked, a filesystem error
   * (DiskFull, ...) when out cannot be written, transient StorageUnreachable when cut short.
   */
  open(file: string, out: string, expect: WalCopyExpectation): Promise<void>;
}

/** `size` openers, each opening one file at a time: an open waits for one that is free. */
export class OpenerPool implements WalOpening {
  private readonly pool: BashWorkerPool;

  constructor(
    size: number,
    private readonly key: { home: string; passphraseFile: string | undefined },
    answerWithinMs = OPEN_WITHIN_MS,
  ) {
    // Not --quiet: gpg's words on a locked key ("Bad passphrase") are printed only without it.
    this.pool = new BashWorkerPool(size, 'WAL opener', OPENER_SCRIPT, ['gpg', '--homedir', key.home, '--batch', '--no-tty', ...unlockArgs(key), '--decrypt'], answerWithinMs);
  }

  async open(file: string, out: string, expect: WalCopyExpectation): Promise<void> {
    let text: string;
    try {
      text = await this.pool.ask([file, out, expect.compression]);
    } catch (err) {
      throw transient(ErrorType.StorageUnreachable, `wal-fetch: opening ${expect.where}: ${errorText(err)}`);
    }
    openedOrThrow(text, out, expect, this.key);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

function openedOrThrow(text: string, out: string, expect: WalCopyExpectation, key: { home: string; passphraseFile: string | undefined }): void {
  const { where } = expect;
  const storedMismatch = (sha: string) => permanent(ErrorType.ChecksumMismatch, `${where}: stored bytes have sha256 ${sha}; the entry says ${expect.sha256}`);
  const ok = /^ok ([0-9a-f]{64}) ([0-9a-f]{64})$/.exec(text);
  if (ok) {
    // The stored bytes' checksum is the most telling verdict: checked first.
    if (ok[1] !== expect.sha256) throw storedMismatch(ok[1]);
    if (ok[2] !== expect.plainSha256) throw permanent(ErrorType.ChecksumMismatch, `wal-fetch: ${where} decrypts to other bytes than were archived (plaintext sha256); not used`);
    return;
  }
  const failed = /^failed ([0-9a-f]{64}) (\d+) (\d+) ?([\s\S]*)$/.exec(text);
  if (failed) {
    const [, stored, gpgText, decompressorText, message] = failed;
    if (stored !== expect.sha256) throw storedMismatch(stored);
    const [gpg, decompressor] = [Number(gpgText), Number(decompressorText)];
    // gpg ended by SIGPIPE, or saying its output pipe broke, only followed the decompressor
    // that stopped reading; any other signal, to either, was a kill: the opening was cut short.
    const gpgFollowed = gpg === 141 || (gpg !== 0 && /broken pipe|write error/i.test(message) && decompressor !== 0);
    if ((gpg > 128 && !gpgFollowed) || decompressor > 128) {
      throw transient(ErrorType.StorageUnreachable, `wal-fetch: opening ${where} was cut short (gpg exit ${gpg}, decompressor exit ${decompressor}): ${message}`);
    }
    if (gpg !== 0 && !gpgFollowed) {
      if (LOCKED_KEY.test(message)) throw lockedKeyFailure(key, gpgKeyOf(message), message);
      throw permanent(ErrorType.DecryptionFailed, `${where}: gpg cannot decrypt it (exit ${gpg}): ${message}`);
    }
    // The decompressor writes out: what the kernel said of that (a full disk) is this host's.
    const code = errnoOfMessage(message) ?? (/cannot overwrite existing file/.test(message) ? 'EEXIST' : undefined);
    if (code && code !== 'ENOENT') throw classifyFilesystemError(Object.assign(new Error(message), { code }), `wal-fetch: writing ${out}`);
    throw permanent(ErrorType.DumpUnreadable, `${where}: decrypted, but it does not decompress (exit ${decompressor}): ${message}`);
  }
  const error = /^error (\w+) ?([\s\S]*)$/.exec(text);
  if (!error) throw transient(ErrorType.StorageUnreachable, `wal-fetch: opening ${where}: the opener answered ${JSON.stringify(text.slice(0, 200))}`);
  const [, stage, message] = error;
  if (stage === 'written') {
    const code = errnoOfMessage(message);
    throw classifyFilesystemError(code ? Object.assign(new Error(message), { code }) : new Error(message), `wal-fetch: reading back ${out}`);
  }
  if (stage === 'read') throw permanent(ErrorType.DumpUnreadable, `${where}: reading the stored copy failed: ${message}`);
  throw transient(ErrorType.StorageUnreachable, `wal-fetch: opening ${where} was cut short: ${message}`);
}
