// Manifests already read, kept by a worker between retention runs: a catalog of 3,000 backups
// is read again every night, and all but the newest manifest are unchanged. An entry is used
// only for an object listed with a plain S3 ETag (the MD5 of its content, what a single PUT
// gets) equal to the MD5 of the cached text: the cache then holds exactly the bytes the
// repository holds, whoever wrote them and whatever the cache was given. Everything read from
// it is checked again as if just read (shape, signature, objects held). An object with another
// kind of ETag (multipart, or encrypted with a KMS key) or none (a folder) is read every time.
import { createHash } from 'node:crypto';

/** What an entry costs beside its text: its key, and the map's own bookkeeping (about). */
const ENTRY_OVERHEAD = 64;

/** A plain ETag: the MD5 of the content, in hex (S3 quotes it). */
const PLAIN_ETAG = /^"?([0-9a-f]{32})"?$/;

export class ManifestCache {
  private readonly entries = new Map<string, string>();
  private bytes = 0;

  /** maxBytes: the text kept and its keys, at most (the least recently used goes first). */
  constructor(private readonly maxBytes = 64 * 1024 * 1024) {}

  /** The MD5 a version names, if it is a plain ETag. */
  private static md5Of(version: string | undefined): string | undefined {
    return version ? PLAIN_ETAG.exec(version)?.[1] : undefined;
  }

  private static keyOf(location: string, key: string, md5: string): string {
    return `${location}\u0000${key}\u0000${md5}`;
  }

  /** The text of `key` in the repository at `location` as listed at `version`, if kept. */
  get(location: string, key: string, version: string | undefined): string | undefined {
    const md5 = ManifestCache.md5Of(version);
    if (!md5) return undefined;
    const cacheKey = ManifestCache.keyOf(location, key, md5);
    const text = this.entries.get(cacheKey);
    if (text === undefined) return undefined;
    // Used again: the most recently used.
    this.entries.delete(cacheKey);
    this.entries.set(cacheKey, text);
    return text;
  }

  /** Keeps what was read of `key`, if it is what `version` names (else nothing is kept). */
  set(location: string, key: string, version: string | undefined, text: string): void {
    const md5 = ManifestCache.md5Of(version);
    if (!md5 || createHash('md5').update(text).digest('hex') !== md5) return;
    const cacheKey = ManifestCache.keyOf(location, key, md5);
    // Counted with its key: an empty manifest (planted) costs its key, and thousands of them
    // must not pile up unbounded night after night.
    const cost = (kept: string) => Buffer.byteLength(kept) + Buffer.byteLength(cacheKey) + ENTRY_OVERHEAD;
    const size = cost(text);
    if (size > this.maxBytes) return;
    const old = this.entries.get(cacheKey);
    if (old !== undefined) {
      this.entries.delete(cacheKey);
      this.bytes -= cost(old);
    }
    this.entries.set(cacheKey, text);
    this.bytes += size;
    for (const [oldest, kept] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= Buffer.byteLength(kept) + Buffer.byteLength(oldest) + ENTRY_OVERHEAD;
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
