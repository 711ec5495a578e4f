// Attack on the filesystem repository with links planted where it writes (README promise 9,
// "Hostile input is refused, never run"; promise 4, "never removes what it did not make"). A
// repository folder is often a share other hosts or users can write (a NAS). The worker runs
// as root; a link it follows while writing lets whoever can write the share truncate or
// overwrite any file on the backup host.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-attack-storage-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

test("the writability check never follows a link planted under its probe's name", async () => {
  const victim = path.join(dir, 'precious.conf');
  writeFileSync(victim, 'a file outside the repository that must survive\n');
  const root = path.join(dir, 'nas');
  mkdirSync(root);
  // The probe's name is predictable: .write-check-<pid>. Plant one for this worker's pid.
  symlinkSync(victim, path.join(root, `.write-check-${process.pid}`));

  const repository = new FilesystemRepository('nas', root);
  await repository.check().catch(() => undefined); // refusing is fine; following is not

  expect(readFileSync(victim, 'utf8')).toBe('a file outside the repository that must survive\n');
});
