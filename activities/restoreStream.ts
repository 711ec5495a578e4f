// The way back: a stored object streamed to plaintext (fetch -> sha256 of the stored bytes ->
// gpg --decrypt -> decompress), for restores, verification and drills. It runs where the
// private key lives, never on a backup host.
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { Duplex, Transform, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { ApplicationFailure } from '@temporalio/common';
import { ErrorType, type Compression, type StoredObject } from '../workflows/types.js';
import { errorText, permanent } from './errors.js';
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
}

export interface OpenPlaintextInput {
  repository: Repository;
  object: Pick<StoredObject, 'key' | 'bytes' | 'sha256'>;
  compression: Compression;
  /** GNUPGHOME holding the private key. */
  privateKeyHome: string;
  signal: AbortSignal;
}

export async function openPlaintext(input: OpenPlaintextInput): Promise<PlaintextStream> {
  const { repository, object } = input;
  const where = `repository ${repository.name}: ${object.key}`;
  const stored = await repository.get(object.key, { signal: input.signal });
  const hash = createHash('sha256');
  let storedBytes = 0;
  stored.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    storedBytes += chunk.length;
  });

  const gpg = spawnStreaming('gpg', ['--homedir', input.privateKeyHome, '--batch', '--no-tty', '--quiet', '--decrypt'], {
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
  [stored, gpg.stdin, gpg.stdout, decompressor.stream].forEach((s) => s?.on('error', () => undefined));
  stored.pipe(gpg.stdin!);
  gpg.stdout!.pipe(decompressor.stream).pipe(plain);
  const decompressed = finished(decompressor.stream, { readable: true, writable: false });
  decompressed.catch(() => undefined);

  // gpg may stop reading early (a damaged packet); drain the rest so the stored bytes' checksum
  // is still computed, and the read does not wait for ever on a reader that is gone.
  gpg.finally(() => {
    stored.unpipe(gpg.stdin!);
    stored.resume();
  }).catch(() => undefined);
  const storedRead = new Promise<void>((resolve, reject) => {
    stored.once('end', resolve);
    stored.once('error', reject);
  });
  // The verdict is `done`; a consumer that only drains the stream must not crash on it.
  plain.on('error', () => undefined);
  // A consumer that goes away early (a full disk, pg_restore dying) destroys `plain`: drain
  // the decompressor then, or zstd and gpg block on a full pipe and `done` never settles.
  plain.on('close', () => {
    if (plain.readableEnded) return;
    decompressor.stream.unpipe(plain);
    decompressor.stream.resume();
  });
  const fail = (failure: ApplicationFailure) => {
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
    if (results[1].status === 'rejected') {
      throw fail(permanent(ErrorType.DecryptionFailed, `${where}: gpg cannot decrypt it: ${errorText(results[1].reason)}`));
    }
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw fail(permanent(ErrorType.DumpUnreadable, `${where}: ${errorText(failed.reason)}`));
    return { storedBytes, plainBytes };
  })();
  done.catch(() => undefined);
  return { stream: plain, done };
}
