// The background half of asynchronous recovery (bin/wal-fetch-async, restore_command): fetches
// and decrypts the WAL replay will ask for, several segments at a time and ahead of replay, into
// a queue folder the restore_command only copies from. pgBackRest's archive-get async, in shape.
//
// The queue folder's protocol (bin/wal-fetch-async is the other side):
//   <name>.want     restore_command asks for <name> and waits;
//   <name>          the file, whole and verified (fetchSegment writes a temp name, then renames);
//                   restore_command copies it to %p and removes it (the disk it used is free);
//   <name>.missing  <name> is in no repository (the end of the archive): restore_command exits 1;
//   <name>.error    fetching <name> failed (a refusal, a conflict, an unreadable repository),
//                   with the message: restore_command prints it and exits 1.
// Only a file asked for gets a .missing or .error: one ahead of replay that is absent or fails
// stops the fetching ahead there, and is fetched again (and judged) when it is asked for; so a
// repository unreachable for a moment never ends a recovery that has not reached that segment.
import { constants, open, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../common/config.js';
import type { Repository } from './storage/repository.js';
import { fetchSegment, startWalOpening, WAL_FILE_NAME, type WalTrust } from './walArchive.js';
import { readLongHeader } from './walHeader.js';
import type { WalOpening } from './walOpener.js';
import { writeStatus } from './walPusher.js';

const SEGMENT = /^[0-9A-F]{24}$/;
const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;

export interface WalFetcherOptions {
  config: Config;
  repositories: Repository[];
  trust: WalTrust;
  queueDir: string;
  /** Files fetched at once. */
  processes: number;
  /** Segments at most in the queue, waiting or being fetched: the disk bound. */
  maxSegments: number;
  /** Ends after this long with nothing asked and nothing being fetched. */
  idleMs: number;
  /** Between looks at the queue folder. */
  pollMs?: number;
  log: (line: string) => void;
}

export interface WalFetcherSummary {
  fetched: number;
  missing: number;
  failed: number;
}

/** In the queue folder: the segment a fetcher begins fetching ahead from when it starts (read once and removed). */
const AHEAD_FROM = 'ahead-from';

/**
 * Tells the queue's next fetcher where to begin fetching ahead, before anything is asked of it:
 * the first segment after those fetched before the server started. Created, never overwritten
 * (nor a link there followed).
 */
export async function setFetchAheadStart(queueDir: string, segment: string): Promise<void> {
  if (!SEGMENT.test(segment)) throw new Error(`setFetchAheadStart: ${segment} is not a WAL segment name`);
  await writeFile(path.join(queueDir, AHEAD_FROM), `${segment}\n`, { flag: 'wx', mode: 0o644 });
}

/** The segment setFetchAheadStart named, once: the file is removed (a later fetcher, started mid-recovery, begins where replay asks). */
async function takeFetchAheadStart(dir: string): Promise<string | undefined> {
  const file = path.join(dir, AHEAD_FROM);
  // A file, read without following a link or waiting on a fifo planted there (the queue is the
  // server's OS user's): a read blocked there would hold this fetcher, and the queue's lock, for ever.
  const text = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).then(
    async (handle) => {
      try {
        if (!(await handle.stat()).isFile()) return '';
        const { buffer, bytesRead } = await handle.read(Buffer.alloc(64), 0, 64, 0);
        return buffer.subarray(0, bytesRead).toString('utf8');
      } finally {
        await handle.close();
      }
    },
    () => undefined,
  );
  if (text === undefined) return undefined;
  await rm(file, { force: true }).catch(() => undefined);
  const segment = text.trim();
  return SEGMENT.test(segment) ? segment : undefined;
}

