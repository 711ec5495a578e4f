// One conformance suite for every Repository (restic's backend test suite): the same
// contract checked against a directory and a real S3 server (SeaweedFS), plus what only one
// kind can get wrong (file modes and a full disk; buckets, credentials, endpoints).
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import {
  S3Client,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectRetentionCommand,
  ListObjectVersionsCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { EngineError } from '../engine/errors.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { openRepository } from '../engine/storage/index.js';
import { removeObjects, type Repository } from '../engine/storage/repository.js';
import { freePort } from './fixtures/ports.js';
import { startS3Server, type S3Server } from './fixtures/seaweedfs.js';

const MiB = 1024 * 1024;
const BUCKET = 'conformance';
const PREFIX = 'p/';

/** What the shared tests need to see behind a repository's back. */
interface Harness {
  repo: Repository;
  /** The same place, for which every unfinished write is old enough to be a dead writer's. */
  staleRepo: Repository;
  /** Resolves once an unfinished put of key has reached the backend (a partial file, an open upload). */
  waitForPartial(key: string): Promise<void>;
  /** Leaves what a worker killed in the middle of a put of key leaves behind. */
  leaveInterruptedAttempt(key: string): Promise<void>;
  /** How many leftovers of unfinished puts of key the backend holds. */
  partials(key: string): Promise<number>;
}

let scratch: string;
let s3: S3Server;
const savedEnv: Record<string, string | undefined> = {};

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'backupctl-storage-test-'));
  s3 = await startS3Server();
  await s3.createBucket(BUCKET);
  // openRepository's S3Client takes its credentials from the SDK's default chain, which reads
  // process.env; endpoint and region come from the env it is given.
  for (const [name, value] of Object.entries(s3.env)) {
    savedEnv[name] = process.env[name];
    process.env[name] = value;
  }
});

afterAll(async () => {
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await s3?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

function filesystemHarness(root: string): Harness {
  const fileOf = (key: string) => path.join(root, ...key.split('/'));
  /** Every put writes through a name of its own: <file>.<tag>.partial (older versions: <file>.partial). */
  const partialFiles = async (key: string) => {
    const base = path.basename(fileOf(key));
    const names = await readdir(path.dirname(fileOf(key))).catch(() => [] as string[]);
    return names.filter((n) => n.startsWith(`${base}.`) && n.endsWith('.partial')).map((n) => path.join(path.dirname(fileOf(key)), n));
  };
  return {
    repo: new FilesystemRepository('local', root),
    staleRepo: new FilesystemRepository('local', root, 0),
    waitForPartial: (key) =>
      eventually(`a partial file for ${key}`, async () => {
        for (const file of await partialFiles(key)) if (((await stat(file).catch(() => undefined))?.size ?? 0) > 0) return true;
        return false;
      }),
    async leaveInterruptedAttempt(key) {
      await mkdir(path.dirname(fileOf(key)), { recursive: true });
      await writeFile(`${fileOf(key)}.0123456789ab.partial`, 'half an object from a worker that was killed');
    },
    partials: async (key) => (await partialFiles(key)).length,
  };
}

function s3Harness(): Harness {
  const uploadsOf = async (key: string) => {
    const listing = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: PREFIX + key }));
    return (listing.Uploads ?? []).filter((upload) => upload.Key === PREFIX + key);
  };
  return {
    repo: openRepository('offsite', { type: 's3', bucket: BUCKET, prefix: PREFIX, partSizeMiB: 5 }, s3.env),
    staleRepo: openRepository('offsite', { type: 's3', bucket: BUCKET, prefix: PREFIX, partSizeMiB: 5 }, s3.env, { staleUploadMs: 0 }),
    waitForPartial: (key) => eventually(`an open multipart upload for ${key}`, async () => (await uploadsOf(key)).length > 0),
    async leaveInterruptedAttempt(key) {
      const { UploadId } = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: PREFIX + key }));
      await s3.client.send(new UploadPartCommand({ Bucket: BUCKET, Key: PREFIX + key, UploadId, PartNumber: 1, Body: randomBytes(5 * MiB) }));
    },
    partials: async (key) => (await uploadsOf(key)).length,
  };
}

const kinds: [string, () => Harness][] = [
  ['filesystem', () => filesystemHarness(path.join(scratch, 'filesystem-repo'))],
  ['s3', () => s3Harness()],
];

