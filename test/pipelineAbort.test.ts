// When one stage of a backup pass fails (here: a real, full disk), every stage ends at once:
// the pass reports the cause within moments, not after the 10 s grace the pipeline keeps as a
// last resort. The straggler this guards against was a killed process whose promise never
// settled because its stdout, whose reader had died first, was never read to its end: the
// producer's behind an in-process gzip that nothing stopped (every pass), zstd's after gpg
// went (whether bytes are left in that pipe at the abort is timing: about 3 passes in 8 here,
// so zstd is tried over several passes, which the old code survives about 2 times in 100).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EngineError, permanent } from '../engine/errors.js';
import { loadRecipient, stopAgent, type Recipient } from '../engine/encryption.js';
import { spawnStreaming, type StreamingProcess } from '../engine/exec.js';
import { streamToRepositories } from '../engine/pipeline.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { ErrorType, type Compression } from '../common/types.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-abort-'));
const tiny = path.join(dir, 'tiny');
let keys: KeyPair;
let recipient: Recipient;
const PASSES = 8;
/** Far under the pipeline's 10 s grace, far over what a pass takes to stop (about 0.2 s). */
const PROMPT_MS = 5_000;

const canMount = process.getuid?.() === 0;

beforeAll(async () => {
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  recipient = await loadRecipient(keys.publicKeyFile);
  mkdirSync(tiny);
  if (canMount) {
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', tiny], { encoding: 'utf8' });
    if (mounted.status !== 0) throw new Error(`mount tmpfs on ${tiny} failed: ${mounted.stderr}`);
  }
});

afterAll(async () => {
  await recipient?.dispose();
  if (keys) await stopAgent(keys.privateHome);
  if (canMount) spawnSync('umount', [tiny]);
  rmSync(dir, { recursive: true, force: true });
});

/** Settles to whether the process ended within the bound, without throwing. */
function endedWithin(proc: StreamingProcess, ms: number): Promise<boolean> {
  return Promise.race([proc.then(() => true, () => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
}

(canMount ? test.each<Compression>(['zstd', 'gzip']) : test.skip.each<Compression>(['zstd', 'gzip']))(
  `a full disk ends every stage of a %s pass within ${PROMPT_MS / 1000} s${canMount ? '' : ' (SKIPPED: needs root to mount a small tmpfs)'}`,
  async (algorithm) => {
    for (let pass = 1; pass <= PASSES; pass++) {
      const abort = new AbortController();
      const marker = `backupctl-abort-${process.pid}-${algorithm}-${pass}`;
      // One process writing compressible bytes as fast as it can, as pg_dump of a large table does.
      const producer = spawnStreaming('bash', ['-c', `exec -a ${marker} base64 /dev/urandom`], { signal: abort.signal });
      const reader = spawnStreaming('bash', ['-c', 'exec cat > /dev/null'], { stdin: 'pipe', signal: abort.signal });
      const started = Date.now();
      let failure: unknown;
      try {
        await streamToRepositories({
          producer,
          classifyProducerError: (err) => permanent(ErrorType.DumpFailed, `producer failed: ${err}`),
          reader: { process: reader, failure: (err) => permanent(ErrorType.DumpUnreadable, `reader failed: ${err}`) },
          compression: { algorithm, level: 1, threads: 0 },
          recipient,
          repositories: [new FilesystemRepository('local', tiny), new FilesystemRepository('nas', path.join(dir, 'nas'))],
          key: `abort/${algorithm}-${pass}.gpg`,
          abort,
        });
      } catch (err) {
        failure = err;
      }
      const elapsed = Date.now() - started;
      expect(failure).toBeInstanceOf(EngineError);
      expect(failure).toMatchObject({ type: 'DiskFull', nonRetryable: true });
      expect({ pass, elapsed, prompt: elapsed < PROMPT_MS }).toMatchObject({ pass, prompt: true });
      // The stages the caller handed in have ended too, and nothing of the producer runs on.
      expect(await endedWithin(producer, 100)).toBe(true);
      expect(await endedWithin(reader, 100)).toBe(true);
      expect(spawnSync('pgrep', ['-f', marker]).status).toBe(1);
      // Neither repository kept a byte of the failed pass.
      expect(readdirSync(path.join(tiny, 'abort'))).toEqual([]);
      expect(readdirSync(path.join(dir, 'nas', 'abort'))).toEqual([]);
    }
  },
);
