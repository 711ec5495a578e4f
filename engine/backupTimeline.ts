// Every complete backup of ours in the catalog, database dumps and base backups alike, with its
// date, its stored bytes and the repositories holding it: the dashboard's timeline, and the
// stored size it accumulates. Only what the manifests say: a backup already deleted is not
// here, and WAL is not a backup of its own.
import { chooseCopy, manifestKey, scanCatalog, type Component } from './catalog.js';
import type { Verifier } from './manifestSignature.js';
import { sourceVerdict, type ExpectedSource } from './sourceMatch.js';
import type { Repository } from './storage/repository.js';

export interface TimelineEntry {
  component: Component;
  backupId: string;
  finishedAt: string;
  /** The bytes of one copy: every object its manifest lists. */
  bytes: number;
  /** Repositories holding a whole copy. */
  foundIn: string[];
  /** What its manifest's signature proves: an unsigned or wrongly signed backup is never used. */
  signature: 'signed' | 'unsigned' | 'bad-signature';
}

/** Oldest first. A repository that cannot be listed is passed over (status reports it). */
export async function backupTimeline(repositories: Repository[], verifier: Verifier, expected: ExpectedSource): Promise<TimelineEntry[]> {
  const entries: TimelineEntry[] = [];
  for (const component of ['database', 'base'] as const) {
    const { copiesById } = await scanCatalog(repositories, component, verifier);
    for (const [backupId, copies] of copiesById) {
      const choice = chooseCopy(copies, manifestKey(component, backupId), () => true);
      if (!choice.chosen) continue;
      const m = choice.chosen.manifest;
      const source = 'source' in m ? { database: m.source.database, systemIdentifier: m.source.systemIdentifier ?? undefined } : { systemIdentifier: m.server.systemIdentifier };
      // Another database's or cluster's backups (a shared repository) are not ours to show.
      if (!['match', 'unchecked', 'unrecorded'].includes(sourceVerdict(source, expected).kind)) continue;
      entries.push({
        component,
        backupId,
        finishedAt: m.finishedAt,
        bytes: m.objects.reduce((sum, o) => sum + o.bytes, 0),
        foundIn: choice.holders,
        signature: choice.chosen.signature.state,
      });
    }
  }
  return entries.sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
}