describe.each(kinds)('%s repository conformance', (_kind, makeHarness) => {
  let h: Harness;
  beforeAll(() => {
    h = makeHarness();
  });

  test('check() passes on a usable repository', async () => {
    await expect(h.repo.check()).resolves.toBeUndefined();
  });

  test('put, stat and get round-trip a multi-part-sized stream byte for byte', async () => {
    const source = randomStream(20 * MiB);
    const info = await h.repo.put('roundtrip/big.bin', source.stream);
    expect(info).toEqual({ key: 'roundtrip/big.bin', bytes: 20 * MiB });
    expect(await h.repo.stat('roundtrip/big.bin')).toEqual({ key: 'roundtrip/big.bin', bytes: 20 * MiB });
    expect(await sha256Of(await h.repo.get('roundtrip/big.bin'))).toBe(source.sha256());
  });

  test('small and empty objects round-trip too', async () => {
    const small = Buffer.from('{"manifest": "Zoë 🎓"}\n');
    expect(await h.repo.put('roundtrip/small.json', Readable.from([small]), { contentLength: small.length })).toEqual({ key: 'roundtrip/small.json', bytes: small.length });
    expect(await bufferOf(await h.repo.get('roundtrip/small.json'))).toEqual(small);

    expect(await h.repo.put('roundtrip/empty', Readable.from([]))).toEqual({ key: 'roundtrip/empty', bytes: 0 });
    expect(await h.repo.stat('roundtrip/empty')).toEqual({ key: 'roundtrip/empty', bytes: 0 });
    expect((await bufferOf(await h.repo.get('roundtrip/empty'))).length).toBe(0);
  });

  test('an object is invisible while its put is still running', async () => {
    const key = 'inflight/object.bin';
    const body = new PassThrough();
    const first = randomBytes(6 * MiB);
    const last = randomBytes(MiB);
    const put = h.repo.put(key, body);
    // Handled here so that a failed expectation below does not also leave an unhandled rejection.
    put.catch(() => undefined);
    body.write(first);
    try {
      await h.waitForPartial(key);
      expect(await h.repo.stat(key)).toBeUndefined();
      expect(await h.repo.list('inflight/')).toEqual([]);
      await expect(h.repo.get(key)).rejects.toMatchObject({ type: 'CopyMissing' });
    } catch (err) {
      body.destroy();
      throw err;
    }

    body.end(last);
    expect(await put).toEqual({ key, bytes: 7 * MiB });
    expect(await h.repo.list('inflight/')).toEqual([{ key, bytes: 7 * MiB }]);
    expect(await sha256Of(await h.repo.get(key))).toBe(sha256(Buffer.concat([first, last])));
    expect(await h.partials(key)).toBe(0);
  });

  test('a put whose source fails midway leaves nothing visible and nothing behind', async () => {
    const key = 'failed/object.bin';
    const body = new PassThrough();
    const put = h.repo.put(key, body);
    put.catch(() => undefined);
    body.write(randomBytes(6 * MiB));
    await h.waitForPartial(key).finally(() => body.destroy(new Error('pg_dump died')));

    const failure = await failureOf(put);
    expect(failure.message).toMatch(/pg_dump died/);
    expect(await h.repo.stat(key)).toBeUndefined();
    expect(await h.repo.list('failed/')).toEqual([]);
    expect(await h.partials(key)).toBe(0);
  });

  test('a retry of the same key replaces the earlier content; it clears a dead writer\'s leftovers, never a possibly live one\'s', async () => {
    const key = 'retry/object.bin';
    await h.repo.put(key, randomStream(11 * MiB).stream);
    const second = randomStream(3 * MiB);
    expect(await h.repo.put(key, second.stream)).toEqual({ key, bytes: 3 * MiB });
    expect(await h.repo.stat(key)).toEqual({ key, bytes: 3 * MiB });
    expect(await sha256Of(await h.repo.get(key))).toBe(second.sha256());

    await h.leaveInterruptedAttempt(key);
    expect(await h.partials(key)).toBe(1);
    // Young: it may be a newer attempt still writing, while this put is a stale one's.
    const third = randomStream(MiB + 17);
    await h.repo.put(key, third.stream);
    expect(await sha256Of(await h.repo.get(key))).toBe(third.sha256());
    expect(await h.partials(key)).toBe(1);
    // Old enough to be a dead writer's: cleared.
    const fourth = randomStream(2 * MiB);
    await h.staleRepo.put(key, fourth.stream);
    expect(await sha256Of(await h.repo.get(key))).toBe(fourth.sha256());
    expect(await h.partials(key)).toBe(0);
  });

  test('two writers of one key never destroy each other\'s write: each stores whole, the last rename wins', async () => {
    const key = 'racing/object.bin';
    const slow = new PassThrough();
    const first = h.repo.put(key, slow);
    // More than a part, so that S3 has an upload open.
    slow.write(randomBytes(6 * MiB));
    await h.waitForPartial(key);
    // A second writer of the same key (a newer attempt) comes and goes while the first still writes.
    const second = randomStream(3 * MiB);
    expect(await h.repo.put(key, second.stream)).toEqual({ key, bytes: 3 * MiB });
    expect(await sha256Of(await h.repo.get(key))).toBe(second.sha256());
    slow.end(randomBytes(MiB));
    expect(await first).toEqual({ key, bytes: 7 * MiB });
    expect(await h.repo.stat(key)).toEqual({ key, bytes: 7 * MiB });
    await h.repo.remove(key);
    expect(await h.partials(key)).toBe(0);
  });

  test('list returns complete objects under a prefix, in byte order of their keys', async () => {
    // Punctuation and case sort differently by byte and by locale; keys must come back in
    // byte order, the order S3 itself lists in, on every host whatever its locale.
    const keys = ['list/b/2', 'list/a', 'list/b/10', 'list/B', 'list/a-1', 'list/a.1', 'list/a_1', 'list/ab', 'list/Z9'];
    for (const [i, key] of keys.entries()) await h.repo.put(key, Readable.from([Buffer.alloc(i + 1, i)]));
    await h.repo.put('listing/not-under-list-slash', Readable.from([Buffer.from('x')]));
    await h.leaveInterruptedAttempt('list/c-unfinished');
    try {
      const expected = [...keys].sort(byCodeUnits).map((key) => ({ key, bytes: keys.indexOf(key) + 1 }));
      expect(await h.repo.list('list/')).toEqual(expected);
      expect((await h.repo.list('list/b/')).map((o) => o.key)).toEqual(['list/b/10', 'list/b/2']);
      expect((await h.repo.list('list/a')).map((o) => o.key)).toEqual(['list/a', 'list/a-1', 'list/a.1', 'list/a_1', 'list/ab']);
      expect((await h.repo.list('lis')).map((o) => o.key)).toEqual([...expected.map((o) => o.key), 'listing/not-under-list-slash']);
      expect(await h.repo.list('nothing-here/')).toEqual([]);
      // Only keys before a given one (the whole key): the listing stops there.
      expect((await h.repo.list('list/', { before: 'list/a.1' })).map((o) => o.key)).toEqual(['list/B', 'list/Z9', 'list/a', 'list/a-1']);
      expect(await h.repo.list('list/', { before: 'list/' })).toEqual([]);
    } finally {
      await h.repo.remove('list/c-unfinished');
    }
  });

  test('remove is idempotent and also clears an unfinished attempt', async () => {
    await expect(h.repo.remove('remove/never-existed')).resolves.toBeUndefined();

    await h.repo.put('remove/object', Readable.from([Buffer.from('bye')]));
    await h.repo.remove('remove/object');
    expect(await h.repo.stat('remove/object')).toBeUndefined();
    expect(await h.repo.list('remove/')).toEqual([]);
    await expect(h.repo.remove('remove/object')).resolves.toBeUndefined();

    await h.leaveInterruptedAttempt('remove/unfinished');
    await h.repo.remove('remove/unfinished');
    expect(await h.partials('remove/unfinished')).toBe(0);
  });

  test('removeObjects removes many keys (S3: DeleteObjects, 1,000 a request), a key already gone is no failure, the rest stay, and no empty folder is left', async () => {
    const keys = Array.from({ length: 1003 }, (_, i) => `many/b${i % 3}/k${String(i).padStart(4, '0')}`);
    for (let i = 0; i < keys.length; i += 25) await Promise.all(keys.slice(i, i + 25).map((key) => h.repo.put(key, Readable.from([Buffer.from(key)]), { contentLength: key.length })));
    await h.repo.put('many/keep/this', Readable.from([Buffer.from('stays')]));
    const doomed = [...keys, 'many/b0/never-existed'];
    const send = jest.spyOn(S3Client.prototype, 'send');
    const progress: number[] = [];
    try {
      expect(await removeObjects(h.repo, doomed, { onProgress: (n) => progress.push(n) })).toEqual({ failed: [] });
      if (h.repo.kind === 's3') {
        // 1,004 keys: two requests, and nothing else.
        expect(send.mock.calls.map(([command]) => command.constructor.name)).toEqual(['DeleteObjectsCommand', 'DeleteObjectsCommand']);
      }
    } finally {
      send.mockRestore();
    }
    expect(progress.at(-1)).toBe(doomed.length);
    expect((await h.repo.list('many/')).map((o) => o.key)).toEqual(['many/keep/this']);
    if (h.repo.kind === 'filesystem') expect(await readdir(path.join(scratch, 'filesystem-repo', 'many'))).toEqual(['keep']);
    await expect(removeObjects(h.repo, ['many/../escape'])).rejects.toThrow(/unsafe storage key/);
  });

  test('create stores an object only where none is, and of racing creators exactly one wins', async () => {
    expect(await h.repo.create('create/claim.json', Buffer.from('first'))).toBe(true);
    expect(await h.repo.create('create/claim.json', Buffer.from('second'))).toBe(false);
    expect((await bufferOf(await h.repo.get('create/claim.json'))).toString()).toBe('first');

    await h.repo.put('create/existing', Readable.from([Buffer.from('put first')]));
    expect(await h.repo.create('create/existing', Buffer.from('x'))).toBe(false);
    expect((await bufferOf(await h.repo.get('create/existing'))).toString()).toBe('put first');

    const racers = await Promise.all(Array.from({ length: 8 }, (_, i) => h.repo.create('create/race.json', Buffer.from(`racer ${i}`))));
    expect(racers.filter(Boolean)).toHaveLength(1);
    const winner = racers.indexOf(true);
    expect((await bufferOf(await h.repo.get('create/race.json'))).toString()).toBe(`racer ${winner}`);
    expect((await h.repo.list('create/')).map((o) => o.key)).toEqual(['create/claim.json', 'create/existing', 'create/race.json']);
  });

  test('get of a missing key fails with a non-retryable CopyMissing', async () => {
    const failure = await failureOf(h.repo.get('missing/object'));
    expect(failure).toBeInstanceOf(EngineError);
    expect(failure).toMatchObject({ type: 'CopyMissing', nonRetryable: true });
  });

  test('keys that could escape the repository are refused', async () => {
    for (const key of ['../escape', '/absolute', 'a//b', 'a/./b', 'a/../../b', '', 'space in key']) {
      await expect(h.repo.put(key, Readable.from([Buffer.from('x')]))).rejects.toThrow(/unsafe storage key/);
    }
    expect(existsSync(path.join(scratch, 'escape'))).toBe(false);
  });
});

