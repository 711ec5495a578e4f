// Attack round 4: the sweep aborts unfinished S3 multipart uploads that are not ours. It is to
// remove what OUR runs left ("finds the databases, folders and uploads we made"), but it took
// every unfinished upload under the repository's prefix (the whole bucket when the prefix is
// empty) older than the age limit: another tool's upload in a shared bucket, or another
// backupctl host's under its own prefix, lost its parts. Ours are under database/, base/ and
// wal/ (and reports under drills/); only those are swept.
//
// Real SeaweedFS; the age limit is set to 0 h so that the uploads made a second ago stand for
// uploads a day old (the age rule is not what is attacked here).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { attemptObjectKey } from '../engine/backupClaim.js';
import { S3Repository } from '../engine/storage/s3.js';
import { startS3Server, type S3Server } from './fixtures/seaweedfs.js';
import { uploadSweep } from './fixtures/uploadSweep.js';

const BUCKET = 'shared-bucket';
const dir = mkdtempSync(path.join(os.tmpdir(), 'attack4-uploads-'));
let s3: S3Server;

beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket(BUCKET);
  mkdirSync(path.join(dir, 'work'));
}, 120_000);

afterAll(async () => {
  await s3?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function startUpload(key: string): Promise<void> {
  const created = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
  await s3.client.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: created.UploadId, PartNumber: 1, Body: Buffer.alloc(1024, 7) }));
}

test("the sweep aborts only unfinished uploads of our own keys, never another tool's in a shared bucket", async () => {
  // Ours: a dump's upload a killed worker left (no prefix: the repository is the whole bucket).
  const ours = attemptObjectKey('database', 'backup-database-2026-11-01', '0a1b2c3d-4e5f-4000-8000-000000000001', 1, 'dump', 'zstd');
  await startUpload(ours);
  // Not ours: another tool's export in the same bucket, and another host's backup under its own prefix.
  const strangers = ['exports/2026-11/warehouse.parquet', 'db-host-2/database/backup-x/r0123456789ab-a1/dump.pgcustom.zst.gpg'];
  for (const key of strangers) await startUpload(key);

  const repository = new S3Repository('s3', s3.client, { bucket: BUCKET, prefix: '' });
  const run = uploadSweep({ host: 'attack4-uploads', repository, repositoryConfig: { type: 's3', bucket: BUCKET }, dir, runId: 'c0ffee00-0000-4000-8000-000000000002' });
  for (const leftover of await run.find(0)) await run.act(leftover, 0).catch(() => undefined);

  const left = ((await s3.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? []).map((u) => u.Key);
  expect(left).not.toContain(ours);
  expect(left.sort()).toEqual([...strangers].sort());
}, 120_000);
