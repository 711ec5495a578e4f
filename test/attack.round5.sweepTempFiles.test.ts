// Attack round 5: the sweep of temp files in file repositories (commit 5379356), as a hostile
// operator of the NAS share sees it.
// - A file in our folders whose name ends in `.partial` is not necessarily a temp file of
//   ours: PostgreSQL names its own partial segments `<segment>.partial` (pg_receivewal writes
//   its live segment so, and an idle cluster leaves it untouched for days). The listing took
//   `wal/000000010000000000000005.partial` for an old version's temp file of the key
//   `wal/000000010000000000000005`, a key backupctl never writes, and the sweep removed it.
// - The listing walked the whole share from the repository's root, other tools' trees too, and
//   one folder it could not read (the mount's lost+found, another tool's private folder) made
//   the whole repository "not examined": no temp file in it was ever swept again.
// - The act did not look at the file again: a temp file found old, then written to again
//   (its frozen writer woken up) before the act, was removed under the live writer.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { FilesystemRepository } from '../activities/storage/filesystem.js';
import { createSweepActivities } from '../activities/sweep.js';
import { validateConfig } from '../workers/config.js';
import { decide, DEFAULT_UPLOAD_AGE_HOURS } from '../workflows/sweepRules.js';
import type { FoundLeftovers, Leftover } from '../workflows/sweepTypes.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'attack5-sweep-temp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let roots = 0;
function freshRoot(): string {
  const root = path.join(dir, `nas${++roots}`);
  mkdirSync(root, { recursive: true });
  return root;
}

function plant(root: string, relative: string, ageHours = 0, content = 'half of it'): string {
  const file = path.join(root, relative);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  if (ageHours) {
    const when = new Date(Date.now() - ageHours * 3_600_000);
    utimesSync(file, when, when);
  }
  return file;
}

function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(root, path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)))
    .sort();
}

function activitiesFor(root: string) {
  const config = validateConfig(
    {
      host: 'attack5-sweep-temp',
      database: { url: 'postgresql://nobody@127.0.0.1:1/app' },
      repositories: { nas: { type: 'filesystem', path: root } },
      encryption: { publicKeyFile: path.join(dir, 'unused.asc') },
      signing: { required: false },
      restore: { workDir: path.join(dir, 'work') },
    },
    'test config',
  );
  mkdirSync(path.join(dir, 'work'), { recursive: true });
  const activities = createSweepActivities({ config, repositories: [new FilesystemRepository('nas', root)] });
  const env = new MockActivityEnvironment({ attempt: 1, activityId: '1', workflowExecution: { workflowId: 'sweep', runId: 'c0ffee00-0000-4000-8000-000000000005' } } as Partial<Info>);
  return {
    find: async (uploadAgeHours = DEFAULT_UPLOAD_AGE_HOURS): Promise<Leftover[]> =>
      ((await env.run(activities.findLeftovers, { uploadAgeHours })) as FoundLeftovers).leftovers.filter((l) => l.kind === 'upload'),
    act: async (leftover: Leftover, uploadAgeHours = DEFAULT_UPLOAD_AGE_HOURS): Promise<string | undefined> => {
      const decision = decide(leftover, undefined, { removeRecoveryFolders: false, uploadAgeHours });
      if (decision.act === 'keep') return undefined;
      return ((await env.run(activities.sweepLeftover, { leftover, decision })) as { detail: string }).detail;
    },
  };
}

/** The whole sweep of unfinished writes, as workflows/sweepLeftovers.ts runs it. */
async function sweep(root: string, uploadAgeHours = DEFAULT_UPLOAD_AGE_HOURS): Promise<Leftover[]> {
  const { find, act } = activitiesFor(root);
  const found = await find(uploadAgeHours);
  for (const leftover of found) await act(leftover, uploadAgeHours);
  return found;
}