describe('filesystem repository', () => {
  test('creates folders 0700 and files 0600, and leaves no .partial file behind', async () => {
    const root = path.join(scratch, 'modes-repo');
    const repo = new FilesystemRepository('local', root);
    await repo.put('db/2026/11/dump.pgc.zst.gpg', Readable.from([randomBytes(1000)]));
    await failureOf(repo.put('db/2026/11/failed.bin', failingStream(2 * MiB)));

    for (const dir of [root, 'db', 'db/2026', 'db/2026/11'].map((p) => path.resolve(root, p))) {
      expect({ dir, mode: (await stat(dir)).mode & 0o777 }).toEqual({ dir, mode: 0o700 });
    }
    expect((await stat(path.join(root, 'db/2026/11/dump.pgc.zst.gpg'))).mode & 0o777).toBe(0o600);
    expect(await filesUnder(root)).toEqual(['db/2026/11/dump.pgc.zst.gpg']);
  });

  test('the conformance run left no .partial file anywhere', async () => {
    const leftovers = (await filesUnder(path.join(scratch, 'filesystem-repo'))).filter((file) => file.endsWith('.partial'));
    expect(leftovers).toEqual([]);
  });

  const tmpfs = probeTmpfs();
  (tmpfs.ok ? test : test.skip)(
    `a full disk fails the put with a non-retryable DiskFull and leaves no partial file${tmpfs.ok ? '' : ` (SKIPPED: ${tmpfs.reason})`}`,
    async () => {
      const mountPoint = await mkdtemp(path.join(os.tmpdir(), 'backupctl-full-disk-'));
      mount(mountPoint, '2m');
      try {
        const repo = new FilesystemRepository('nas', path.join(mountPoint, 'repo'));
        await repo.check();
        const failure = await failureOf(repo.put('db/too-big.bin', randomStream(4 * MiB).stream));
        expect(failure).toBeInstanceOf(EngineError);
        expect(failure).toMatchObject({ type: 'DiskFull', nonRetryable: true });
        expect(await filesUnder(mountPoint)).toEqual([]);
        expect(await repo.stat('db/too-big.bin')).toBeUndefined();
        // The failed attempt gave its space back: a small object still fits.
        await repo.put('db/small.bin', Readable.from([randomBytes(MiB)]));
        expect(await filesUnder(mountPoint)).toEqual(['repo/db/small.bin']);
      } finally {
        spawnSync('umount', [mountPoint]);
        await rm(mountPoint, { recursive: true, force: true });
      }
    },
  );
});

