// A repository in an S3 bucket (AWS or any S3-compatible server). Large objects go up as
// multipart uploads that become visible only on completion.
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Transform, type Readable } from 'node:stream';
import { ErrorType } from '../../common/types.js';
import { permanent, transient } from '../errors.js';
import { assertSafeKey, byKey, unhandledErrorsKept, type ListOptions, type ObjectInfo, type PutOptions, type RemoveManyOptions, type RemoveManyResult, type Repository, type UnfinishedUpload, type UnfinishedUploadQuery } from './repository.js';

export interface S3RepositoryOptions {
  bucket: string;
  prefix: string;
  storageClass?: string;
  /** 8 MiB parts, 4 in flight: about 32 MiB of buffers per upload, whatever the backup's size. */
  partSizeBytes?: number;
  queueSize?: number;
  /** An unfinished upload of a key older than this is a dead writer's, which a put of the key aborts. */
  staleUploadMs?: number;
  /** S3 Object Lock on every object put: retained under `mode` for `days` from its upload. */
  objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
}

/** Uploads of keys with several possible writers (WAL segments, 16 MiB) take seconds, not an hour. */
export const STALE_UPLOAD_MS = 60 * 60 * 1000;

/** S3's most keys in one DeleteObjects request. */
const DELETE_BATCH = 1000;
/** DeleteObjects requests in flight at once. */
const DELETES_IN_FLIGHT = 4;

export class S3Repository implements Repository {
  readonly kind = 's3' as const;
  readonly location: string;
  private readonly prefix: string;

