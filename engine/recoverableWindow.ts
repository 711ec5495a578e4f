// What a point-in-time recovery can start from and reach: the base backups it may start from
// (signed by a trusted key, or with allowUnsigned not signed at all, and never an unsigned one
// newer than the first signed one), the newest WAL segment this host would replay, and the
// one base backup a recovery names.
import { ErrorType } from '../common/types.js';
import type { Config } from '../common/config.js';
import type { BaseBackupManifest, BaseBackupSummary, RecoverableWindow } from '../common/pitrTypes.js';
import { chooseCopy, manifestKey, readManifestCopies, scanCatalog } from './catalog.js';
import { errorText, permanent } from './errors.js';
import { admitted, type Trust, type Verifier } from './manifestSignature.js';
import { noManifest } from './restoreSource.js';
import { sourceVerdict, type ExpectedSource } from './sourceMatch.js';
import type { Repository } from './storage/repository.js';
import { listWalEntries, readWalEntry, walEntryRefusal, walTrustOf } from './walArchive.js';
import { segmentEndLsn } from './walHeader.js';

/** Where the engine says what it left out and why. */
export interface WindowLog {
  warn(message: string, details: Record<string, unknown>): void;
}

/**
 * The base backups in every repository whose manifest is signed by a trusted key (or, with
 * `allowUnsigned`, not signed at all), and the newest archived WAL segment this host would
 * replay: what targets a recovery can reach now. Read-only. Permanent SourceMismatch when the
 * configured cluster is unknown and base backups of several clusters are there.
 */
export async function recoverableWindow(config: Config, repositories: Repository[], verifier: Verifier, expected: ExpectedSource, allowUnsigned: boolean, log: WindowLog): Promise<RecoverableWindow> {
  const bases = new Map<string, BaseBackupSummary>();
  let newest: { segment: string; archivedAt: string } | undefined;
  const walTrust = walTrustOf(config, verifier, allowUnsigned);
  const uncheckedClusters = new Set<string>();
  const unsigned = new Set<string>();
  const { copiesById, damaged, unlisted } = await scanCatalog(repositories, 'base', verifier);
  damaged.forEach((d) => log.warn('base backup manifest skipped', { ...d }));
  unlisted.forEach((u) => log.warn('repository not read for the recoverable window', { repository: u.repository, error: errorText(u.error) }));
  // Every admitted copy's cluster counts toward the refusal below, repository by repository (oldest
  // first in each), not only the copy chosen: copies of one base backup naming two clusters refuse too.
  for (const repository of repositories) {
    [...copiesById.values()]
      .flatMap((copies) => copies.filter((c) => c.repository === repository.name && admitted(c.signature, allowUnsigned)))
      .sort((a, b) => a.manifest.startedAt.localeCompare(b.manifest.startedAt))
      .forEach((c) => {
        if (sourceVerdict({ systemIdentifier: c.manifest.server.systemIdentifier }, expected).kind === 'unchecked') uncheckedClusters.add(c.manifest.server.systemIdentifier);
      });
  }
  for (const [backupId, copies] of copiesById) {
    const choice = chooseCopy(copies, manifestKey('base', backupId), (verdict) => admitted(verdict, allowUnsigned));
    choice.skipped.forEach((skip) => log.warn('base backup copy left out of the recoverable window', { ...skip }));
    if (!choice.chosen) continue;
    const { manifest: m, signature } = choice.chosen;
    // Only the configured cluster's base backups can start its recovery.
    const verdict = sourceVerdict({ systemIdentifier: m.server.systemIdentifier }, expected);
    if (verdict.kind === 'otherCluster') continue;
    bases.set(m.backupId, { backupId: m.backupId, timeline: m.backup.timeline, startLsn: m.backup.startLsn, stopLsn: m.backup.stopLsn, stoppedAt: m.backup.stoppedAt });
    if (signature.state === 'unsigned') unsigned.add(m.backupId);
  }
  // A repository whose base backups cannot be listed now is not read for the window at all (warned once above).
  for (const repository of repositories.filter((r) => !unlisted.some((u) => u.repository === r.name))) {
    try {
      // The newest segment whose entry this host would replay: a planted one (unsigned, or
      // signed by no trusted key) past the archive's end does not stretch the window.
      const segments = (await listWalEntries(repository)).filter((s) => /^[0-9A-F]{24}$/.test(s));
      for (let i = segments.length - 1; i >= 0 && (!newest || segments[i] > newest.segment); i--) {
        const entry = await readWalEntry(repository, segments[i]).catch(() => undefined);
        if (!entry) continue;
        const refusal = walEntryRefusal(entry, repository.name, walTrust);
        if (refusal) {
          log.warn('WAL segment left out of the recoverable window', { repository: repository.name, segment: segments[i], ...refusal });
          continue;
        }
        newest = { segment: segments[i], archivedAt: entry.archivedAt };
        break;
      }
    } catch (err) {
      log.warn('repository not read for the recoverable window', { repository: repository.name, error: errorText(err) });
    }
  }
  // With the cluster unknown (live cluster down, no restore.sourceSystemIdentifier), base
  // backups of several clusters cannot be told apart: refuse rather than start from another's.
  if (uncheckedClusters.size > 1) {
    throw permanent(
      ErrorType.SourceMismatch,
      `base backups of ${uncheckedClusters.size} clusters (system identifiers ${[...uncheckedClusters].join(', ')}) are in the repositories and the configured cluster's identifier is unknown (${expected.unreadable ?? 'not configured'}): set restore.sourceSystemIdentifier`,
    );
  }
  // allowUnsigned admits the base backups made before signing began: never an unsigned one
  // dated after the first signed one (planted: anyone who can write to a repository can
  // make one, and date it just before the target, so that the recovery starts from it).
  const firstSigned = [...bases.values()].filter((b) => !unsigned.has(b.backupId)).sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt))[0];
  if (firstSigned) {
    for (const id of unsigned) {
      if (bases.get(id)!.stoppedAt > firstSigned.stoppedAt) {
        log.warn('unsigned base backup left out of the recoverable window: it is newer than the first signed one', { backupId: id, firstSigned: firstSigned.backupId });
        bases.delete(id);
      }
    }
  }
  const baseBackups = [...bases.values()].sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt));
  return {
    baseBackups,
    earliest: baseBackups[0]?.stoppedAt ?? null,
    latest: newest?.archivedAt ?? null,
    newestSegment: newest?.segment ?? null,
    latestLsn: newest ? segmentEndLsn(newest.segment) : null,
  };
}

