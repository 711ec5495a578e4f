// Attack on the bounded WAL listing of a prune (engine/prune.ts applyReport, S3Repository.list
// with `before`) on a real S3 server (SeaweedFS): names planted under wal/ by whoever can put
// there (spaces, unicode, lower-case hex, 23 and 25 characters, a "folder" named like a
// segment), more than a page of keys, and every kind of WAL file of the segments that go.
// Every file of a segment that goes is deleted; nothing else is; the planted names are left alone.
// The worker's manifest cache, fed by SeaweedFS's ETags, reads what a fresh read reads.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { ManifestCache } from '../engine/manifestCache.js';
import { applyReport, type RetentionReportFile } from '../engine/prune.js';
import { readRetentionCatalog } from '../engine/retentionCatalog.js';
import { openRepository } from '../engine/storage/index.js';
import type { Repository } from '../engine/storage/repository.js';
import { startS3Server, type S3Server } from './fixtures/seaweedfs.js';

const BUCKET = 'retention-attack';
const PREFIX = 'r/';
let s3: S3Server;
let repo: Repository;
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket(BUCKET);
  // The S3 client takes its credentials from the SDK's default chain (process.env).
  for (const [name, value] of Object.entries(s3.env)) {
    saved[name] = process.env[name];
    process.env[name] = value;
  }
  repo = openRepository('offsite', { type: 's3', bucket: BUCKET, prefix: PREFIX, partSizeMiB: 5 }, s3.env);
}, 120_000);

afterAll(async () => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await s3?.stop();
});

const seg = (n: number, tl = 1) => `${tl.toString(16).toUpperCase().padStart(8, '0')}${'0'.repeat(8)}${n.toString(16).toUpperCase().padStart(8, '0')}`;

async function allKeys(): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: PREFIX, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key!.slice(PREFIX.length));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

test('every file of every segment that goes is deleted across pages; planted odd names and what stays are left alone', async () => {
  const files = (name: string) => [`wal/${name}.json`, `wal/${name}.zst.gpg`];
  // 700 segments go (1,400 keys: two pages), with .partial and .backup files; 50 stay.
  const doomed: string[] = [];
  for (let n = 1; n <= 700; n++) doomed.push(seg(n));
  doomed.push(`${seg(700)}.00000028.backup`, `${seg(700)}.partial`, `${seg(3)}.00000060.backup`, seg(5, 2));
  const kept: string[] = ['00000002.history'];
  for (let n = 701; n <= 750; n++) kept.push(seg(n));
  kept.push(`${seg(701)}.00000028.backup`);
  const planted = [
    `wal/${seg(700)} copy.json`,
    `wal/${seg(700).toLowerCase()}.json`,
    `wal/${seg(700)}0.json`,
    `wal/${seg(700).slice(0, 23)}.json`,
    `wal/${seg(700)}/inside.json`,
    `wal/${seg(700)}é.json`,
    `wal/${seg(700)}\u007f.json`,
    `wal/${seg(699)}.json/x`,
    `wal/ü${seg(1)}.json`,
  ];
  const puts = [...doomed.flatMap(files), ...kept.flatMap(files), ...planted];
  for (let i = 0; i < puts.length; i += 100) await Promise.all(puts.slice(i, i + 100).map((key) => s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: PREFIX + key, Body: 'x' }))));
  const report: RetentionReportFile = {
    formatVersion: 1, reportId: 'r1', workflowId: 'w', runId: 'run', dryRun: false, decidedAt: '2026-11-29T00:00:00Z', timezone: 'UTC', scope: {},
    unreachable: [], forTheSweep: [], notes: [], backups: [],
    wal: [{ repository: 'offsite', keepFrom: seg(701), delete: [...doomed].sort(), unshipped: [], why: 'test', held: 0, bytesToFree: 0 } as unknown as RetentionReportFile['wal'][number]],
  };
  const result = await applyReport(repo, report);
  expect(result.wal).toMatchObject({ deleted: doomed.length, failed: 0 });
  expect(await allKeys()).toEqual([...kept.flatMap(files), ...planted].sort());
}, 300_000);

test('the manifest cache on SeaweedFS ETags: a manifest rewritten in place is read again, and the catalog says what a fresh read says', async () => {
  const id = '20261101_000000-aaaaaaaa';
  const object = `database/${id}/dump.pgcustom.zst.gpg`;
  const manifest = (finishedAt: string) => Buffer.from(JSON.stringify({ formatVersion: 1, backupId: id, component: 'database', finishedAt, objects: [{ key: object, bytes: 4 }] }));
  await repo.put(object, Readable.from([Buffer.from('dump')]), { contentLength: 4 });
  const put = (body: Buffer) => repo.put(`database/${id}/manifest.json`, Readable.from([body]), { contentLength: body.length });
  const first = manifest('2026-11-01T00:00:00.000Z');
  await put(first);
  const [listed] = await repo.list(`database/${id}/manifest.json`, { versions: true });
  expect(listed.version?.replace(/"/g, '')).toBe(createHash('md5').update(first).digest('hex'));
  const cache = new ManifestCache();
  const read = async () => (await readRetentionCatalog([repo], { verifier: { keys: [], host: 't' }, allowUnsigned: true, manifestCache: cache })).catalog.backups.find((b) => b.backupId === id);
  const fresh = async () => (await readRetentionCatalog([repo], { verifier: { keys: [], host: 't' }, allowUnsigned: true })).catalog.backups.find((b) => b.backupId === id);
  expect(await read()).toEqual(await fresh());
  expect(cache.size).toBe(1);
  // Rewritten (same size, another date): the cache's text no longer matches the ETag.
  await put(manifest('2026-11-02T00:00:00.000Z'));
  expect(await read()).toEqual(await fresh());
  expect((await read())?.at).toBe(Date.parse('2026-11-02T00:00:00.000Z'));
  // Its object gone: refused, cached or not.
  await repo.remove(object);
  expect(await read()).toBeUndefined();
  expect(await fresh()).toBeUndefined();
}, 120_000);
