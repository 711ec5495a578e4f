// The background half of asynchronous WAL archiving (bin/wal-push-async is the other half,
// PostgreSQL's archive_command). PostgreSQL marks each finished WAL file
// pg_wal/archive_status/<name>.ready and keeps it until archive_command succeeds for it: that is
// the queue, durable before we ever see it. The pusher stores every ready file in the spool,
// several at a time and ahead of the archiver, exactly as a `wal-push` would (pushSegment:
// checked, compressed, encrypted, fsynced, then its entry; an identical file again is
// "already archived", a different one under an archived name WalConflict), and then writes
// <status>/<name>.ok holding the identity of the file it stored. archive_command succeeds on
// that .ok alone, so a segment is reported archived only once it is durable in the spool, and
// only by a pusher of the configuration file it names, as that file is now (the .ok's second line).
//
// A crash anywhere loses nothing: until archive_command succeeds, PostgreSQL keeps the file and
// its .ready; a new pusher stores it again (what a killed one left of it is cleared, an entry
// already written makes it "already archived"). One pusher per status folder (the wrapper
// starts it under `flock -n`); it ends after `idleMs` without work, or when the WAL folder is gone.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../common/config.js';
import { errorText, isEngineError } from './errors.js';
import { pushSegment, spoolFolder, startWalSealing, WAL_FILE_NAME } from './walArchive.js';
import { lockWalWriter } from './walWriterLock.js';
import type { Repository } from './storage/repository.js';

export interface PusherOptions {
  config: Config;
  repositories: Repository[];
  /** The status folder shared with archive_command: <name>.ok and <name>.error. */
  statusDir: string;
  /** The cluster's pg_wal (archive_status is in it). */
  walDir: string;
  /** Files stored at once. */
  processes: number;
  /** The identity (fileIdentity) of the configuration file `config` was read from: each .ok names it too. */
  configIdentity: string;
  /** Ends after this long with nothing ready and nothing in flight. */
  idleMs: number;
  log: (line: string) => void;
  signal?: AbortSignal;
  /**
   * Whether this pusher still serves what archive_command asks for (the configuration it
   * loaded): checked at every scan; once false it takes no more files and ends, and the next
   * call starts one with the configuration as it is now.
   */
  stillCurrent?: () => Promise<boolean>;
  /** How long it waits for the spool's writer lock when another writer holds it (default 600 s). */
  writerLockWaitSeconds?: number;
}

const WRITER_LOCK_WAIT_SECONDS = 600;

export interface PusherSummary {
  stored: number;
  alreadyArchived: number;
  failed: number;
  ended: 'idle' | 'wal folder gone' | 'aborted' | 'configuration changed' | 'writer lock lost' | 'verdicts unread';
}

