// A filesystem repository's read of an object swapped for a FIFO or a link between the check of
// the key and the open (anyone who can write to the share can): the open must neither block for
// ever on the FIFO (a thread of the worker's small pool held until someone writes to it: four
// such reads and every file operation of the worker waits) nor follow the link out of the
// repository. Integration project only because mkfifo is a child process.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ErrorType } from '../common/types.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';

let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'fs-get-swap-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A repository whose object is swapped by `swap` right after get's check of it. */
class Swapped extends FilesystemRepository {
  swap?: (file: string) => Promise<void> | void;
  override async stat(key: string) {
    const found = await super.stat(key);
    const swap = this.swap;
    this.swap = undefined;
    await swap?.(path.join(this.root, ...key.split('/')));
    return found;
  }
}

const key = 'database/20261101_000000-aaaaaaaa/dump.pgcustom.zst.gpg';

function repository(): Swapped {
  const repo = new Swapped('nas', path.join(dir, 'nas'));
  mkdirSync(path.join(repo.root, 'database', '20261101_000000-aaaaaaaa'), { recursive: true });
  writeFileSync(path.join(repo.root, key), 'dump bytes');
  return repo;
}

test('swapped for a FIFO after the check: refused at once, not an open that waits for a writer', async () => {
  const repo = repository();
  let fifo = '';
  repo.swap = async (file) => {
    unlinkSync(file);
    await execa('mkfifo', [file]);
    fifo = file;
  };
  try {
    await expect(repo.get(key)).rejects.toMatchObject({ type: ErrorType.CopyMissing });
  } finally {
    // An open left waiting on it (the defect) is released by a writer.
    if (fifo) await execa('sh', ['-c', `exec 3<>"${fifo}"; echo > "${fifo}"`], { timeout: 5000, reject: false });
  }
});

test('swapped for a link to /dev/zero after the check: not followed', async () => {
  const repo = repository();
  repo.swap = (file) => {
    unlinkSync(file);
    symlinkSync('/dev/zero', file);
  };
  await expect(repo.get(key)).rejects.toBeDefined();
});
