// A backup pass that stops moving bytes ends: it fails as PipelineStalled, every stage is
// stopped, and its heartbeats stop before that, so a hung producer cannot hold an activity
// (and its worker slot) for the twelve hours of its start-to-close timeout.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EngineError, permanent } from '../engine/errors.js';
import { loadRecipient, stopAgent, type Recipient } from '../engine/encryption.js';
import { spawnStreaming } from '../engine/exec.js';
import { streamToRepositories, type PipelineProgress } from '../engine/pipeline.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { ErrorType } from '../common/types.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-stall-'));
let keys: KeyPair;
let recipient: Recipient;

beforeAll(async () => {
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  recipient = await loadRecipient(keys.publicKeyFile);
});

afterAll(async () => {
  await recipient?.dispose();
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

test('a producer that writes a little and then hangs fails the pass as PipelineStalled, and every stage ends', async () => {
  const abort = new AbortController();
  const marker = `backupctl-stall-${process.pid}`;
  // A producer that hangs with its output open, as pg_dump blocked on a lock does.
  const producer = spawnStreaming('bash', ['-c', `head -c 65536 /dev/urandom; exec -a ${marker} sleep 600`], { signal: abort.signal });
  const beats: Array<{ at: number; progress: PipelineProgress }> = [];
  const started = Date.now();
  let failure: unknown;
  try {
    await streamToRepositories({
      producer,
      classifyProducerError: (err) => permanent(ErrorType.DumpFailed, `producer failed: ${err}`),
      compression: { algorithm: 'zstd', level: 3, threads: 0 },
      recipient,
      repositories: [new FilesystemRepository('local', path.join(dir, 'repo'))],
      key: 'stall/object.zst.gpg',
      abort,
      stallTimeoutMs: 3000,
      onProgress: (progress) => beats.push({ at: Date.now() - started, progress }),
    });
  } catch (err) {
    failure = err;
  }
  const elapsed = Date.now() - started;
  expect(failure).toBeInstanceOf(EngineError);
  expect(failure).toMatchObject({ type: 'PipelineStalled', nonRetryable: false });
  expect((failure as Error).message).toMatch(/no byte moved for \d+ s/);
  // Far from the producer's 600 s: the stall timeout plus the grace the stages get to stop.
  expect(elapsed).toBeLessThan(20_000);
  // Heartbeats stopped once the bytes did: none vouches for the stalled stretch.
  const lastBeat = beats.at(-1)!;
  expect(lastBeat.progress.plainBytes).toBe(65536);
  expect(lastBeat.at).toBeLessThan(elapsed - 500);
  // The hung producer was killed with the pass; nothing of it is left running.
  await new Promise((r) => setTimeout(r, 500));
  expect(spawnSync('pgrep', ['-f', marker]).status).toBe(1);
  // Nothing was published.
  expect(await new FilesystemRepository('local', path.join(dir, 'repo')).list('stall/')).toEqual([]);
});