  constructor(
    readonly name: string,
    private readonly client: S3Client,
    private readonly options: S3RepositoryOptions,
  ) {
    this.prefix = options.prefix ? options.prefix.replace(/\/+$/, '') + '/' : '';
    this.location = `s3://${options.bucket}/${this.prefix}`;
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const objectKey = this.objectKey(key);
    let bytes = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    // The source waits (buffered, then paused) while stale uploads are cleared; its failure
    // in that time reaches the upload through `counted` instead of crashing the worker.
    body.once('error', (err) => counted.destroy(err));
    // Until the upload reads it, `counted` has no listener but the pipe's, which re-throws an
    // error nobody hears: the worker would crash. The upload's promise carries the failure.
    counted.on('error', () => undefined);
    body.pipe(counted);
    // Only dead writers' uploads: a younger one may be a live writer of the same key (a newer
    // attempt of a WAL segment's shipping while this one is stale), and aborting it would
    // destroy its work. A backup object's key has one writer only (attempt folders).
    // The caller's abort ends the clearing too (a server slow to answer must not hold the put).
    await this.abortStaleUploads(objectKey, options.soleWriter ? 0 : (this.options.staleUploadMs ?? STALE_UPLOAD_MS), options.signal).catch((err) => {
      counted.destroy();
      throw options.signal?.aborted ? this.classify(options.signal.reason ?? err, `uploading ${objectKey}`) : err;
    });
    if (options.signal?.aborted) {
      counted.destroy();
      throw this.classify(options.signal.reason ?? new Error('aborted'), `uploading ${objectKey}`);
    }
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.options.bucket,
        Key: objectKey,
        Body: counted,
        StorageClass: this.options.storageClass as StorageClass | undefined,
        ContentType: 'application/octet-stream',
        ...this.lockParameters(),
      },
      partSize: this.options.partSizeBytes ?? 8 * 1024 * 1024,
      queueSize: this.options.queueSize ?? 4,
      leavePartsOnError: false,
    });
    // Upload.done() is not certain to settle after abort(); the caller's abort settles the put.
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        void upload.abort().catch(() => undefined);
        reject(options.signal?.reason ?? new Error('upload aborted'));
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    try {
      await Promise.race([upload.done(), aborted]);
      return { key, bytes };
    } catch (err) {
      body.destroy();
      counted.destroy();
      throw this.classify(err, `uploading ${objectKey}`);
    } finally {
      if (onAbort) options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Object Lock's parameters for a put now; AWS wants a checksum with them (Content-MD5 or a CRC). */
  private lockParameters(): { ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE'; ObjectLockRetainUntilDate?: Date; ChecksumAlgorithm?: 'CRC32' } {
    const lock = this.options.objectLock;
    if (!lock) return {};
    return { ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: new Date(Date.now() + lock.days * 86_400_000), ChecksumAlgorithm: 'CRC32' };
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }));
      return { key, bytes: head.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.classify(err, `stat ${key}`);
    }
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    try {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }),
        { abortSignal: options.signal },
      );
      return unhandledErrorsKept(response.Body as Readable);
    } catch (err) {
      if (isNotFound(err)) throw permanent(ErrorType.CopyMissing, `repository ${this.name}: no object ${key} (${this.location})`);
      throw this.classify(err, `reading ${key}`);
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ObjectInfo[]> {
    const found: ObjectInfo[] = [];
    let token: string | undefined;
    // S3 lists in UTF-8 binary order, which is key order for our keys (ASCII): past `before`,
    // no later page holds anything wanted.
    const wanted = (key: string) => options.before === undefined || key < options.before;
    try {
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }),
        );
        let past = false;
        for (const item of page.Contents ?? []) {
          if (!item.Key) continue;
          const key = item.Key.slice(this.prefix.length);
          if (!wanted(key)) {
            past = true;
            continue;
          }
          found.push({ key, bytes: item.Size ?? 0, ...(options.versions && item.ETag ? { version: item.ETag } : {}) });
        }
        token = page.IsTruncated && !past ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw this.classify(err, `listing ${prefix}`);
    }
    return found.sort(byKey);
  }

  async create(key: string, body: Buffer): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key), Body: body, ContentLength: body.length, IfNoneMatch: '*' }),
      );
      return true;
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
      if ((err as { name?: string })?.name === 'PreconditionFailed' || status === 412) return false;
      // 409: a concurrent conditional write to the same key is in flight; retried, it settles.
      throw this.classify(err, `creating ${key}`);
    }
  }

  async remove(key: string): Promise<void> {
    const objectKey = this.objectKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: objectKey }));
      await this.abortStaleUploads(objectKey, 0);
    } catch (err) {
      if (!isNotFound(err)) throw this.classify(err, `removing ${key}`);
    }
  }

  /**
   * DeleteObjects, 1,000 keys a request (S3's most), quiet: the answer lists only the keys that
   * could not go. A request refused whole throws, classified; the keys of earlier requests are gone.
   */
  async removeMany(keys: string[], options: RemoveManyOptions = {}): Promise<RemoveManyResult> {
    const failed: RemoveManyResult['failed'] = [];
    const batches: string[][] = [];
    for (let i = 0; i < keys.length; i += DELETE_BATCH) batches.push(keys.slice(i, i + DELETE_BATCH));
    let handled = 0;
    let next = 0;
    let stopped = false;
    // A few requests in flight: each waits most of its time on the server. One refused whole
    // stops the others taking more.
    const worker = async () => {
      while (next < batches.length && !stopped) {
        options.signal?.throwIfAborted();
        const batch = batches[next++];
        try {
          const answer = await this.client.send(
            new DeleteObjectsCommand({ Bucket: this.options.bucket, Delete: { Objects: batch.map((key) => ({ Key: this.objectKey(key) })), Quiet: true } }),
            { abortSignal: options.signal },
          );
          for (const error of answer.Errors ?? []) {
            if (error.Code === 'NoSuchKey') continue;
            failed.push({ key: (error.Key ?? '').slice(this.prefix.length), reason: `${error.Code ?? 'error'}: ${error.Message ?? 'not deleted'}` });
          }
        } catch (err) {
          stopped = true;
          throw this.classify(err, `removing ${batch.length} objects (${batch[0]} ...)`);
        }
        handled += batch.length;
        options.onProgress?.(handled);
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETES_IN_FLIGHT, batches.length) }, worker));
    return { failed };
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }));
    } catch (err) {
      throw this.classify(err, `checking bucket ${this.options.bucket}`);
    }
  }

  /**
   * Every unfinished multipart upload under this repository's prefix, page by page. Parts of
   * an upload a killed worker began stay (and are billed) until it is aborted. Throws
   * StorageUnreachable (NotImplemented: the server cannot list uploads) or another classified failure.
   */
  async listUnfinishedUploads(query: UnfinishedUploadQuery = {}): Promise<UnfinishedUpload[]> {
    const found: UnfinishedUpload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      for (;;) {
        const page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.options.bucket, Prefix: this.prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
        for (const upload of page.Uploads ?? []) {
          if (!upload.Key?.startsWith(this.prefix) || !upload.UploadId) continue;
          if (query.folders && !query.folders.some((folder) => upload.Key!.startsWith(`${this.prefix}${folder}/`))) continue;
          found.push({ key: upload.Key.slice(this.prefix.length), uploadId: upload.UploadId, initiated: upload.Initiated });
        }
        if (!page.IsTruncated) break;
        keyMarker = page.NextKeyMarker;
        uploadIdMarker = page.NextUploadIdMarker;
        if (!keyMarker && !uploadIdMarker) break;
      }
    } catch (err) {
      throw this.classify(err, 'listing unfinished uploads');
    }
    return found;
  }

  async abortUnfinishedUpload(upload: Pick<UnfinishedUpload, 'key' | 'uploadId' | 'initiated'>): Promise<boolean> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.options.bucket, Key: this.objectKey(upload.key), UploadId: upload.uploadId }));
    } catch (err) {
      if ((err as { name?: string })?.name === 'NoSuchUpload' || isNotFound(err)) return true;
      throw this.classify(err, `aborting the unfinished upload of ${upload.key}`);
    }
    return true;
  }

  /** A worker killed mid-upload leaves parts behind: cleared here when older than minAgeMs. */
  private async abortStaleUploads(objectKey: string, minAgeMs: number, signal?: AbortSignal): Promise<void> {
    try {
      const uploads = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.options.bucket, Prefix: objectKey }), { abortSignal: signal });
      for (const upload of uploads.Uploads ?? []) {
        const age = upload.Initiated ? Date.now() - upload.Initiated.getTime() : Infinity;
        if (upload.Key === objectKey && upload.UploadId && age >= minAgeMs) {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.options.bucket, Key: objectKey, UploadId: upload.UploadId }), { abortSignal: signal });
        }
      }
    } catch (err) {
      // Some S3-compatible servers do not list uploads; a lifecycle rule cleans up there.
      if (!(err instanceof S3ServiceException) || err.name !== 'NotImplemented') throw this.classify(err, `clearing stale uploads of ${objectKey}`);
    }
  }

  private objectKey(key: string): string {
    assertSafeKey(key);
    return this.prefix + key;
  }

  private classify(err: unknown, action: string) {
    const where = `repository ${this.name} (${this.location}): ${action}`;
    const name = (err as { name?: string; Code?: string })?.name ?? '';
    const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
    const message = (err as Error)?.message ?? String(err);
    if (name === 'NoSuchBucket' || (name === 'NotFound' && action.startsWith('checking bucket'))) {
      return permanent(ErrorType.BucketMissing, `${where}: bucket ${this.options.bucket} does not exist`);
    }
    if (['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'Forbidden'].includes(name) || status === 403) {
      return permanent(ErrorType.StorageAccessDenied, `${where}: access denied (${name || status}): check the S3 credentials and bucket policy`);
    }
    if (name === 'InvalidStorageClass') {
      return permanent(ErrorType.InvalidConfig, `${where}: storage class ${this.options.storageClass} is not accepted by this endpoint`);
    }
    return transient(ErrorType.StorageUnreachable, `${where}: ${message}`, err instanceof Error ? err : undefined);
  }
}

function isNotFound(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return name === 'NotFound' || name === 'NoSuchKey' || status === 404;
}
