// Chaos pass of 2026-11-28 (master 20261128, run seed 1387232448, base backup + repo-readonly):
// the put of base.tar.zst.gpg to the NAS lost the race with the remount to read-only (the
// remount, refused while the file was open for writing, went through once the put closed it
// and before its rename), so the put failed StorageAccessDenied and could not remove its own
// temp file on the read-only share. That temp file is, by design, the leftover sweep's
// (backupctl sweep, which the harness runs once the fault has healed), and the sweep removed
// it; but the harness looked for temp files in every repository before the sweep ran, and
// reported this one as left. A temp file in a repository the fault left unwritable is judged
// after the sweep; one anywhere else at once, as before.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { unfinishedWriteProblems } from '../chaos/invariants.js';
import type { ChaosStack } from '../chaos/stack.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { uploadSweep } from './fixtures/uploadSweep.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'chaos-temp-files-'));
const stack = {
  repositories: { local: path.join(dir, 'local'), nas: path.join(dir, 'nas') },
  cluster: { dataDir: path.join(dir, 'pgdata') },
} as unknown as Pick<ChaosStack, 'repositories' | 'cluster'>;
const BASE = 'base/chaos-128-1387232448/r01a222bd1a16-a1/base.tar.zst.gpg';
const TEMP = `${BASE}.0d2de5f3121f.partial`;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function plant(root: string, relative: string): void {
  mkdirSync(path.dirname(path.join(root, relative)), { recursive: true });
  writeFileSync(path.join(root, relative), 'half of the base backup');
}

/** The sweep the harness runs once the fault has healed: every unfinished write taken as abandoned (uploadAgeHours 0). */
async function sweep(repository: FilesystemRepository): Promise<string[]> {
  const run = uploadSweep({ host: 'chaos-temp-files', repository, repositoryConfig: { type: 'filesystem', path: stack.repositories.nas }, dir, runId: 'c0ffee00-0000-4000-8000-000000000128' });
  return (await run.sweep(0)).details;
}

test('a temp file on the repository the fault left unwritable is the sweep\'s, judged after it; one elsewhere is reported at once', async () => {
  // What the failed put left on the NAS turned read-only, and one on the writable local
  // repository, which the run itself should have removed.
  plant(stack.repositories.nas, TEMP);
  plant(stack.repositories.local, 'base/chaos-128-1387232448/r01a222bd1a16-a1/pg_wal.tar.zst.gpg.0123456789ab.partial');

  // Right after the run, the NAS healed but not yet swept: only the local one is a violation.
  expect(unfinishedWriteProblems(stack, ['nas'])).toEqual(['local: unfinished writes base/chaos-128-1387232448/r01a222bd1a16-a1/pg_wal.tar.zst.gpg.0123456789ab.partial']);
  rmSync(path.join(stack.repositories.local, 'base'), { recursive: true });

  // The sweep removes the NAS's temp file (and says so), and after it nothing is left anywhere.
  const details = await sweep(new FilesystemRepository('nas', stack.repositories.nas));
  expect(details).toEqual([`${path.basename(TEMP)}, an unfinished write of ${BASE}, is gone (removed now or before)`]);
  expect(readdirSync(path.join(stack.repositories.nas, path.dirname(BASE)))).toEqual([]);
  expect(unfinishedWriteProblems(stack)).toEqual([]);
});

test('after the sweep, a temp file it left on the unwritable repository is reported', async () => {
  // Not under our key layout: the sweep leaves another tool's file alone, and the check after it sees it.
  plant(stack.repositories.nas, 'exports/warehouse.parquet.0123456789ab.partial');
  await sweep(new FilesystemRepository('nas', stack.repositories.nas));
  expect(unfinishedWriteProblems(stack, ['nas'])).toEqual([]);
  expect(unfinishedWriteProblems(stack)).toEqual(['nas: unfinished writes exports/warehouse.parquet.0123456789ab.partial']);
});
