// Reads one object of a backup from the first repository whose copy is whole, in the
// configured order. A missing, short or corrupt copy is skipped and reported, never used:
// the consumer's output counts only once the stored bytes' sha256 matched the manifest.
import type { Readable } from 'node:stream';
import { ErrorType, type Compression, type StoredObject } from '../common/types.js';
import type { SkippedCopy } from '../common/restoreTypes.js';
import { type EngineError, errorText, isEngineError, permanent, transient } from './errors.js';
import { openPlaintext } from './restoreStream.js';
import type { Repository } from './storage/repository.js';

export interface CopyReadInput<T> {
  object: StoredObject;
  repositories: Repository[];
  compression: Compression;
  privateKeyHome: string;
  /** encryption.passphraseFile: required, so no decrypting path can forget it. */
  passphraseFile: string | undefined;
  signal: AbortSignal;
  /** Told how many stored bytes were read: progress for the heartbeat. */
  onBytes?: (bytes: number) => void;
  /** Consumes the plaintext; its result is kept only when the copy proves whole. */
  consume(plain: Readable, repository: Repository): Promise<T>;
  /** Turns a failure of the consumer's own side (a full disk) into the error to throw. */
  consumerFailure(err: unknown): EngineError;
  /**
   * Reads a copy by other means than the plaintext stream (the WAL openers read a local file in a
   * bash process of their own), or undefined to stream it. Its ChecksumMismatch, DecryptionFailed,
   * DumpUnreadable or CopyMissing skips the copy, as the stream's verdict would; any other error ends the read.
   */
  direct?(repository: Repository): Promise<T> | undefined;
}

export interface CopyRead<T> {
  repository: string;
  key: string;
  value: T;
  skipped: SkippedCopy[];
}

export async function readFirstGoodCopy<T>(input: CopyReadInput<T>): Promise<CopyRead<T>> {
  const { object } = input;
  const skipped: SkippedCopy[] = [];
  const skip = (repository: Repository, err: unknown) =>
    skipped.push({
      repository: repository.name,
      key: object.key,
      reason: isEngineError(err) ? err.message : errorText(err),
      errorType: (isEngineError(err) && err.type) || ErrorType.StorageUnreachable,
    });

  for (const repository of input.repositories) {
    let info;
    try {
      info = await repository.stat(object.key);
    } catch (err) {
      skip(repository, err);
      continue;
    }
    if (!info) {
      skip(repository, permanent(ErrorType.CopyMissing, `repository ${repository.name} has no ${object.key}`));
      continue;
    }
    if (info.bytes !== object.bytes) {
      skip(repository, permanent(ErrorType.ChecksumMismatch, `repository ${repository.name}: ${object.key} has ${info.bytes} bytes; the manifest says ${object.bytes}`));
      continue;
    }
    if (input.signal.aborted) throw input.signal.reason;
    const direct = input.direct?.(repository);
    if (direct) {
      try {
        return { repository: repository.name, key: object.key, value: await direct, skipped };
      } catch (err) {
        if (!isEngineError(err) || !COPY_VERDICTS.has(err.type ?? '')) throw err;
        skip(repository, err);
        continue;
      }
    }
    let opened;
    try {
      opened = await openPlaintext({ repository, object, compression: input.compression, privateKeyHome: input.privateKeyHome, passphraseFile: input.passphraseFile, signal: input.signal, onBytes: input.onBytes });
    } catch (err) {
      skip(repository, err);
      continue;
    }
    const stream = opened;
    // When the consumer fails, every stage ends at once: a decision of its own (an
    // EngineError that is not the copy's verdict, such as TargetDatabaseExists) ends the
    // read too; any other failure (pg_restore dying) stops the decoding and lets the stored
    // bytes' checksum say whether the copy was at fault. Nothing is left blocked on a pipe.
    const consuming = input.consume(stream.stream, repository).catch((err: unknown) => {
      if (ownDecision(err, stream.isVerdict(err))) stream.abort(err as Error);
      else stream.stream.destroy(err instanceof Error ? err : new Error(String(err)));
      throw err;
    });
    const [consumed, verdict] = await Promise.allSettled([consuming, opened.done]);
    if (input.signal.aborted) throw input.signal.reason ?? (consumed.status === 'rejected' ? consumed.reason : verdict.status === 'rejected' ? verdict.reason : undefined);
    // A key that stays locked is this host's fault, not the copy's: no other copy will do better.
    if (verdict.status === 'rejected' && isEngineError(verdict.reason) && verdict.reason.type === ErrorType.PassphraseWrong) throw verdict.reason;
    if (consumed.status === 'rejected') {
      if (ownDecision(consumed.reason, stream.isVerdict(consumed.reason))) throw consumed.reason;
      // A failure of our own side (not the copy's verdict) would fail every copy alike: stop at once.
      if (!(isEngineError(consumed.reason)) && (verdict.status === 'fulfilled' || !isCopyFault(verdict.reason))) {
        throw input.consumerFailure(consumed.reason);
      }
    }
    if (verdict.status === 'rejected') {
      skip(repository, verdict.reason);
      continue;
    }
    if (consumed.status === 'rejected') throw consumed.reason;
    return { repository: repository.name, key: object.key, value: consumed.value, skipped };
  }
  throw noUsableCopy(object, skipped);
}

/** The consumer's own verdict (a refused target, a superseded attempt), not a reaction to the copy. */
function ownDecision(err: unknown, isVerdict: boolean): boolean {
  return isEngineError(err) && !isVerdict && !COPY_VERDICTS.has(err.type ?? '');
}

const COPY_VERDICTS = new Set<string>([ErrorType.ChecksumMismatch, ErrorType.DecryptionFailed, ErrorType.DumpUnreadable, ErrorType.CopyMissing]);

function isCopyFault(err: unknown): boolean {
  return isEngineError(err) && (err.type === ErrorType.ChecksumMismatch || err.type === ErrorType.CopyMissing);
}

function noUsableCopy(object: StoredObject, skipped: SkippedCopy[]): EngineError {
  const list = skipped.map((s) => `${s.repository}: ${s.reason}`).join('; ');
  if (!skipped.length) return permanent(ErrorType.NoUsableCopy, `no repository holds ${object.key}`);
  // Storage that is down now may be back in a minute: only then is a retry worth it.
  const transientOnly = skipped.some((s) => s.errorType === ErrorType.StorageUnreachable);
  const message = `no whole copy of ${object.key}: ${list}`;
  return transientOnly ? transient(ErrorType.NoUsableCopy, message) : permanent(ErrorType.NoUsableCopy, message, { skipped });
}
