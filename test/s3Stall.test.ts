// An S3 server that accepts a request and never answers (found by the chaos suite: a
// verification report's write hung until its activity's start-to-close timeout). Every S3
// request is bounded by an idle timeout and retried: the operation completes once the server
// answers again. SeaweedFS behind the chaos suite's fault proxy.
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { openRepository } from '../engine/storage/index.js';
import { startS3FaultProxy, type S3FaultProxy } from '../chaos/s3FaultProxy.js';
import { startS3Server, type S3Server } from './fixtures/seaweedfs.js';

let s3: S3Server;
let proxy: S3FaultProxy;

beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket('stall');
  Object.assign(process.env, s3.env);
  proxy = await startS3FaultProxy(s3.endpoint);
}, 120_000);

afterAll(async () => {
  await proxy?.stop();
  await s3?.stop();
});

test('a request the server never answers is abandoned after the idle timeout and retried', async () => {
  const repository = openRepository('s3', { type: 's3', bucket: 'stall', endpoint: proxy.endpoint, partSizeMiB: 5 } as any, s3.env as any, { idleTimeoutMs: 2000 });
  await repository.put('before/stall.txt', Readable.from([Buffer.from('written before')]));
  proxy.inject('s3-stall', { count: 1 });
  const started = Date.now();
  const read = await Promise.race([
    repository.get('before/stall.txt').then((body) => text(body)),
    new Promise<string>((resolve) => setTimeout(() => resolve('still waiting after 30 s'), 30_000)),
  ]);
  expect(read).toBe('written before');
  expect(proxy.faulted()).toBe(1);
  expect(Date.now() - started).toBeLessThan(30_000);
}, 60_000);