test("PostgreSQL's own .partial segments in the WAL folder are no temp files of ours, however old; our shipped .partial segment's temp files are", async () => {
  const root = freshRoot();
  // pg_receivewal's live segment (an idle cluster leaves it untouched for days), and one a
  // former archiver copied raw; neither is a key backupctl writes (ours end in .gpg or .json).
  plant(root, 'wal/000000010000000000000005.partial', 30, 'the only copy of the old timeline\'s last WAL');
  plant(root, 'wal/00000001000000000000000A.partial', 300, 'a raw archive of the same kind');
  plant(root, 'wal/000000010000000000000006.0123456789ab.partial', 300, 'another tool\'s temp file, named like ours');
  // Our own shipped .partial segment: its objects stay, their dead writers' temp files go.
  plant(root, 'wal/000000010000000000000007.partial.zst.gpg', 30, 'shipped');
  plant(root, 'wal/000000010000000000000007.partial.json', 30, 'shipped');
  plant(root, 'wal/000000010000000000000007.partial.zst.gpg.95e4109f68e8.partial', 30);
  plant(root, 'wal/000000010000000000000007.partial.json.4242-95e4109f68e8.partial', 30);
  // An older version's temp file (no tag) of a key of ours still goes.
  plant(root, 'wal/000000010000000000000008.zst.gpg.partial', 30);

  const found = await sweep(root);

  expect(found.map((l) => (l.kind === 'upload' ? l.key : '')).sort()).toEqual([
    'wal/000000010000000000000007.partial.json',
    'wal/000000010000000000000007.partial.zst.gpg',
    'wal/000000010000000000000008.zst.gpg',
  ]);
  expect(filesUnder(root)).toEqual([
    'wal/000000010000000000000005.partial',
    'wal/000000010000000000000006.0123456789ab.partial',
    'wal/000000010000000000000007.partial.json',
    'wal/000000010000000000000007.partial.zst.gpg',
    'wal/00000001000000000000000A.partial',
  ]);
  expect(readFileSync(path.join(root, 'wal/000000010000000000000005.partial'), 'utf8')).toBe('the only copy of the old timeline\'s last WAL');
});

test('a history naming a foreign .partial file as an unfinished write of a key we never write removes nothing', async () => {
  const root = freshRoot();
  const segment = plant(root, 'wal/000000010000000000000005.partial', 30, 'PostgreSQL\'s');
  const { act } = activitiesFor(root);
  const forged: Leftover = {
    kind: 'upload',
    repository: 'nas',
    key: 'wal/000000010000000000000005',
    uploadId: '000000010000000000000005.partial',
    tempFile: true,
    initiated: new Date(Date.now() - 30 * 3_600_000).toISOString(),
    ageHours: 30,
  };
  await expect(act(forged)).rejects.toThrow(/not a key backupctl writes/);
  expect(existsSync(segment)).toBe(true);
});

test('guard: a live put whose temp file the sweep removes fails, and publishes nothing', async () => {
  const root = freshRoot();
  const repository = new FilesystemRepository('nas', root);
  const key = 'wal/00000001000000000000000B.zst.gpg';
  const body = new PassThrough();
  const put = repository.put(key, body);
  body.write(Buffer.alloc(64 * 1024, 1));
  // The source stalls; taking every unfinished write as abandoned removes the writer's file.
  for (let i = 0; i < 100 && !(existsSync(path.join(root, 'wal')) && readdirSync(path.join(root, 'wal')).some((n) => n.endsWith('.partial'))); i++) await new Promise((r) => setTimeout(r, 10));
  const found = await sweep(root, 0);
  expect(found).toHaveLength(1);
  expect(readdirSync(path.join(root, 'wal'))).toEqual([]);
  body.end(Buffer.alloc(64 * 1024, 2));
  await expect(put).rejects.toThrow();
  expect(readdirSync(path.join(root, 'wal'))).toEqual([]);
});

test('guard: a temp file last written "in the future" (a NAS clock ahead) is kept, and reported with its negative age', async () => {
  const root = freshRoot();
  const temp = plant(root, 'wal/00000001000000000000000C.zst.gpg.95e4109f68e8.partial', -48);
  const found = await sweep(root);
  expect(found).toHaveLength(1);
  expect(found[0]).toMatchObject({ kind: 'upload' });
  expect((found[0] as { ageHours: number }).ageHours).toBeLessThan(0);
  expect(existsSync(temp)).toBe(true);
});
