// One streaming pass: producer -> compressor -> gpg -> sha256 -> every repository at once.
// Nothing is held in memory beyond stream buffers and S3 part buffers, no plaintext touches
// a disk, and the first failing stage stops all the others.
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { ErrorType } from '../common/types.js';
import { createCompressor, type CompressionSettings } from './compression.js';
import { spawnEncryptor, type Recipient } from './encryption.js';
import { type EngineError, errorText, isEngineError, permanent, transient } from './errors.js';
import type { StreamingProcess } from './exec.js';
import { watchProgress } from './progressWatch.js';
import type { Repository } from './storage/repository.js';

export interface PipelineProgress {
  plainBytes: number;
  storedBytes: number;
}

export interface PipelineInput {
  /** Produces the plaintext on stdout (pg_dump, pg_dumpall, tar...). */
  producer: StreamingProcess;
  /** Maps the producer's failure (exit status and stderr) to a classified failure. */
  classifyProducerError: (err: unknown) => EngineError;
  /** Optionally reads the whole plaintext too (a readability check); its failure fails the pass. */
  reader?: { process: StreamingProcess; failure: (err: unknown) => EngineError };
  compression: CompressionSettings;
  recipient: Recipient;
  repositories: Repository[];
  key: string;
  /** Aborted by the caller on cancellation; aborted here when a stage fails. */
  abort: AbortController;
  /** Called every second (a heartbeat) while bytes have moved within the stall timeout. */
  onProgress?: (progress: PipelineProgress) => void;
  /**
   * How long the pass may move no byte at all before it fails as PipelineStalled (retryable):
   * a producer blocked for ever, a storage write that never returns. Default 2 minutes
   * (progressWatch.ts).
   */
  stallTimeoutMs?: number;
  /** The caller is the key's only possible writer (PutOptions.soleWriter). */
  soleWriter?: boolean;
}

export interface PipelineResult {
  bytes: number;
  sha256: string;
  plainBytes: number;
}

