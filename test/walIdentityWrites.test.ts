// Temp files the WAL path left in repositories, found by the chaos suite.
// (base backup + pg-restart-immediate): every wal-push created the
// spool's cluster record (wal-cluster.json) again, writing and syncing a temp file only to find
// the record there; PostgreSQL's immediate shutdown killed one in the middle, and its temp file
// stayed in the repository. Now the record is only read once it exists, and a create clears a
// dead creator's temp file once it is old enough to be no live one's.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import type { Repository } from '../engine/storage/repository.js';
import { CLUSTER_IDENTITY_KEY, pushSegment, shipSegments } from '../engine/walArchive.js';
import { ensureKeyPair } from '../client/dev/demoKeys.js';
import { validateConfig, type Config } from '../common/config.js';
import { segmentBytes } from './fixtures/walSegment.js';

let dir: string;
let config: Config;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-walidentity-'));
  const keys = await ensureKeyPair(path.join(dir, 'keys'));
  config = validateConfig(
    {
      host: 'wal-identity',
      database: { url: 'postgres://postgres@127.0.0.1:1/postgres' },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: keys.publicKeyFile },
      logLevel: 'warn',
    },
    'test config',
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function segmentFile(name: string): string {
  const folder = path.join(dir, 'pg_wal');
  mkdirSync(folder, { recursive: true });
  const file = path.join(folder, name);
  writeFileSync(file, segmentBytes(name, 1024 * 1024, 7300000000000000002n));
  return file;
}

test('once the spool records its cluster, a wal-push only reads the record', async () => {
  const inner = new FilesystemRepository('local', path.join(dir, 'local'));
  const creates: string[] = [];
  const spool = Object.assign(Object.create(inner) as Repository, {
    create: (key: string, body: Buffer) => (creates.push(key), inner.create(key, body)),
  });
  await pushSegment(config, [spool], segmentFile('000000010000000000000001'));
  expect(creates).toEqual([CLUSTER_IDENTITY_KEY]);
  await pushSegment(config, [spool], segmentFile('000000010000000000000002'));
  await pushSegment(config, [spool], segmentFile('000000010000000000000003'));
  expect(creates).toEqual([CLUSTER_IDENTITY_KEY]);
});

test("a create clears a dead creator's temp file of the key once it is old, and leaves a fresh one", async () => {
  const root = path.join(dir, 'creates');
  const repository = new FilesystemRepository('nas', root, 60_000);
  mkdirSync(root, { recursive: true });
  const old = path.join(root, 'record.json.4242-0123456789ab.partial');
  const fresh = path.join(root, 'record.json.4343-0123456789ab.partial');
  writeFileSync(old, 'half');
  writeFileSync(fresh, 'half');
  const anHourAgo = new Date(Date.now() - 3_600_000);
  utimesSync(old, anHourAgo, anHourAgo);
  expect(await repository.create('record.json', Buffer.from('{}\n'))).toBe(true);
  expect(readdirSync(root).sort()).toEqual(['record.json', 'record.json.4343-0123456789ab.partial']);
});

// (WAL shipping + repo-readonly): a shipping pass whose put failed on the read-only NAS could not
// remove its own temp file there; the next pass shipped the segment beside it and the temp
// file stayed for good (a put clears others' temp files only once an hour old).
test("shipping a segment clears an earlier attempt's temp file of it in the target", async () => {
  const spool = new FilesystemRepository('local', path.join(dir, 'local'));
  const target = new FilesystemRepository('nas', path.join(dir, 'ship-nas'));
  const objectKey = (await spool.list('wal/')).map((o) => o.key).find((k) => k.startsWith('wal/000000010000000000000001.') && !k.endsWith('.json'))!;
  mkdirSync(path.join(dir, 'ship-nas', 'wal'), { recursive: true });
  const left = path.join(dir, 'ship-nas', `${objectKey}.95e4109f68e8.partial`);
  writeFileSync(left, 'half of it');
  await shipSegments(spool, target);
  const files = readdirSync(path.join(dir, 'ship-nas', 'wal'));
  expect(files.filter((f) => f.endsWith('.partial'))).toEqual([]);
  expect(files).toContain(path.basename(objectKey));
});
