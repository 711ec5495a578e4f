// Found by the chaos suite (issue 9: database backup + s3-revoke, seed 422683967; the worker
// process died with "Unhandled 'error' event ... Error: pipeline aborted ... Emitted 'error'
// event on Transform instance"): with the S3 key revoked, a put failed while it cleared stale
// uploads (ListMultipartUploads answered 403), before any upload read its body; the pass then
// destroyed the body with an error, which the put's counting stream took on, with nobody
// listening: the whole worker crashed, with every other activity it was running.
import { PassThrough } from 'node:stream';
import { S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { S3Repository } from '../engine/storage/s3.js';

/** An S3 client that answers every request as S3 does for a deleted access key. */
function revokedClient(): S3Client {
  const client = new S3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'gone', secretAccessKey: 'gone' } });
  client.send = (async () => {
    throw new S3ServiceException({
      name: 'InvalidAccessKeyId',
      $fault: 'client',
      $metadata: { httpStatusCode: 403 },
      message: 'The access key ID you provided does not exist in our records.',
    });
  }) as never;
  return client;
}

test('a put refused before its upload began does not crash the process when its source then fails', async () => {
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  // Jest installs its own handler; an unheard 'error' event would otherwise fail the run elsewhere.
  process.prependListener('uncaughtException', onUncaught);
  try {
    const repository = new S3Repository('s3', revokedClient(), { bucket: 'b', prefix: 'p' });
    const body = new PassThrough();
    // The pipeline's branch: its own error is heard (pipeline.ts), as there.
    body.on('error', () => undefined);
    body.write(Buffer.alloc(1024));
    const failure = await repository.put('database/x/a1/dump.gpg', body).then(
      () => undefined,
      (err: { type?: string }) => err.type,
    );
    // What the pass does when one repository's write failed: every branch destroyed with an error.
    body.destroy(new Error('pipeline aborted'));
    await new Promise((r) => setTimeout(r, 200));
    expect({ failure, uncaught: uncaught.map((e) => String(e)) }).toEqual({ failure: 'StorageAccessDenied', uncaught: [] });
  } finally {
    process.removeListener('uncaughtException', onUncaught);
  }
});