/**
 * The manifest a recovery starts from, and the repositories holding it: the first whole copy
 * admitted by `trust`, of the configured cluster. Retryable when a repository cannot be read
 * now (its copy may be the one); permanent BackupNotFound, UnsignedBackup, BadSignature,
 * ManifestDamaged, SourceMismatch.
 */
export async function findBaseBackup(repositories: Repository[], backupId: string, trust: Trust, expected: ExpectedSource, log: WindowLog): Promise<{ manifest: BaseBackupManifest; holders: string[] }> {
  // A damaged copy, an unsigned or wrongly signed one, one naming another backup or differing from the one used is skipped.
  const copies = await readManifestCopies(repositories, 'base', backupId, trust);
  copies.skipped.forEach((s) => log.warn('base backup manifest copy skipped', { ...s }));
  const { manifest, holders } = copies;
  // A repository that cannot be read now is retryable (its copy may be the one), as for a restore.
  if (!manifest) throw noManifest(`base backup ${backupId}`, copies.skipped, trust, 'is in no repository');
  if (copies.signature?.state === 'unsigned') log.warn('base backup is UNSIGNED: admitted because unsigned backups were allowed', { backupId });
  const verdict = sourceVerdict({ systemIdentifier: manifest.server.systemIdentifier }, expected);
  if (verdict.kind === 'otherCluster') {
    throw permanent(ErrorType.SourceMismatch, `base backup ${backupId} ${verdict.reason}: set restore.sourceSystemIdentifier when recovering a cluster that is gone`);
  }
  return { manifest, holders };
}