/** The segment after `name` (same timeline), for segments of `segmentSize` bytes. */
export function nextSegment(name: string, segmentSize: number): string {
  const perId = 0x100000000 / segmentSize;
  let id = parseInt(name.slice(8, 16), 16);
  let seg = parseInt(name.slice(16, 24), 16) + 1;
  if (seg >= perId) {
    id += 1;
    seg = 0;
  }
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${name.slice(0, 8)}${hex(id)}${hex(seg)}`;
}

/** Orders segments of one timeline (by position), and `a` before `b` of another timeline by position too. */
function position(name: string): string {
  return name.slice(8);
}

async function segmentSizeOf(file: string): Promise<number | undefined> {
  const handle = await open(file, 'r').catch(() => undefined);
  if (!handle) return undefined;
  try {
    const head = Buffer.alloc(64);
    await handle.read(head, 0, 64, 0);
    return readLongHeader(head)?.segmentSize;
  } finally {
    await handle.close();
  }
}

/**
 * Serves the queue folder until idle: every file asked for (.want) is fetched first; from the
 * last segment asked for onward, the following segments of its timeline are fetched ahead,
 * `processes` at a time, while fewer than `maxSegments` wait in the folder or are under way.
 */
export async function runWalFetcher(options: WalFetcherOptions): Promise<WalFetcherSummary> {
  const dir = options.queueDir;
  // What a fetcher killed mid-file left (fetchSegment's temp names, a verdict half written):
  // this one holds the lock, so no other fetcher is writing them.
  for (const entry of await readdir(dir)) {
    if (entry.includes('.backupctl-') || entry.endsWith('.tmp')) await rm(path.join(dir, entry), { force: true });
  }
  const opener = startWalOpening(options.config, options.processes);
  try {
    return await serve(options, opener);
  } finally {
    await opener.close();
  }
}

async function serve(options: WalFetcherOptions, opener: WalOpening): Promise<WalFetcherSummary> {
  const { config, repositories, trust, queueDir: dir, log } = options;
  const pollMs = options.pollMs ?? 10;
  const summary: WalFetcherSummary = { fetched: 0, missing: 0, failed: 0 };
  let segmentSize = DEFAULT_SEGMENT_SIZE;
  const inFlight = new Map<string, Promise<void>>();
  // The next segment to fetch ahead, or none (not started, or stopped at an absent or failed one).
  let cursor: string | undefined = await takeFetchAheadStart(dir);
  let idleSince = Date.now();
  let failure: unknown;

  const fetch = (name: string, asked: boolean): void => {
    const job = (async () => {
      try {
        if (await fetchSegment(config, repositories, name, path.join(dir, name), trust, { opener })) {
          summary.fetched++;
          if (SEGMENT.test(name) && segmentSize === DEFAULT_SEGMENT_SIZE) segmentSize = (await segmentSizeOf(path.join(dir, name))) ?? segmentSize;
          return;
        }
        if (!asked) {
          // The end of the archive, for now: nothing further is fetched ahead. (Asked for
          // meanwhile, its .want is served at the next look, as any other.)
          if (cursor !== undefined && position(cursor) > position(name)) cursor = undefined;
          return;
        }
        summary.missing++;
        await writeStatus(dir, `${name}.missing`, '');
      } catch (err) {
        if (!asked) {
          if (cursor !== undefined && position(cursor) > position(name)) cursor = undefined;
          log(`${name} (ahead of replay) failed; fetched again when asked for: ${(err as Error).message}`);
          return;
        }
        summary.failed++;
        const type = (err as { type?: string })?.type;
        await writeStatus(dir, `${name}.error`, `${type ? `${type}: ` : ''}${(err as Error).message}`);
      }
    })()
      .catch((err: unknown) => {
        failure ??= err;
      })
      .finally(() => {
        // The .want stays: restore_command removes it with the answer it takes.
        inFlight.delete(name);
      });
    inFlight.set(name, job);
  };

  for (;;) {
    if (failure) throw failure;
    const entries = await readdir(dir);
    const present = new Set(entries);
    const wants = entries.filter((e) => e.endsWith('.want')).map((e) => e.slice(0, -'.want'.length)).filter((n) => WAL_FILE_NAME.test(n)).sort();
    for (const name of wants) {
      if (inFlight.has(name)) continue;
      if (present.has(name) || present.has(`${name}.missing`) || present.has(`${name}.error`)) {
        // Answered already: restore_command takes it (and removes the .want) at its next look.
        continue;
      }
      if (SEGMENT.test(name)) {
        // Replay is here: what waits of other timelines, or behind it, will not be asked for again.
        for (const entry of entries) {
          if (SEGMENT.test(entry) && !inFlight.has(entry) && (entry.slice(0, 8) !== name.slice(0, 8) || position(entry) < position(name))) {
            await rm(path.join(dir, entry), { force: true });
            present.delete(entry);
          }
        }
        cursor = nextSegment(name, segmentSize);
      }
      fetch(name, true);
    }
    if (wants.length || inFlight.size) idleSince = Date.now();
    // Fetch ahead, within the bounds.
    const waiting = [...present].filter((e) => SEGMENT.test(e)).length;
    while (cursor !== undefined && inFlight.size < options.processes && waiting + [...inFlight.keys()].filter((n) => SEGMENT.test(n)).length < options.maxSegments) {
      const name = cursor;
      cursor = nextSegment(name, segmentSize);
      if (present.has(name) || inFlight.has(name)) continue;
      fetch(name, false);
    }
    if (!inFlight.size && Date.now() - idleSince >= options.idleMs) return summary;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