describe('S3 repository', () => {
  test('list gives each object\'s ETag when asked (a single PUT\'s: the MD5 of its content), and stops at `before` across pages', async () => {
    const repo = s3Harness().repo;
    const body = Buffer.from('{"manifest": true}');
    await repo.put('etag/manifest.json', Readable.from([body]), { contentLength: body.length });
    const [listed] = await repo.list('etag/', { versions: true });
    expect(listed).toEqual({ key: 'etag/manifest.json', bytes: body.length, version: `"${createHash('md5').update(body).digest('hex')}"` });
    expect((await repo.list('etag/'))[0]).toEqual({ key: 'etag/manifest.json', bytes: body.length });
    // 2,100 keys: three pages; keys before the 1,050th come back whole, none after.
    const names = Array.from({ length: 2100 }, (_, i) => `pages/${String(i).padStart(5, '0')}`);
    for (let i = 0; i < names.length; i += 100) await Promise.all(names.slice(i, i + 100).map((key) => s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}${key}`, Body: 'x' }))));
    expect((await repo.list('pages/', { before: names[1050] })).map((o) => o.key)).toEqual(names.slice(0, 1050));
    expect(await repo.list('pages/')).toHaveLength(2100);
  });

  test('list stays inside the configured prefix', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'list/outside-the-prefix', Body: 'x' }));
    const repo = s3Harness().repo;
    expect((await repo.list('list/')).map((o) => o.key)).not.toContain('list/outside-the-prefix');
    expect((await repo.list('')).every((o) => !o.key.startsWith(PREFIX))).toBe(true);
  });

  test('Object Lock: every object put is retained under the mode until the configured days; a delete hides it, its data stays, and its version cannot be destroyed', async () => {
    await s3.client.send(new CreateBucketCommand({ Bucket: 'locked-bucket', ObjectLockEnabledForBucket: true }));
    const repo = openRepository('offsite', { type: 's3', bucket: 'locked-bucket', prefix: 'host', partSizeMiB: 5, objectLock: { mode: 'COMPLIANCE', days: 30 } }, s3.env);
    const before = Date.now();
    await repo.put('database/b1/manifest.json', Readable.from([Buffer.from('{}')]), { contentLength: 2 });
    const big = randomStream(12 * MiB);
    await repo.put('database/b1/dump.pgcustom.zst.gpg', big.stream);
    expect(await sha256Of(await repo.get('database/b1/dump.pgcustom.zst.gpg'))).toBe(big.sha256());
    for (const key of ['database/b1/manifest.json', 'database/b1/dump.pgcustom.zst.gpg']) {
      const { Retention } = await s3.client.send(new GetObjectRetentionCommand({ Bucket: 'locked-bucket', Key: `host/${key}` }));
      expect(Retention?.Mode).toBe('COMPLIANCE');
      const until = Retention!.RetainUntilDate!.getTime();
      expect(until).toBeGreaterThanOrEqual(before + 30 * 86_400_000 - 1000);
      expect(until).toBeLessThanOrEqual(Date.now() + 30 * 86_400_000 + 1000);
    }
    expect(await removeObjects(repo, ['database/b1/manifest.json', 'database/b1/dump.pgcustom.zst.gpg'])).toEqual({ failed: [] });
    expect(await repo.list('database/')).toEqual([]);
    const { Versions } = await s3.client.send(new ListObjectVersionsCommand({ Bucket: 'locked-bucket', Prefix: 'host/' }));
    expect(Versions?.map((v) => v.Key).sort()).toEqual(['host/database/b1/dump.pgcustom.zst.gpg', 'host/database/b1/manifest.json']);
    await expect(s3.client.send(new DeleteObjectCommand({ Bucket: 'locked-bucket', Key: Versions![0].Key, VersionId: Versions![0].VersionId }))).rejects.toThrow(/Access Denied/i);
  });

  test('a missing bucket fails check() and put with a non-retryable BucketMissing', async () => {
    const repo = openRepository('offsite', { type: 's3', bucket: 'no-such-bucket', prefix: PREFIX, partSizeMiB: 5 }, s3.env);
    for (const attempt of [() => repo.check(), () => repo.put('x/y', Readable.from([Buffer.from('x')]))]) {
      const failure = await failureOf(attempt());
      expect(failure).toBeInstanceOf(EngineError);
      expect(failure).toMatchObject({ type: 'BucketMissing', nonRetryable: true });
    }
  });

  test.each([
    ['a wrong secret', { AWS_SECRET_ACCESS_KEY: 'not-the-secret' }],
    ['an unknown access key', { AWS_ACCESS_KEY_ID: 'nobody', AWS_SECRET_ACCESS_KEY: 'not-the-secret' }],
  ])('%s fails with a non-retryable StorageAccessDenied', async (_label, credentials) => {
    await withProcessEnv(credentials, async () => {
      const repo = openRepository('offsite', { type: 's3', bucket: BUCKET, prefix: PREFIX, partSizeMiB: 5 }, { ...s3.env, ...credentials });
      for (const attempt of [() => repo.check(), () => repo.list(''), () => repo.put('denied/x', Readable.from([Buffer.from('x')]))]) {
        const failure = await failureOf(attempt());
        expect(failure).toBeInstanceOf(EngineError);
        expect(failure).toMatchObject({ type: 'StorageAccessDenied', nonRetryable: true });
      }
    });
    expect(await s3Harness().repo.stat('denied/x')).toBeUndefined();
  });

  test('an endpoint where nothing listens fails with a retryable StorageUnreachable', async () => {
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const repo = openRepository('offsite', { type: 's3', bucket: BUCKET, prefix: PREFIX, partSizeMiB: 5 }, { ...s3.env, AWS_ENDPOINT_URL_S3: endpoint });
    for (const attempt of [() => repo.check(), () => repo.stat('x'), () => repo.put('x/y', Readable.from([Buffer.from('x')]))]) {
      const failure = await failureOf(attempt());
      expect(failure).toBeInstanceOf(EngineError);
      expect(failure).toMatchObject({ type: 'StorageUnreachable', nonRetryable: false });
    }
  });
});

/** Pseudo-random bytes as a stream, hashed as they are produced, never held whole in memory. */
function randomStream(bytes: number): { stream: Readable; sha256(): string } {
  const hash = createHash('sha256');
  let left = bytes;
  let digest: string | undefined;
  const stream = new Readable({
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      const chunk = randomBytes(Math.min(left, 256 * 1024 + 7));
      left -= chunk.length;
      hash.update(chunk);
      this.push(chunk);
    },
  });
  return {
    stream,
    sha256: () => {
      if (left !== 0) throw new Error('the stream was not read to its end');
      return (digest ??= hash.digest('hex'));
    },
  };
}

/** A source that dies after some bytes, as pg_dump does when the server goes away. */
function failingStream(after: number): Readable {
  let left = after;
  return new Readable({
    read() {
      if (left === 0) {
        this.destroy(new Error('source died'));
        return;
      }
      const chunk = randomBytes(Math.min(left, 256 * 1024));
      left -= chunk.length;
      this.push(chunk);
    },
  });
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function bufferOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function failureOf(attempt: Promise<unknown>): Promise<EngineError & Error> {
  try {
    await attempt;
  } catch (err) {
    return err as EngineError & Error;
  }
  throw new Error('expected a failure, but it succeeded');
}

async function eventually(what: string, condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Relative paths of every file under dir, sorted. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
}

/** The SDK's default credential chain reads process.env when a client first signs a request. */
async function withProcessEnv<T>(vars: Record<string, string>, body: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  Object.assign(process.env, vars);
  try {
    return await body();
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

function mount(dir: string, size: string): void {
  const result = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`mount tmpfs on ${dir} failed: ${result.stderr || result.error}`);
}

/** Whether this process may mount a small tmpfs (root outside a locked-down container). */
function probeTmpfs(): { ok: true } | { ok: false; reason: string } {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root to mount a small tmpfs' };
  const dir = path.join(os.tmpdir(), `backupctl-tmpfs-probe-${process.pid}`);
  spawnSync('mkdir', ['-p', dir]);
  try {
    const result = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { encoding: 'utf8' });
    if (result.status !== 0) return { ok: false, reason: `mount is not permitted here: ${(result.stderr || String(result.error)).trim()}` };
    spawnSync('umount', [dir]);
    return { ok: true };
  } finally {
    spawnSync('rmdir', [dir]);
  }
}
