// The WAL a recovery will replay, fetched ahead of it: decrypted into a folder the recovered
// server's restore_command copies from, so replay does not start a process per segment.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../common/config.js';
import type { Repository } from './storage/repository.js';
import { fetchSegment, listWalEntries, type WalTrust } from './walArchive.js';
import { segmentOf } from './walHeader.js';

/** How many segments (16 MiB each) a recovery decrypts ahead of replay. */
export const PREFETCH_SEGMENTS = 64;

/**
 * Decrypts, ahead of replay and two at a time, the timeline histories and up to
 * PREFETCH_SEGMENTS segments from the base backup's start: restore_command then copies a
 * file instead of starting a process per segment. Written by temp name and rename, so a
 * copy never sees half a segment. Only entries `trust` admits are fetched: one refused (planted,
 * or unsigned without allowUnsigned) ends the fetch-ahead with that error.
 */
export async function prefetchWal(config: Config, repositories: Repository[], trust: WalTrust, dir: string, timeline: number, startLsn: string, beat: () => void): Promise<{ segments: number; complete: boolean }> {
  // This attempt's own folder, in the run's private folder (claimDataDirectory proved it ours).
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const first = segmentOf(timeline, startLsn);
  const names = new Set<string>();
  for (const repository of repositories) {
    for (const name of await listWalEntries(repository).catch(() => [])) names.add(name);
  }
  const histories = [...names].filter((n) => n.endsWith('.history'));
  const archived = [...names]
    .filter((n) => /^[0-9A-F]{24}$/.test(n) && n.slice(0, 8) >= first.slice(0, 8) && n.slice(8) >= first.slice(8))
    .sort((a, b) => a.slice(8).localeCompare(b.slice(8)) || a.localeCompare(b));
  const segments = archived.slice(0, PREFETCH_SEGMENTS);
  const wanted = [...histories, ...segments];
  const queue = [...wanted];
  const fetchNext = async (): Promise<void> => {
    for (let name = queue.shift(); name; name = queue.shift()) {
      await fetchSegment(config, repositories, name, path.join(dir, name), trust);
      beat();
    }
  };
  await Promise.all([fetchNext(), fetchNext()]);
  return { segments: segments.length, complete: segments.length === archived.length };
}
