// bin/wal-fetch-async refuses a queue folder that other users may write to (they could plant a
// symlink as fetcher.log or as a queued file's name, and the server's OS user would write through
// it), as bin/wal-push-async refuses such a status folder; nothing is started or written there.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

const SCRIPT = path.resolve('bin/wal-fetch-async');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-fetchqueue-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }));

test('a queue folder others may write to (mode 1777) is refused at once, naming it', async () => {
  const queue = path.join(dir, 'queue');
  mkdirSync(queue);
  chmodSync(queue, 0o1777);
  const run = await execa(SCRIPT, [queue, path.join(dir, 'config.yaml'), '000000010000000000000001', path.join(dir, 'RECOVERYXLOG')], { reject: false, env: { BACKUPCTL_WAL_WAIT: '2' } });
  expect(run.exitCode).toBe(1);
  expect(run.stderr).toContain(`${queue} may be written by other users`);
  expect(readdirSync(queue)).toEqual([]);
});
