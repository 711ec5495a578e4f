// Reading a stored object back in full, for a check (the verification's copy audit, the
// monitor's integrity sample): streamed, never held whole (but a manifest, asked for), and
// given up as unreachable when it moves nothing for a while, so a stalled repository cannot
// hang the check.
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorType } from '../common/types.js';
import { transient } from './errors.js';
import type { Repository } from './storage/repository.js';

export interface Reader {
  signal: AbortSignal;
  /** A read that moves no byte for this long is given up as unreadable. */
  idleMs: number;
  onBytes(bytes: number): void;
}

/** A call that answers within the idle limit, or a StorageUnreachable failure; a cancellation ends the wait at once. */
export async function within<T>(call: Promise<T>, reader: Reader, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(transient(ErrorType.StorageUnreachable, `${what}: no answer within ${reader.idleMs / 1000} s`)), reader.idleMs);
    onAbort = () => reject(reader.signal.reason);
    if (reader.signal.aborted) onAbort();
    else reader.signal.addEventListener('abort', onAbort, { once: true });
  });
  call.catch(() => undefined);
  try {
    return await Promise.race([call, limit]);
  } finally {
    clearTimeout(timer);
    reader.signal.removeEventListener('abort', onAbort!);
  }
}

/** Thrown by readBack when the object goes on past `maxBytes`: it is longer than it should be. */
export class LongerThanExpected extends Error {
  constructor(readonly bytes: number) {
    super(`more than ${bytes} bytes`);
  }
}

/**
 * Streams one object through `onChunk` (or, with `collect`, returns it whole: manifests only).
 * Each chunk is progress; a read that moves nothing for `idleMs` is aborted as unreachable. With
 * `maxBytes`, a read that goes past it stops there (LongerThanExpected): a body that does not end
 * (a link to /dev/zero swapped in, a file still growing, a store answering with another body)
 * is not read to its end.
 */
export async function readBack(repository: Repository, key: string, reader: Reader, collect: boolean, onChunk?: (chunk: Buffer) => void, maxBytes?: number): Promise<Buffer> {
  const idle = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => idle.abort(transient(ErrorType.StorageUnreachable, `repository ${repository.name}: ${key}: no bytes for ${reader.idleMs / 1000} s`)), reader.idleMs);
  };
  const signal = AbortSignal.any([reader.signal, idle.signal]);
  const chunks: Buffer[] = [];
  let total = 0;
  arm();
  try {
    const opening = repository.get(key, { signal });
    // A read given up before it opened (no answer in time, an abort) is closed when it does open.
    const stored = await within(opening, reader, `repository ${repository.name}: reading ${key}`).catch((err: unknown) => {
      opening.then((late) => late.destroy(), () => undefined);
      throw err;
    });
    await pipeline(
      stored,
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          arm();
          total += chunk.length;
          if (maxBytes !== undefined && total > maxBytes) return done(new LongerThanExpected(maxBytes));
          if (collect) chunks.push(chunk);
          onChunk?.(chunk);
          reader.onBytes(chunk.length);
          done();
        },
      }),
      { signal },
    );
    return Buffer.concat(chunks);
  } catch (err) {
    if (!reader.signal.aborted && idle.signal.aborted) throw idle.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