/** What archive_command compares with the file it was given (`stat -L -c '%d:%i:%s:%.9Y'`: a symlink's target, as stat here). */
export async function fileIdentity(file: string): Promise<string> {
  const s = await stat(file, { bigint: true });
  const ns = s.mtimeNs % 1_000_000_000n;
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs / 1_000_000_000n}.${String(ns).padStart(9, '0')}`;
}

/**
 * PostgreSQL's archiver takes timeline history files first, then the oldest name: so does the
 * pusher, and a new timeline's segments wait for its history (their branch is checked against it).
 */
function archiveOrder(a: string, b: string): number {
  const ha = a.endsWith('.history') ? 0 : 1;
  const hb = b.endsWith('.history') ? 0 : 1;
  return ha - hb || (a < b ? -1 : a > b ? 1 : 0);
}

export async function runWalPusher(options: PusherOptions): Promise<PusherSummary> {
  const { statusDir, walDir, log, signal } = options;
  const readyDir = path.join(walDir, 'archive_status');
  const summary: PusherSummary = { stored: 0, alreadyArchived: 0, failed: 0, ended: 'idle' };
  const inFlight = new Map<string, Promise<void>>();
  // Files this pusher wrote a verdict for, with the scan under way then: a scan that listed the
  // status folder just before that verdict appeared must not store them again. A verdict gone
  // from a later listing was read (an .error) or refused (an .ok of another file): stored again.
  const judged = new Map<string, number>();
  // When each .ok was written: the archiver asks for its oldest file first, so an .ok of the
  // oldest ready file left unread for idleMs means no archive_command reads this status folder
  // any more (it names another now). Such a pusher is never idle while the cluster writes WAL,
  // and would hold the spool's writer lock from the pusher that is read, for ever.
  const okAt = new Map<string, number>();
  let scan = 0;
  // Started once for every file (the key loaded: four gpg runs; a sealer per process), by the
  // first that needs them; a failure is not kept.
  let sealers: ReturnType<typeof startWalSealing> | undefined;
  let wake: (() => void) | undefined;
  const nudge = () => wake?.();
  // The one writer of the spool while it runs (walWriterLock.ts): a pusher of another status
  // folder (archive_command changed) or a wal-push run by hand waits for it to end, and it for them.
  const spool = spoolFolder(options.config, options.repositories);
  const writerLock = await lockWalWriter(spool.root, 1).catch(async () => {
    log(`waiting for the WAL writer lock of ${spool.name} (another pusher, or a wal-push run by hand, is storing into it)`);
    return lockWalWriter(spool.root, options.writerLockWaitSeconds ?? WRITER_LOCK_WAIT_SECONDS);
  });
  // What a killed pusher was writing (there is one pusher at a time: the wrapper's lock).
  for (const f of await readdir(statusDir)) if (/^\..+\.tmp$/.test(f)) await rm(path.join(statusDir, f), { force: true });
  const watchers: FSWatcher[] = [];
  for (const dir of [readyDir, statusDir]) {
    try {
      const w = watch(dir, nudge);
      w.on('error', nudge);
      watchers.push(w);
    } catch {
      // Polled below in any case.
    }
  }
  signal?.addEventListener('abort', nudge);

  const store = async (name: string): Promise<void> => {
    const file = path.join(walDir, name);
    let outcome: string;
    try {
      const before = await fileIdentity(file);
      sealers ??= startWalSealing(options.config, options.processes).catch((err: unknown) => {
        sealers = undefined;
        throw err;
      });
      const pushed = await pushSegment(options.config, options.repositories, file, { sealing: (await sealers).sealing, writerLock });
      // Stored from the bytes read; the file must still be the one they came from.
      if ((await fileIdentity(file)) !== before) throw new Error(`${file} changed while it was archived; stored again on the next call`);
      if (pushed.action === 'stored') summary.stored++;
      else summary.alreadyArchived++;
      await writeStatus(statusDir, `${name}.ok`, `${before}\n${options.configIdentity}\n`);
      okAt.set(name, Date.now());
      outcome = pushed.action;
    } catch (err) {
      summary.failed++;
      const why = `${isEngineError(err) ? `${err.type}: ` : ''}${errorText(err)}`;
      outcome = `failed: ${why}`;
      await writeStatus(statusDir, `${name}.error`, `${why}\n`).catch((e: unknown) => log(`cannot write ${name}.error: ${errorText(e)}`));
    }
    log(`${name}: ${outcome}`);
  };

  let idleSince = Date.now();
  try {
    while (!signal?.aborted) {
      if (options.stillCurrent && !(await options.stillCurrent())) {
        summary.ended = 'configuration changed';
        break;
      }
      if (!writerLock.held()) {
        summary.ended = 'writer lock lost';
        break;
      }
      scan++;
      let ready: string[];
      try {
        ready = (await readdir(readyDir)).filter((f) => f.endsWith('.ready')).map((f) => f.slice(0, -'.ready'.length));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          summary.ended = 'wal folder gone';
          break;
        }
        throw err;
      }
      const readySet = new Set(ready);
      const statusFiles = new Set(await readdir(statusDir));
      // The verdicts on files PostgreSQL has archived since (its .ready is gone) are spent.
      for (const f of statusFiles) {
        const m = /^(.+)\.(ok|error)$/.exec(f);
        if (m && !readySet.has(m[1]) && !inFlight.has(m[1])) await rm(path.join(statusDir, f), { force: true });
      }
      for (const [name, at] of judged) {
        if (!readySet.has(name) || (at < scan && !statusFiles.has(`${name}.ok`) && !statusFiles.has(`${name}.error`))) judged.delete(name);
      }
      for (const name of okAt.keys()) if (!readySet.has(name)) okAt.delete(name);
      const oldest = ready.filter((n) => WAL_FILE_NAME.test(n)).sort(archiveOrder)[0];
      const unreadSince = oldest !== undefined && statusFiles.has(`${oldest}.ok`) ? okAt.get(oldest) : undefined;
      if (unreadSince !== undefined && Date.now() - unreadSince >= options.idleMs) {
        summary.ended = 'verdicts unread';
        break;
      }
      const todo = ready
        .filter((n) => WAL_FILE_NAME.test(n) && !inFlight.has(n) && !judged.has(n) && !statusFiles.has(`${n}.ok`) && !statusFiles.has(`${n}.error`))
        .sort(archiveOrder);
      const historyPending = [...inFlight.keys(), ...todo].some((n) => n.endsWith('.history'));
      for (const name of todo) {
        if (inFlight.size >= options.processes) break;
        if (historyPending && !name.endsWith('.history')) break;
        const task = store(name).finally(() => {
          judged.set(name, scan);
          inFlight.delete(name);
          nudge();
        });
        inFlight.set(name, task);
      }
      if (todo.length || inFlight.size) idleSince = Date.now();
      else if (Date.now() - idleSince >= options.idleMs) break;
      // A change in either folder, a finished file, or a poll (a watch may miss events).
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
    if (signal?.aborted) summary.ended = 'aborted';
    await Promise.allSettled(inFlight.values());
    return summary;
  } finally {
    for (const w of watchers) w.close();
    // Ended by an error, stores may be under way: their gpg are ended first (they then fail,
    // retryably), and each has ended before the writer lock goes, so none writes on beside the next writer.
    await (await sealers?.catch(() => undefined))?.close();
    await Promise.allSettled(inFlight.values());
    await writerLock.release();
  }
}

/**
 * A verdict file for a shell wrapper (wal-push-async, wal-fetch-async), written whole under a
 * temp name (`.<file>.<pid>.tmp`, which the next process cleared at its start), then renamed:
 * the wrapper never reads half a verdict.
 */
export async function writeStatus(dir: string, file: string, content: string): Promise<void> {
  const temp = path.join(dir, `.${file}.${process.pid}.tmp`);
  await writeFile(temp, content, { mode: 0o600 });
  await rename(temp, path.join(dir, file));
}
