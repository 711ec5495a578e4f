// One narrow interface for every place a backup lives (restic's idea): the pipeline, the
// verifier and the catalog talk only to this, and one conformance suite tests every kind.
import type { Readable } from 'node:stream';

/**
 * A stream a get returns: its error before the caller attaches (an abort, a timeout, while the
 * caller still awaits something else, or after it gave the read up) must not crash the worker
 * as an unhandled 'error' event. The caller's pipeline or iterator still receives every error.
 */
export function unhandledErrorsKept<T extends Readable>(stream: T): T {
  stream.on('error', () => undefined);
  return stream;
}
import { ErrorType, type RepositoryKind } from '../../common/types.js';
import { permanent } from '../errors.js';

export interface ObjectInfo {
  key: string;
  bytes: number;
  /**
   * Only when a listing asks for it, and only where the repository has one (S3: the object's
   * ETag): a token that changes whenever the object is written again, so what was read of it
   * before can be used again while the token is the same.
   */
  version?: string;
}

export interface ListOptions {
  /** Only keys before this one (whole key, prefix included): a listing in key order stops there. */
  before?: string;
  /** Each object's version (ObjectInfo.version), where the repository has one. */
  versions?: boolean;
}

export interface PutOptions {
  signal?: AbortSignal;
  /** Bytes expected, when known in advance (small objects); lets S3 use a single PUT. */
  contentLength?: number;
  /**
   * The caller is the key's only possible writer (archive_command: PostgreSQL runs one
   * archiver), so every unfinished write of the key is a dead one's and is cleared. Otherwise
   * only those old enough to be dead are: a younger one may be a live writer's.
   */
  soleWriter?: boolean;
}

/** A write that was begun and never completed (an S3 multipart upload, a file repository's temp file). */
export interface UnfinishedUpload {
  key: string;
  /** S3: the upload id; a file repository: the temp file's name. */
  uploadId: string;
  /** S3: when the upload began; a file repository: its temp file's last write. */
  initiated?: Date;
}

/** Which unfinished writes to list. */
export interface UnfinishedUploadQuery {
  /**
   * Only keys in these folders (`wal`, `database`...): a file repository walks nothing else of
   * the share (other tools' trees, a mount's lost+found). Every key when absent.
   */
  folders?: string[];
  /**
   * A folder that cannot be listed (unreadable, or a link: never followed), as a classified
   * failure; the rest is listed. Without it, the first such folder fails the whole listing.
   */
  unlisted?: (where: string, failure: unknown) => void;
}

export interface RemoveManyOptions {
  signal?: AbortSignal;
  /** Called after each batch with the count of keys handled so far. */
  onProgress?: (handled: number) => void;
}

export interface RemoveManyResult {
  failed: { key: string; reason: string }[];
}

export interface Repository {
  readonly name: string;
  readonly kind: RepositoryKind;
  /** Where this repository is, for people: a directory or s3://bucket/prefix. */
  readonly location: string;

  /**
   * Stores the stream under key. The object becomes visible only when the whole stream was
   * stored durably (filesystem: temp name, fsync, rename; S3: upload completion), so a reader
   * never sees half an object. A retry of the same key replaces what an earlier, interrupted
   * attempt left behind. The body is a stream, not a factory, because the pipeline fans one
   * pass out to every repository; a retry reruns the whole pass.
   */
  put(key: string, body: Readable, options?: PutOptions): Promise<ObjectInfo>;

  /** Size of the object, or undefined when there is none. */
  stat(key: string): Promise<ObjectInfo | undefined>;

  /** Reads the object; throws CopyMissing when there is none. */
  get(key: string, options?: { signal?: AbortSignal }): Promise<Readable>;

  /** Complete objects whose key starts with prefix, in key order (byKey). */
  list(prefix: string, options?: ListOptions): Promise<ObjectInfo[]>;

  /**
   * Stores a small object only if no object has that key, atomically: of two writers racing
   * for one key exactly one gets true, the other false and nothing changed (filesystem: link(2)
   * of a synced temp file; S3: a conditional PUT with If-None-Match: *). The claim on a
   * backup id rests on this.
   */
  create(key: string, body: Buffer): Promise<boolean>;

  /** Removes the object and any partial attempt at it; no error when there is none. */
  remove(key: string): Promise<void>;

  /**
   * Removes many objects at once (retention): S3 in DeleteObjects requests of up to 1,000 keys.
   * A key already gone is no error. Keys that could not go are returned with the reason; the
   * rest are gone. Throws a classified failure when a whole request fails (unreachable, refused).
   * Without it, removeObjects (below) removes one key at a time.
   */
  removeMany?(keys: string[], options?: RemoveManyOptions): Promise<RemoveManyResult>;

  /**
   * Unfinished writes in this repository: S3's open multipart uploads, a file repository's temp
   * files (what a writer killed mid-write left, or one that could not remove its own); keys
   * relative to the repository. Throws a classified failure where they cannot be listed, unless
   * the query takes what cannot be read (then the rest is listed).
   */
  listUnfinishedUploads?(query?: UnfinishedUploadQuery): Promise<UnfinishedUpload[]>;

  /**
   * Aborts one unfinished upload, freeing its parts; no error when it is already gone (true).
   * Given `initiated` as the listing saw it, a file repository keeps a temp file written to
   * since (its writer lives: a frozen worker woken up) and answers false.
   */
  abortUnfinishedUpload?(upload: Pick<UnfinishedUpload, 'key' | 'uploadId' | 'initiated'>): Promise<boolean>;

  /**
   * Proves the repository can take a backup now: reachable, exists, writable. Throws a
   * classified failure (BucketMissing, StorageAccessDenied, StorageUnreachable, ...).
   */
  check(): Promise<void>;
}

/** Keys are relative paths of safe characters; anything else is a bug or an attack. */
export function assertSafeKey(key: string): void {
  if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(key) || key.split('/').some((part) => part === '.' || part === '..')) {
    throw permanent(ErrorType.InvalidInput, `unsafe storage key ${JSON.stringify(key)}: keys are relative paths of A-Z a-z 0-9 . _ -`);
  }
}

/**
 * Key order: by code unit, which for our ASCII keys is S3's own byte order. Not localeCompare:
 * that puts 'B' after 'a' and '_' before '-', and differs with the host's locale.
 */
export function byKey(a: { key: string }, b: { key: string }): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Removes every key: in batches where the repository can, else one by one. */
export async function removeObjects(repository: Repository, keys: string[], options: RemoveManyOptions = {}): Promise<RemoveManyResult> {
  for (const key of keys) assertSafeKey(key);
  if (repository.removeMany) return repository.removeMany(keys, options);
  const failed: RemoveManyResult['failed'] = [];
  let handled = 0;
  for (const key of keys) {
    options.signal?.throwIfAborted();
    await repository.remove(key);
    options.onProgress?.(++handled);
  }
  return { failed };
}
