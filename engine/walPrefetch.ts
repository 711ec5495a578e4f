// The WAL a recovery will replay, fetched ahead of it: decrypted into a folder the recovered
// server's restore_command copies from, so replay does not start a process per segment.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../common/config.js';
import type { Repository } from './storage/repository.js';
import { ErrorType } from '../common/types.js';
import { fetchSegment, listWalEntries, readWalEntry, startWalOpening, walEntryRefusal, type WalTrust } from './walArchive.js';
import { segmentOf } from './walHeader.js';

/**
 * How many segments (16 MiB each) a recovery decrypts ahead of replay before its server starts:
 * when its restore_command fetches one at a time (pitr.restoreCommand), and when the
 * asynchronous one's fetcher (bin/wal-fetch-async) goes on from there, which needs only enough
 * for the time it takes to start.
 */
export const PREFETCH_SEGMENTS = { oneAtATime: 64, beforeFetcher: 8 };
/** Segments opened at once. */
const PREFETCH_PROCESSES = 2;

/**
 * Decrypts, ahead of replay and two at a time, the timeline histories and up to `limit`
 * segments from the base backup's start: restore_command then copies a
 * file instead of starting a process per segment. Written by temp name and rename, so a
 * copy never sees half a segment. Only entries `trust` admits are fetched: one refused (planted,
 * or unsigned without allowUnsigned) before a segment this host would replay ends the fetch-ahead
 * with that error; one past the last such segment of its timeline (or a history of a timeline
 * with none) is left out, as wal-fetch would call it absent.
 */
export async function prefetchWal(config: Config, repositories: Repository[], trust: WalTrust, dir: string, timeline: number, startLsn: string, beat: () => void, limit = PREFETCH_SEGMENTS.oneAtATime): Promise<Prefetched> {
  // This attempt's own folder, in the run's private folder (claimDataDirectory proved it ours).
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const first = segmentOf(timeline, startLsn);
  const names = new Set<string>();
  // A repository that cannot be listed now may hold segments the others lack: then the
  // fetch-ahead is never complete, and restore_command asks wal-fetch for what is not here.
  let unlisted = false;
  for (const repository of repositories) {
    const listed = await listWalEntries(repository).catch(() => {
      unlisted = true;
      return [];
    });
    for (const name of listed) names.add(name);
  }
  const histories = [...names].filter((n) => n.endsWith('.history'));
  const archived = [...names]
    .filter((n) => /^[0-9A-F]{24}$/.test(n) && n.slice(0, 8) >= first.slice(0, 8) && n.slice(8) >= first.slice(8))
    .sort((a, b) => a.slice(8).localeCompare(b.slice(8)) || a.localeCompare(b));
  const segments = archived.slice(0, limit);
  const wanted = [...histories, ...segments];
  const queue = [...wanted];
  const fetched = new Set<string>();
  const refused = new Map<string, unknown>();
  const opener = startWalOpening(config, PREFETCH_PROCESSES);
  let failed: { err: unknown } | undefined;
  const fetchNext = async (): Promise<void> => {
    for (let name = queue.shift(); name && !failed; name = queue.shift()) {
      try {
        await fetchSegment(config, repositories, name, path.join(dir, name), trust, { opener });
        fetched.add(name);
      } catch (err) {
        if (!isRefusal(err)) throw err;
        refused.set(name, err);
      }
      beat();
    }
  };
  // When one half fails, the other stops after the file it is on, and is waited for: nothing is
  // written here, nor an opener started, after this returns.
  await Promise.all(
    Array.from({ length: PREFETCH_PROCESSES }, () =>
      fetchNext().catch((err: unknown) => {
        failed ??= { err };
      }),
    ),
  );
  await opener.close();
  if (failed) throw failed.err;
  // An entry refused in every repository that holds it is, to this host, not archived. Past the
  // last segment it would replay (on that timeline), or a history of a timeline none of whose
  // segments it would replay, it is what wal-fetch would call absent too: left out, so that one
  // file planted in one repository cannot stop every recovery. Before an admitted segment it is
  // a hole replay would stop at: the fetch-ahead fails, naming it.
  const admittedLater = async (timeline: string, after: string): Promise<boolean> => {
    const fetchedLater = [...fetched].some((n) => /^[0-9A-F]{24}$/.test(n) && n.slice(0, 8) >= timeline && n.slice(8) > after);
    if (fetchedLater) return true;
    // Beyond what was fetched ahead: read the entries, newest first.
    const beyond = archived.slice(segments.length).filter((n) => n.slice(0, 8) >= timeline && n.slice(8) > after).reverse();
    for (const name of beyond) if (await admittedAnywhere(repositories, name, trust)) return true;
    return false;
  };
  for (const [name, err] of refused) {
    const later = name.endsWith('.history') ? await admittedLater(name.slice(0, 8), '') : await admittedLater(name.slice(0, 8), name.slice(8));
    if (later) throw err;
  }
  return { segments: segments.filter((n) => fetched.has(n)).length, complete: !unlisted && segments.length === archived.length, next: archived[segments.length] };
}

export interface Prefetched {
  /** Segments fetched ahead. */
  segments: number;
  /** Every archived segment from the base backup's start was fetched (and every repository listed). */
  complete: boolean;
  /** The first archived segment after those fetched ahead (where a fetcher goes on), if any. */
  next?: string;
}

/** The refusals of fetchSegment: entries there, none this host would replay. */
function isRefusal(err: unknown): boolean {
  const type = (err as { type?: string })?.type;
  return type === ErrorType.UnsignedBackup || type === ErrorType.BadSignature || type === ErrorType.ManifestDamaged;
}

async function admittedAnywhere(repositories: Repository[], name: string, trust: WalTrust): Promise<boolean> {
  for (const repository of repositories) {
    const entry = await readWalEntry(repository, name).catch(() => undefined);
    if (entry && !walEntryRefusal(entry, repository.name, trust)) return true;
  }
  return false;
}
