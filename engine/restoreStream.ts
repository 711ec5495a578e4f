// The way back: a stored object streamed to plaintext (fetch -> sha256 of the stored bytes ->
// gpg --decrypt -> decompress), for restores, verification and drills. It runs where the
// private key lives, never on a backup host.
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { Duplex, Transform, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { ErrorType, type Compression, type StoredObject } from '../common/types.js';
import { type EngineError, errorText, permanent } from './errors.js';
import { gpgKeyOf, LOCKED_KEY, lockedKeyFailure, unlockArgs } from './encryption.js';
import { spawnStreaming } from './exec.js';
import type { Repository } from './storage/repository.js';

export interface PlaintextStream {
  /** The plaintext, as pg_dump or pg_dumpall wrote it. */
  stream: Readable;
  /**
   * Settles when the whole object was read. Rejects when the stored bytes are not the ones the
   * manifest names (ChecksumMismatch), or gpg cannot decrypt them (DecryptionFailed): anything
   * already consumed from `stream` must then be thrown away, which is why restores go into a
   * new database.
   */
  done: Promise<{ storedBytes: number; plainBytes: number }>;
  /**
   * Ends every stage at once, the stored read included: for a consumer that gave up for a
   * reason of its own, where the copy's verdict no longer matters. `done` then rejects.
   */
  abort(reason: Error): void;
  /** Whether `err` is this stream's own verdict on the copy (what destroyed the stream). */
  isVerdict(err: unknown): boolean;
}

export interface OpenPlaintextInput {
  repository: Repository;
  object: Pick<StoredObject, 'key' | 'bytes' | 'sha256'>;
  compression: Compression;
  /** GNUPGHOME holding the private key. */
  privateKeyHome: string;
  /** encryption.passphraseFile: required, so no decrypting path can forget it. */
  passphraseFile: string | undefined;
  signal: AbortSignal;
  /** Told how many stored bytes were read, chunk by chunk: progress for the heartbeat. */
  onBytes?: (bytes: number) => void;
}

/**
 * Opens the stored object as plaintext. When any stage fails (the read, gpg, the
 * decompressor, or the consumer destroying the stream), every decoding stage ends at once:
 * gpg and zstd are killed, the plaintext stream errors, and the stored bytes are drained only
 * to learn whether the copy itself was at fault (its checksum). No stage is left blocked on a
 * full pipe, so `done` always settles.
 */
export async function openPlaintext(input: OpenPlaintextInput): Promise<PlaintextStream> {
  const { repository, object } = input;
  const where = `repository ${repository.name}: ${object.key}`;
  const stored = await repository.get(object.key, { signal: input.signal });
  const hash = createHash('sha256');
  let storedBytes = 0;
  stored.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    storedBytes += chunk.length;
    input.onBytes?.(chunk.length);
  });

  // Not --quiet: gpg's words on a locked key ("Bad passphrase") are printed only without it.
  const gpg = spawnStreaming('gpg', ['--homedir', input.privateKeyHome, '--batch', '--no-tty', ...unlockArgs(input), '--decrypt'], {
    stdin: 'pipe',
    signal: input.signal,
  });
  const decompressor =
    input.compression === 'gzip'
      ? { stream: createGunzip() as Duplex, process: undefined }
      : (() => {
          const zstd = spawnStreaming('zstd', ['-d', '-q', '-c'], { stdin: 'pipe', signal: input.signal });
          return { stream: Duplex.from({ writable: zstd.stdin!, readable: zstd.stdout! }), process: zstd };
        })();
  let plainBytes = 0;
  // Counted on the way through, not by listening on the output: a 'data' listener there would
  // start the flow before the caller is attached, and lose what it sent meanwhile.
  const plain = new Transform({
    highWaterMark: 1024 * 1024,
    transform(chunk: Buffer, _encoding, next) {
      plainBytes += chunk.length;
      next(null, chunk);
    },
  });
  [stored, gpg.stdin, gpg.stdout, decompressor.process?.stdin, decompressor.process?.stdout, decompressor.stream].forEach((s) => s?.on('error', () => undefined));
  stored.pipe(gpg.stdin!);
  gpg.stdout!.pipe(decompressor.stream).pipe(plain);
  const decompressed = finished(decompressor.stream, { readable: true, writable: false });

  // Drains what is left of the stored object, so its checksum is still computed and the read
  // does not wait for ever on a reader that is gone.
  const drainStored = () => {
    stored.unpipe(gpg.stdin!);
    stored.resume();
  };
  // The first failure of any decoding stage ends all of them; the stored read goes on only to
  // learn whether the copy was at fault.
  let stopped = false;
  // The stage that failed first: the others fail because they were stopped.
  let firstFailed: 'gpg' | 'decompressor' | undefined;
  const stageFailed = (stage: 'gpg' | 'decompressor') => (reason: unknown) => {
    if (!stopped) firstFailed = stage;
    stopDecoding(reason);
  };
  const stopDecoding = (reason: unknown) => {
    if (stopped) return;
    stopped = true;
    drainStored();
    gpg.kill('SIGKILL');
    decompressor.process?.kill('SIGKILL');
    decompressor.stream.destroy();
    // A child's promise settles only once its output pipe closed: nobody reads the killed
    // processes' output now, so close it (or zstd's promise waits for ever).
    for (const output of [gpg.stdout, decompressor.process?.stdout]) output?.destroy();
    if (!plain.readableEnded) plain.destroy(reason instanceof Error ? reason : new Error(String(reason)));
  };
  // gpg may stop reading early (a damaged packet) and exit: drain the rest.
  gpg.then(drainStored, stageFailed('gpg'));
  decompressor.process?.catch(stageFailed('decompressor'));
  decompressed.catch(stageFailed('decompressor'));
  const storedRead = new Promise<void>((resolve, reject) => {
    stored.once('end', resolve);
    stored.once('error', reject);
  });
  storedRead.catch(stopDecoding);
  // The verdict is `done`; a consumer that only drains the stream must not crash on it.
  plain.on('error', () => undefined);
  // A consumer that goes away early (a full disk, pg_restore dying) destroys `plain`.
  plain.on('close', () => {
    if (!plain.readableEnded) stopDecoding(new Error('the consumer stopped reading'));
  });
  let verdict: EngineError | undefined;
  const fail = (failure: EngineError) => {
    verdict = failure;
    plain.destroy(failure);
    return failure;
  };
  const done = (async () => {
    const results = await Promise.allSettled([storedRead, gpg, decompressor.process ?? decompressed]);
    // The stored bytes' checksum is the most telling verdict: check it first.
    const sha256 = hash.digest('hex');
    if (results[0].status === 'fulfilled' && (storedBytes !== object.bytes || sha256 !== object.sha256)) {
      throw fail(permanent(ErrorType.ChecksumMismatch, `${where}: stored bytes are ${storedBytes} with sha256 ${sha256}; the manifest says ${object.bytes} with ${object.sha256}`));
    }
    if (results[0].status === 'rejected') {
      throw fail(permanent(ErrorType.DumpUnreadable, `${where}: reading the stored copy failed: ${errorText(results[0].reason)}`));
    }
    if (results[1].status === 'rejected' && LOCKED_KEY.test(errorText(results[1].reason))) {
      // This host's key stays locked: no copy is at fault, and every copy would fail alike (the
      // decompressor, fed nothing, fails only after it).
      throw fail(lockedKeyFailure({ home: input.privateKeyHome, passphraseFile: input.passphraseFile }, gpgKeyOf(errorText(results[1].reason)), errorText(results[1].reason)));
    }
    // Which stage was at fault: one killed by us, or failing on a closed pipe, only followed.
    const followed = (r: PromiseSettledResult<unknown>) =>
      r.status === 'rejected' &&
      ((r.reason as { isTerminated?: boolean }).isTerminated === true ||
        (r.reason as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE' ||
        // Killed by SIGPIPE: it wrote to a reader that had gone (gpg after zstd gave up).
        (r.reason as { signal?: string }).signal === 'SIGPIPE' ||
        /broken pipe|write error|EPIPE|SIGPIPE/i.test(errorText(r.reason)));
    const decompressorFault = results[2].status === 'rejected' && !followed(results[2]) && (firstFailed === 'decompressor' || results[1].status === 'fulfilled' || followed(results[1]));
    if (decompressorFault && results[2].status === 'rejected') {
      throw fail(permanent(ErrorType.DumpUnreadable, `${where}: decrypted, but it does not decompress: ${errorText(results[2].reason)}`));
    }
    if (results[1].status === 'rejected') {
      throw fail(permanent(ErrorType.DecryptionFailed, `${where}: gpg cannot decrypt it: ${errorText(results[1].reason)}`));
    }
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw fail(permanent(ErrorType.DumpUnreadable, `${where}: ${errorText(failed.reason)}`));
    return { storedBytes, plainBytes };
  })();
  done.catch(() => undefined);
  const abort = (reason: unknown) => {
    stopDecoding(reason);
    stored.destroy(reason instanceof Error ? reason : new Error(String(reason)));
  };
  // Cancelled (or superseded: the heartbeat found the attempt gone): every stage ends now,
  // the read too, whatever the storage driver does with the signal.
  const onAbort = () => abort(input.signal.reason ?? new Error('cancelled'));
  if (input.signal.aborted) onAbort();
  else input.signal.addEventListener('abort', onAbort, { once: true });
  done.finally(() => input.signal.removeEventListener('abort', onAbort)).catch(() => undefined);
  return {
    stream: plain,
    done,
    abort,
    isVerdict: (err) => err !== undefined && err === verdict,
  };
}
