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
// - Every temp file found was one leftover in one activity result: 10,000 of them (a share
//   flapping for days, or names planted in it) made a result of 2.2 MB, past Temporal's 2 MB
//   payload limit, and the sweep found nothing at all.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { findUploads, type Findings } from '../engine/leftovers.js';
import { filesUnder, plant } from './fixtures/files.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { DEFAULT_UPLOAD_AGE_HOURS } from '../workflows/sweepRules.js';
import type { Leftover } from '../common/sweepTypes.js';
import { uploadSweep } from './fixtures/uploadSweep.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'attack5-sweep-temp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let roots = 0;
function freshRoot(): string {
  const root = path.join(dir, `nas${++roots}`);
  mkdirSync(root, { recursive: true });
  return root;
}

function activitiesFor(root: string) {
  const run = uploadSweep({ host: 'attack5-sweep-temp', repository: new FilesystemRepository('nas', root), repositoryConfig: { type: 'filesystem', path: root }, dir, runId: 'c0ffee00-0000-4000-8000-000000000005' });
  return {
    find: (uploadAgeHours = DEFAULT_UPLOAD_AGE_HOURS) => run.find(uploadAgeHours),
    act: (leftover: Leftover, uploadAgeHours = DEFAULT_UPLOAD_AGE_HOURS) => run.act(leftover, uploadAgeHours),
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

/**
 * The listing and its findings, made by a process that, unlike root, is refused what a
 * folder's mode refuses (a worker runs as its own user; a mount's lost+found is root's, 0700).
 */
async function findAsUnprivileged(root: string): Promise<Findings> {
  const script = path.join(dir, 'find-uploads.mts');
  writeFileSync(
    script,
    [
      `import { FilesystemRepository } from ${JSON.stringify(path.resolve('engine/storage/filesystem.js'))};`,
      `import { findUploads } from ${JSON.stringify(path.resolve('engine/leftovers.js'))};`,
      `const found = { leftovers: [], notExamined: [] };`,
      `await findUploads([new FilesystemRepository('nas', process.argv[2])], found, Date.now());`,
      `process.stdout.write(JSON.stringify(found));`,
    ].join('\n'),
  );
  const asRoot = process.getuid?.() === 0;
  const user = asRoot ? { uid: 65534, gid: 65534 } : {};
  if (asRoot) {
    chmodSync(dir, 0o755);
    await execa('chown', ['-R', '65534:65534', root]);
  }
  const { stdout } = await execa(process.execPath, ['--import', 'tsx', script, root], { ...user, cwd: path.resolve('.'), env: { ...process.env, TSX_TSCONFIG_PATH: path.resolve('tsconfig.json') } });
  return JSON.parse(stdout) as Findings;
}

test('a folder the worker cannot read outside our folders is not walked; one inside them is reported, and the rest is still examined', async () => {
  const root = freshRoot();
  plant(root, 'wal/000000010000000000000007.zst.gpg.95e4109f68e8.partial', 30);
  plant(root, 'database/backup-database-2026-11-01/r0123456789ab-a1/dump.pgcustom.zst.gpg.4242-0123456789ab.partial', 30);
  plant(root, 'lost+found/#1234', 0, 'what fsck found');
  plant(root, 'exports/private/warehouse.parquet', 0, 'another tool\'s');
  plant(root, 'wal/held-by-someone-else/x', 0, 'not ours to read');
  const chmods = [path.join(root, 'lost+found'), path.join(root, 'exports', 'private'), path.join(root, 'wal', 'held-by-someone-else')];
  for (const folder of chmods) chmodSync(folder, 0o000);
  try {
    const closed = await findAsUnprivileged(root);
    expect(closed.leftovers.map((l) => (l.kind === 'upload' ? l.key : '')).sort()).toEqual([
      'database/backup-database-2026-11-01/r0123456789ab-a1/dump.pgcustom.zst.gpg',
      'wal/000000010000000000000007.zst.gpg',
    ]);
    // Only the unreadable folder of ours is reported: other tools' folders are none of ours.
    expect(closed.notExamined).toHaveLength(1);
    expect(closed.notExamined[0].what).toMatch(/repository nas/);
    expect(`${closed.notExamined[0].what} ${closed.notExamined[0].why}`).toMatch(/held-by-someone-else/);
    expect(`${closed.notExamined[0].what} ${closed.notExamined[0].why}`).not.toMatch(/lost\+found|exports/);
  } finally {
    for (const folder of chmods) chmodSync(folder, 0o700);
  }
}, 60_000);

test('a link in place of one of our folders, or of a temp file, leads the sweep nowhere outside the repository; a linked folder of ours is reported', async () => {
  const root = freshRoot();
  const elsewhere = path.join(dir, 'elsewhere-drills');
  mkdirSync(elsewhere, { recursive: true });
  const victim = path.join(elsewhere, 'report.json.0123456789ab.partial');
  writeFileSync(victim, 'another repository\'s live write');
  utimesSync(victim, new Date(0), new Date(0));
  symlinkSync(elsewhere, path.join(root, 'drills'));
  const target = path.join(dir, 'victim.gpg');
  writeFileSync(target, 'a complete backup elsewhere');
  mkdirSync(path.join(root, 'wal'), { recursive: true });
  symlinkSync(target, path.join(root, 'wal', '000000010000000000000009.zst.gpg.0123456789ab.partial'));

  const found = await sweep(root, 0);
  expect(found).toEqual([]);
  expect(readFileSync(victim, 'utf8')).toBe('another repository\'s live write');
  // The linked folder is reported, for the operator to look at.
  const findings: Findings = { leftovers: [], notExamined: [] };
  await findUploads([new FilesystemRepository('nas', root)], findings, Date.now());
  expect(findings.notExamined).toEqual([{ what: 'unfinished uploads in repository nas, folder drills', why: expect.stringMatching(/symbolic link/) }]);
  expect(readFileSync(target, 'utf8')).toBe('a complete backup elsewhere');

  // A history naming the planted file link: the link goes, never what it points at.
  const { act } = activitiesFor(root);
  await act({ kind: 'upload', repository: 'nas', key: 'wal/000000010000000000000009.zst.gpg', uploadId: '000000010000000000000009.zst.gpg.0123456789ab.partial', tempFile: true, initiated: null, ageHours: 99 });
  expect(readFileSync(target, 'utf8')).toBe('a complete backup elsewhere');
  // And one naming a temp file through the linked folder is refused.
  await expect(act({ kind: 'upload', repository: 'nas', key: 'drills/report.json', uploadId: 'report.json.0123456789ab.partial', tempFile: true, initiated: null, ageHours: 99 })).rejects.toThrow(/symbolic link/);
  expect(existsSync(victim)).toBe(true);
});

test('a temp file written to again after the sweep found it old (its frozen writer woke up) is not removed under the writer', async () => {
  const root = freshRoot();
  const temp = plant(root, 'wal/000000010000000000000007.zst.gpg.95e4109f68e8.partial', 30);
  const { find, act } = activitiesFor(root);
  const [leftover] = await find();
  expect(leftover).toMatchObject({ kind: 'upload', key: 'wal/000000010000000000000007.zst.gpg' });
  // Between the find and the act (the workflow asks Temporal about runs in between), the writer writes.
  writeFileSync(temp, 'half of it, and more', { flag: 'a' });
  const detail = await act(leftover);
  expect(existsSync(temp)).toBe(true);
  expect(detail).toMatch(/written to since/);
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

test('guard: names with spaces, quotes, newlines or other scripts in our folders are no keys of ours, and are left alone', async () => {
  const root = freshRoot();
  const names = ['wal/a b.zst.gpg.0123456789ab.partial', 'wal/"q".zst.gpg.0123456789ab.partial', 'wal/line\nbreak.zst.gpg.0123456789ab.partial', 'wal/sé.zst.gpg.0123456789ab.partial', "drills/it's.json.partial"];
  for (const name of names) plant(root, name, 300);
  expect(await sweep(root, 0)).toEqual([]);
  expect(filesUnder(root)).toEqual([...names].sort());
});

test('thousands of temp files (a flapping NAS, or names planted in the share) do not make the sweep find nothing: the oldest go first, the rest is reported', async () => {
  const root = freshRoot();
  mkdirSync(path.join(root, 'wal'), { recursive: true });
  const planted = 2500;
  for (let i = 0; i < planted; i++) {
    const segment = (0x100000000 + i).toString(16).toUpperCase().padStart(24, '0');
    // The lower the number, the older: the first 1000 are the oldest.
    plant(root, `wal/${segment}.zst.gpg.${i.toString(16).padStart(12, '0')}.partial`, 1000 - i / 10, '');
  }
  const { find } = activitiesFor(root);
  const uploads = await find();
  // One activity result carries every finding (Temporal refuses a payload over 2 MB), and each
  // leftover is one activity in the sweep's history (at most 51,200 events).
  expect(uploads.length).toBeLessThanOrEqual(1000);
  expect(JSON.stringify(uploads).length).toBeLessThan(512 * 1024);
  // The oldest are the ones taken.
  const oldestKept = Math.min(...uploads.map((u) => (u.kind === 'upload' ? u.ageHours ?? 0 : 0)));
  expect(oldestKept).toBeGreaterThan(1000 - 1000 / 10 - 1);
  const findings: Findings = { leftovers: [], notExamined: [] };
  await findUploads([new FilesystemRepository('nas', root)], findings, Date.now());
  expect(findings.notExamined).toEqual([{ what: expect.stringMatching(/1500 more unfinished uploads/), why: expect.stringMatching(/sweep again/) }]);
}, 60_000);
