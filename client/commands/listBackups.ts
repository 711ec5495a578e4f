// `backupctl backups list`: the catalog, read from the manifests in every repository and
// merged by backup id, so a backup missing from one repository shows it. Only backups of the
// configured source (database and cluster) are listed as ours; the others in a shared
// repository, and damaged manifests, are listed apart. Every backup says whether its manifest
// is signed by a trusted key; unsigned and wrongly signed ones are marked.
import type { Verifier } from '../../engine/manifestSignature.js';
import type { ExpectedSource } from '../../engine/sourceMatch.js';
import type { Repository } from '../../engine/storage/repository.js';
import { formatBytes, type Printer } from '../output.js';
import { repositoryStats } from '../../engine/repositoryStats.js';
import { storageLines } from './storageStats.js';

export { readCatalog, type Catalog, type CatalogEntry, type LastVerification, type OtherSourceEntry } from '../../engine/catalogView.js';
import { readCatalog, type CatalogEntry, type LastVerification } from '../../engine/catalogView.js';

export function describeLastVerification(v: LastVerification | undefined): string {
  if (!v) return 'never';
  return `${v.ok ? 'ok' : 'FAILED'} ${v.finishedAt}${v.copies ? `, ${v.copies.summary}` : ''}`;
}

/** What a backup's signature means for its use, for a row of the list; nothing for a signed one. */
export function signatureNote(entry: Pick<CatalogEntry, 'signature' | 'signatureProblem'>): string {
  if (entry.signature === 'unsigned') return '  UNSIGNED (never latest; restored only with --allow-unsigned)';
  if (entry.signature === 'bad-signature') return `  BAD SIGNATURE (never used): manifest ${entry.signatureProblem ?? ''}`;
  return '';
}

/** Exit 1 when a repository could not be read (for the catalog or its statistics), a manifest copy is damaged or a backup is wrongly signed. */
export async function runListBackups(repositories: Repository[], out: Printer, verifier: Verifier, expected?: ExpectedSource): Promise<number> {
  const { entries, otherSources, damaged, errors } = await readCatalog(repositories, verifier, expected);
  // What each repository holds (every component: dumps, base backups, WAL), and how soon it is full.
  const storage = await repositoryStats(repositories, { verifier });
  out.result({ backups: entries, otherSources, damaged, errors, storage }, () => {
    const rows = entries.flatMap((e) => [
      `${e.finishedAt}  ${e.backupId}  ${e.database}  ${formatBytes(e.bytes)}  in: ${e.foundIn.join(',')}  verified: ${describeLastVerification(e.lastVerification)}${
        e.sourceMatch === 'match' ? '' : e.sourceMatch === 'unrecorded' ? '  (no cluster recorded: restore by id only)' : '  (cluster not checked)'
      }${signatureNote(e)}`,
      ...(e.lastVerification?.copies?.problems ?? []).map((p) => `    damaged copy ${p}`),
    ]);
    if (!rows.length) rows.push(emptyCatalog(repositories.length, errors.length));
    return [
      ...rows,
      ...otherSources.map((o) => `not ours: ${o.backupId} ${o.reason}; in ${o.foundIn.join(',')}`),
      ...damaged.map((d) => `DAMAGED: ${d.reason}`),
      ...errors.map((e) => `error reading ${e.repository}: ${e.error}`),
      ...storageLines(storage),
    ].join('\n');
  });
  return errors.length || damaged.length || entries.some((e) => e.signature === 'bad-signature') || storage.some((s) => !s.reachable) ? 1 : 0;
}

/** An empty list says why: "no backups yet" only when every repository was read. */
function emptyCatalog(repositories: number, unreadable: number): string {
  if (!unreadable) return 'no backups yet';
  if (unreadable === repositories) return `no repository could be read (${unreadable} of ${repositories}): whether backups exist is unknown`;
  return `no backups in the ${repositories - unreadable} repositories that could be read; ${unreadable} could not be read`;
}