export async function streamToRepositories(input: PipelineInput): Promise<PipelineResult> {
  const { producer, abort } = input;
  // One pass's own signal, heard by each process (producer, zstd, gpg, reader) and each
  // repository's write: more than Node's default 10 listeners, and no leak.
  setMaxListeners(64, abort.signal);
  const progress: PipelineProgress = { plainBytes: 0, storedBytes: 0 };
  const hash = createHash('sha256');
  let firstFailure: EngineError | undefined;
  const fail = (failure: EngineError) => {
    firstFailure ??= failure;
    // The reason travels with the abort, so a pass stopped by a sibling pass reports the cause.
    abort.abort(failure);
  };
  // Stream errors (EPIPE after a stage died, aborts) are consequences; the stage's own
  // promise carries the cause. Listening here keeps them from crashing the worker.
  const ignore = (stream: NodeJS.EventEmitter | null | undefined) => stream?.on('error', () => undefined);

  const compressor = createCompressor(input.compression, abort.signal);
  const encryptor = spawnEncryptor(input.recipient, abort.signal);
  const plain = producer.stdout as Readable;
  const stored = encryptor.stdout as Readable;
  [plain, compressor.stream, encryptor.stdin, stored, input.reader?.process.stdin].forEach(ignore);

  plain.on('data', (chunk: Buffer) => {
    progress.plainBytes += chunk.length;
  });
  plain.pipe(compressor.stream).pipe(encryptor.stdin!);
  if (input.reader) plain.pipe(input.reader.process.stdin!);

  stored.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    progress.storedBytes += chunk.length;
  });
  const branches: PassThrough[] = [];
  // The abort kills the processes (their cancel signal), but a child's promise settles only
  // once its stdout has ended, and a stdout whose reader died first (zstd's when gpg went,
  // the producer's when an in-process gzip stopped pulling) stays paused with bytes in it and
  // never reads its end. Closing every pipe here is what ends each stage at once; the branches
  // likewise, so every repository's put settles instead of waiting for an end that never comes.
  const stopStreams = () => {
    const outputs = [plain, compressor.stream, compressor.process?.stdout, stored, input.reader?.process.stdout];
    outputs.forEach((stream) => stream?.destroy());
    branches.forEach((branch) => branch.destroy(new Error('pipeline aborted')));
  };
  abort.signal.addEventListener('abort', stopStreams, { once: true });
  if (abort.signal.aborted) stopStreams();
  const puts = input.repositories.map((repository) => {
    const branch = new PassThrough({ highWaterMark: 1024 * 1024 });
    // Destroyed with an error on abort, perhaps before its repository has begun to read it
    // (an upload still opening): its put carries the outcome; an unheard 'error' event would
    // crash the worker, and every activity it runs with it.
    ignore(branch);
    branches.push(branch);
    stored.pipe(branch);
    return repository.put(input.key, branch, { signal: abort.signal, soleWriter: input.soleWriter }).catch((err) => {
      fail(asFailure(err, `repository ${repository.name}`));
      throw err;
    });
  });

  const stage = (promise: Promise<unknown>, failure: (err: unknown) => EngineError) =>
    promise.catch((err) => {
      if (!abort.signal.aborted) fail(failure(err));
      throw err;
    });
  const stages = [
    stage(producer, input.classifyProducerError),
    stage(encryptor, (err) => permanent(ErrorType.InvalidPublicKey, `gpg could not encrypt: ${errorText(err)}`)),
    ...(compressor.process ? [stage(compressor.process, (err) => transient(ErrorType.DumpFailed, `zstd failed: ${errorText(err)}`))] : []),
    ...(input.reader ? [stage(input.reader.process, input.reader.failure)] : []),
  ];

  const stopWatch = watchProgress({
    counters: () => [progress.plainBytes, progress.storedBytes],
    beat: () => input.onProgress?.({ ...progress }),
    stallTimeoutMs: input.stallTimeoutMs,
    onStall: (still) => {
      if (abort.signal.aborted) return;
      fail(
        transient(
          ErrorType.PipelineStalled,
          `no byte moved for ${Math.round(still / 1000)} s (${progress.plainBytes} bytes read, ${progress.storedBytes} stored): a stage hangs; every stage was stopped`,
        ),
      );
    },
  });
  try {
    const outcome = await Promise.race([Promise.allSettled([...stages, ...puts]), stragglers(abort.signal)]);
    if (outcome === 'stragglers') {
      // A last resort, which no known stage reaches (stopStreams ends them all): a stage that
      // ignores the abort must not keep the activity (and its heartbeats) alive for ever.
      // Report the cause; what is left dies with its process or is cleaned up by the retry.
      throw firstFailure ?? asFailure(abort.signal.reason, 'pipeline');
    }
    const settled = outcome;
    const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (firstFailure || rejected) {
      const reason: unknown = abort.signal.reason;
      throw firstFailure ?? (isEngineError(reason) ? reason : asFailure(rejected!.reason, 'pipeline'));
    }
    const written = (await Promise.all(puts)).map((info) => info.bytes);
    if (written.some((bytes) => bytes !== progress.storedBytes)) {
      throw transient(ErrorType.ChecksumMismatch, `a repository stored ${written.join('/')} bytes of ${progress.storedBytes}`);
    }
    return { bytes: progress.storedBytes, sha256: hash.digest('hex'), plainBytes: progress.plainBytes };
  } finally {
    abort.signal.removeEventListener('abort', stopStreams);
    stopWatch();
  }
}

/** How long the other stages get to stop after one failed. */
const ABORT_GRACE_MS = 10_000;

/** Resolves ABORT_GRACE_MS after the abort; never, when there is none. */
function stragglers(signal: AbortSignal): Promise<'stragglers'> {
  return new Promise((resolve) => {
    const start = () => setTimeout(() => resolve('stragglers'), ABORT_GRACE_MS).unref();
    if (signal.aborted) start();
    else signal.addEventListener('abort', start, { once: true });
  });
}

function asFailure(err: unknown, where: string): EngineError {
  if (isEngineError(err)) return err;
  return transient(ErrorType.StorageUnreachable, `${where}: ${errorText(err)}`, err instanceof Error ? err : undefined);
}
