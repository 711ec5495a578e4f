// The compression stage: zstd (multi-threaded, the default) as a child process, or gzip for
// readers that have nothing else, in Node's zlib thread pool.
import { createGzip } from 'node:zlib';
import type { Duplex } from 'node:stream';
import { Duplex as DuplexStream, addAbortSignal } from 'node:stream';
import type { Compression } from '../common/types.js';
import { spawnStreaming, type StreamingProcess } from './exec.js';

export interface CompressionSettings {
  algorithm: Compression;
  level: number;
  /** zstd threads; 0 means one per core. */
  threads: number;
}

export interface CompressionStage {
  stream: Duplex;
  /** The child process, when there is one, so its exit status is checked. */
  process?: StreamingProcess;
}

export function createCompressor(settings: CompressionSettings, signal: AbortSignal): CompressionStage {
  if (settings.algorithm === 'gzip') {
    // In-process, so no kill ends it: the abort destroys it.
    return { stream: addAbortSignal(signal, createGzip({ level: Math.min(settings.level, 9) })) };
  }
  const proc = spawnStreaming('zstd', ['-q', '-c', `-${settings.level}`, `-T${settings.threads}`], { stdin: 'pipe', signal });
  return { stream: DuplexStream.from({ writable: proc.stdin!, readable: proc.stdout! }), process: proc };
}

/**
 * The command that compresses a file it reads itself (its path follows, after `--`), to stdout:
 * the plaintext never passes through this process (WAL files, 16 MiB each, one after another).
 * gzip's output is the same format as createCompressor's.
 */
export function fileCompressorCommand(settings: CompressionSettings): string[] {
  return settings.algorithm === 'gzip' ? ['gzip', '-c', '-n', `-${Math.min(settings.level, 9)}`] : ['zstd', '-q', '-c', `-${settings.level}`, `-T${settings.threads}`];
}

/** File suffix of a compressed object. */
export function compressionSuffix(algorithm: Compression): string {
  return algorithm === 'gzip' ? 'gz' : 'zst';
}
