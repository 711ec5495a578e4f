// Reads one object of a backup from the first repository whose copy is whole, in the
// configured order. A missing, short or corrupt copy is skipped and reported, never used:
// the consumer's output counts only once the stored bytes' sha256 matched the manifest.
import type { Readable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType, type Compression, type StoredObject } from '../workflows/types.js';
import type { SkippedCopy } from '../workflows/restoreTypes.js';
import { errorText, permanent, transient } from './errors.js';
import { openPlaintext } from './restoreStream.js';
import type { Repository } from './storage/repository.js';

export interface CopyReadInput<T> {
  object: StoredObject;
  repositories: Repository[];
  compression: Compression;
  privateKeyHome: string;
  signal: AbortSignal;
  /** Consumes the plaintext; its result is kept only when the copy proves whole. */
  consume(plain: Readable, repository: Repository): Promise<T>;
  /** Turns a failure of the consumer's own side (a full disk) into the error to throw. */
  consumerFailure(err: unknown): ApplicationFailure;
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
      reason: err instanceof ApplicationFailure ? err.message : errorText(err),
      errorType: (err instanceof ApplicationFailure && err.type) || ErrorType.StorageUnreachable,
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
    let opened;
    try {
      opened = await openPlaintext({ repository, object, compression: input.compression, privateKeyHome: input.privateKeyHome, signal: input.signal });
    } catch (err) {
      skip(repository, err);
      continue;
    }
    const [consumed, verdict] = await Promise.allSettled([input.consume(opened.stream, repository), opened.done]);
    // A failure of our own side (not the copy's verdict, which destroys the stream with an
    // ApplicationFailure) would fail every copy alike: stop at once.
    if (consumed.status === 'rejected' && !(consumed.reason instanceof ApplicationFailure)) {
      if (input.signal.aborted) throw input.signal.reason ?? consumed.reason;
      if (verdict.status === 'fulfilled' || !isCopyFault(verdict.reason)) throw input.consumerFailure(consumed.reason);
    }
    if (verdict.status === 'rejected') {
      if (input.signal.aborted) throw input.signal.reason ?? verdict.reason;
      skip(repository, verdict.reason);
      continue;
    }
    if (consumed.status === 'rejected') throw consumed.reason;
    return { repository: repository.name, key: object.key, value: consumed.value, skipped };
  }
  throw noUsableCopy(object, skipped);
}

function isCopyFault(err: unknown): boolean {
  return err instanceof ApplicationFailure && (err.type === ErrorType.ChecksumMismatch || err.type === ErrorType.CopyMissing);
}

function noUsableCopy(object: StoredObject, skipped: SkippedCopy[]): ApplicationFailure {
  const list = skipped.map((s) => `${s.repository}: ${s.reason}`).join('; ');
  if (!skipped.length) return permanent(ErrorType.NoUsableCopy, `no repository holds ${object.key}`);
  // Storage that is down now may be back in a minute: only then is a retry worth it.
  const transientOnly = skipped.some((s) => s.errorType === ErrorType.StorageUnreachable);
  const message = `no whole copy of ${object.key}: ${list}`;
  return transientOnly ? transient(ErrorType.NoUsableCopy, message) : permanent(ErrorType.NoUsableCopy, message, { skipped });
}
