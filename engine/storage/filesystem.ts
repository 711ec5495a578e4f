// A repository in a local directory or a mounted NAS share.
import { createReadStream, createWriteStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, rmdir, stat, lstat, access, constants, link, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { ErrorType } from '../../common/types.js';
import { classifyFilesystemError, errorText, permanent } from '../errors.js';
import { assertSafeKey, byKey, unhandledErrorsKept, type ListOptions, type ObjectInfo, type PutOptions, type RemoveManyOptions, type RemoveManyResult, type Repository, type UnfinishedUpload, type UnfinishedUploadQuery } from './repository.js';

/** Suffix of an object being written; never listed, replaced by a retry, removed with the key. */
const PARTIAL_SUFFIX = '.partial';
/** What stands between a key and PARTIAL_SUFFIX in a partial's name: a put's or a create's tag, or nothing (older versions). */
const PARTIAL_TAG = /^(\.[0-9a-f]{12}|\.[0-9]+-[0-9a-f]{12})?$/;
/** A partial's name: the key's file name, its tag, the suffix. */
const PARTIAL_NAME = /^(.+?)(\.[0-9a-f]{12}|\.[0-9]+-[0-9a-f]{12})?\.partial$/;
/** A write that has not touched its file for an hour is no live writer's (a live one writes every second). */
export const STALE_PARTIAL_MS = 60 * 60 * 1000;
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

export class FilesystemRepository implements Repository {
  readonly kind = 'filesystem' as const;
  readonly location: string;

  constructor(
    readonly name: string,
    readonly root: string,
    /** An unfinished write of a key older than this is a dead writer's, which a put of the key clears. */
    private readonly staleAfterMs = STALE_PARTIAL_MS,
  ) {
    this.location = root;
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    try {
      return await this.putWritten(key, (partialPath) => pipeline(body, createWriteStream(partialPath, { flags: 'wx', mode: FILE_MODE }), { signal: options.signal }), options);
    } finally {
      body.destroy();
    }
  }

  /**
   * A put whose bytes `write` puts into the file it is given (which does not exist yet; it must
   * create it exclusively, as the owner's alone): another process may write it, so the bytes
   * need not pass through this one. Then, as every put: synced, renamed into place, the folder
   * synced. The size stored is returned.
   */
  async putWritten(key: string, write: (partialPath: string) => Promise<void>, options: PutOptions = {}): Promise<ObjectInfo> {
    const finalPath = await this.linkFreePathOf(key);
    // A name of this put's own: a stale writer of the same key (a frozen worker woken up) can
    // neither truncate nor remove it. Leftovers of dead writers go when they are old enough.
    const partialPath = `${finalPath}.${randomBytes(6).toString('hex')}${PARTIAL_SUFFIX}`;
    try {
      await this.makeDirs(path.dirname(finalPath));
      await this.removePartials(finalPath, options.soleWriter ? 0 : this.staleAfterMs);
      await write(partialPath);
      options.signal?.throwIfAborted();
      const info = await lstat(partialPath);
      if (!info.isFile()) throw permanent(ErrorType.InvalidInput, `repository ${this.name}: ${partialPath} is not a regular file after it was written`);
      await syncFile(partialPath);
      await rename(partialPath, finalPath);
      await syncFile(path.dirname(finalPath));
      return { key, bytes: info.size };
    } catch (err) {
      await rm(partialPath, { force: true }).catch(() => undefined);
      throw classifyFilesystemError(err, `repository ${this.name}: writing ${finalPath}`);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const file = await this.linkFreePathOf(key, { fileToo: true });
    try {
      const info = await stat(file);
      return info.isFile() ? { key, bytes: info.size } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw classifyFilesystemError(err, `repository ${this.name}: stat ${key}`);
    }
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    const file = await this.linkFreePathOf(key, { fileToo: true });
    if (!(await this.stat(key))) {
      throw permanent(ErrorType.CopyMissing, `repository ${this.name}: no object ${key} (${file})`);
    }
    // Opened as openFile opens (never through a link, never waiting on a fifo), then streamed:
    // either may be swapped in after the check above by anyone who can write to the share.
    const handle = await this.openFile(key);
    return unhandledErrorsKept(createReadStream(file, { fd: handle, signal: options.signal, highWaterMark: 1024 * 1024 }));
  }

  /**
   * The key's file, opened for reading (never through a link, planted after the check or not):
   * for a reader that hands it to another process (/proc/<pid>/fd/<n>) rather than stream it
   * through node. The caller closes it. CopyMissing when there is no such object.
   */
  async openFile(key: string): Promise<FileHandle> {
    const file = await this.linkFreePathOf(key, { fileToo: true });
    try {
      // Not blocking: a fifo planted there (after the size was checked) would hold the open, and
      // the thread it runs on, until someone writes to it; it is refused below instead.
      const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      if (!(await handle.stat()).isFile()) {
        await handle.close();
        throw permanent(ErrorType.CopyMissing, `repository ${this.name}: no object ${key} (${file} is not a file)`);
      }
      return handle;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw permanent(ErrorType.CopyMissing, `repository ${this.name}: no object ${key} (${file})`);
      throw classifyFilesystemError(err, `repository ${this.name}: opening ${key}`);
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ObjectInfo[]> {
    const found: ObjectInfo[] = [];
    // No version: a file's modification time does not change on every rewrite (a rename keeps
    // it, a clock can step back), and a local read costs no request.
    const wanted = (key: string) => key.startsWith(prefix) && (options.before === undefined || key < options.before);
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw classifyFilesystemError(err, `repository ${this.name}: listing ${dir}`);
      }
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (entry.isFile() && !entry.name.endsWith(PARTIAL_SUFFIX)) {
          const key = path.relative(this.root, full).split(path.sep).join('/');
          if (wanted(key)) found.push({ key, bytes: (await stat(full)).size });
        }
      }
    };
    // Walk only the folder the prefix names, not the whole repository; never through a link
    // (readdir would follow one, and its files would be listed, and removed, as ours).
    const slash = prefix.lastIndexOf('/');
    if (slash > 0) assertSafeKey(prefix.slice(0, slash));
    const top = slash > 0 ? path.join(this.root, ...prefix.slice(0, slash).split('/')) : this.root;
    if (slash > 0) await this.refuseLinks(prefix.slice(0, slash), top, true);
    await walk(top);
    return found.sort(byKey);
  }

  async create(key: string, body: Buffer): Promise<boolean> {
    const finalPath = await this.linkFreePathOf(key);
    // A name of this call's own: two creators never share a temp file.
    const temp = `${finalPath}.${process.pid}-${randomBytes(6).toString('hex')}${PARTIAL_SUFFIX}`;
    try {
      await this.makeDirs(path.dirname(finalPath));
      // A dead creator's temp file, once old enough to be no live one's.
      await this.removePartials(finalPath, this.staleAfterMs);
      await writeFile(temp, body, { mode: FILE_MODE, flag: 'wx' });
      await syncFile(temp);
      try {
        await link(temp, finalPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
      await syncFile(path.dirname(finalPath));
      return true;
    } catch (err) {
      throw classifyFilesystemError(err, `repository ${this.name}: creating ${finalPath}`);
    } finally {
      await rm(temp, { force: true }).catch(() => undefined);
    }
  }

  async remove(key: string): Promise<void> {
    // A link in the key's place is removed itself (rm never follows it); one in a folder above is refused.
    const file = await this.linkFreePathOf(key);
    await rm(file, { force: true });
    await this.removePartials(file, 0);
  }

  /**
   * Removes each key (never through a link), then, once per folder, the partial attempts at
   * them, then the folders left empty (a backup's, an attempt's), up to the repository's root.
   */
  async removeMany(keys: string[], options: RemoveManyOptions = {}): Promise<RemoveManyResult> {
    const failed: RemoveManyResult['failed'] = [];
    const removedIn = new Map<string, Set<string>>();
    const linkFree = new Set<string>();
    let handled = 0;
    for (const key of keys) {
      options.signal?.throwIfAborted();
      try {
        const file = this.pathOf(key);
        const dir = path.dirname(file);
        // Each folder's path is checked for links once: keys in one folder share it.
        if (!linkFree.has(dir)) {
          await this.refuseLinks(key, file, false);
          linkFree.add(dir);
        }
        await rm(file, { force: true });
        const names = removedIn.get(dir) ?? new Set<string>();
        names.add(path.basename(file));
        removedIn.set(dir, names);
      } catch (err) {
        failed.push({ key, reason: errorText(classifyFilesystemError(err, `repository ${this.name}: removing ${key}`)) });
      }
      if (++handled % 1000 === 0) options.onProgress?.(handled);
    }
    for (const [dir, names] of removedIn) {
      let entries: string[];
      try {
        entries = await readdir(dir);
      } catch {
        continue;
      }
      for (const name of entries) {
        if (!name.endsWith(PARTIAL_SUFFIX)) continue;
        const cut = name.lastIndexOf('.', name.length - PARTIAL_SUFFIX.length - 1);
        if (cut > 0 && names.has(name.slice(0, cut)) && PARTIAL_TAG.test(name.slice(cut, -PARTIAL_SUFFIX.length))) await rm(path.join(dir, name), { force: true });
      }
      // A folder left empty goes, and its parents left empty, but never the root or a folder
      // right under it (wal/, database/): a writer may be making its file there this moment.
      for (let at = dir; path.dirname(at) !== this.root && at.startsWith(this.root + path.sep); at = path.dirname(at)) {
        try {
          await rmdir(at);
        } catch {
          break;
        }
      }
    }
    options.onProgress?.(handled);
    return { failed };
  }

  /**
   * Unfinished writes (a put's or a create's temp file) in the repository, or in the folders
   * the query names (nothing else of the share is walked), as the uploads S3 keeps open are:
   * what a writer killed mid-write left, or one that could not remove its file (the folder
   * turned read-only under it). `uploadId` is the temp file's name, `initiated` the time of its
   * last write (a live writer writes every second). Never through a link; a folder that cannot
   * be listed is reported (to the query's `unlisted`, else thrown), not taken for an empty one.
   */
  async listUnfinishedUploads(query: UnfinishedUploadQuery = {}): Promise<UnfinishedUpload[]> {
    const found: UnfinishedUpload[] = [];
    const unlisted = (dir: string, err: unknown): void => {
      const failure = classifyFilesystemError(err, `repository ${this.name}: listing ${dir}`);
      if (!query.unlisted) throw failure;
      query.unlisted(path.relative(this.root, dir).split(path.sep).join('/') || '.', failure);
    };
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return;
        return unlisted(dir, err);
      }
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          await walk(full);
          continue;
        }
        const parsed = entry.isFile() ? PARTIAL_NAME.exec(entry.name) : null;
        if (!parsed) continue;
        const info = await lstat(full).catch(() => undefined);
        if (!info?.isFile()) continue;
        const key = path.relative(this.root, path.join(dir, parsed[1])).split(path.sep).join('/');
        found.push({ key, uploadId: entry.name, initiated: info.mtime });
      }
    };
    if (!query.folders) {
      await walk(this.root);
    } else {
      for (const folder of query.folders) {
        assertSafeKey(folder);
        const top = path.join(this.root, ...folder.split('/'));
        try {
          // readdir follows a link in the folder's own place: its files are not the repository's.
          await this.refuseLinks(folder, top, true);
        } catch (err) {
          unlisted(top, err);
          continue;
        }
        await walk(top);
      }
    }
    return found.sort((a, b) => byKey(a, b) || (a.uploadId < b.uploadId ? -1 : a.uploadId > b.uploadId ? 1 : 0));
  }

  /**
   * Removes one unfinished write of key, named as listUnfinishedUploads named it; no error when
   * it is gone. Given `initiated` (its last write as listed), a file written to since is kept
   * (false): its writer lives, whatever its age was when it was found.
   */
  async abortUnfinishedUpload(upload: Pick<UnfinishedUpload, 'key' | 'uploadId' | 'initiated'>): Promise<boolean> {
    const file = await this.linkFreePathOf(upload.key);
    const base = path.basename(file);
    const { uploadId } = upload;
    if (!uploadId.startsWith(`${base}.`) || !uploadId.endsWith(PARTIAL_SUFFIX) || !PARTIAL_TAG.test(uploadId.slice(base.length, -PARTIAL_SUFFIX.length))) {
      throw permanent(ErrorType.InvalidInput, `repository ${this.name}: ${JSON.stringify(uploadId)} is not an unfinished write of ${upload.key}`);
    }
    const temp = path.join(path.dirname(file), uploadId);
    if (upload.initiated) {
      let info;
      try {
        info = await lstat(temp);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
        throw classifyFilesystemError(err, `repository ${this.name}: checking ${temp}`);
      }
      if (info.isFile() && info.mtime.getTime() > upload.initiated.getTime()) return false;
    }
    // rm never follows a link in the file's own place: a planted one is removed, not its target.
    await rm(temp, { force: true });
    return true;
  }

  /** Removes the unfinished writes of one file (every put's own name) older than minAgeMs. */
  private async removePartials(file: string, minAgeMs: number): Promise<void> {
    const base = path.basename(file);
    let names: string[];
    try {
      names = await readdir(path.dirname(file));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const now = Date.now();
    for (const name of names) {
      if (!name.startsWith(`${base}.`) || !name.endsWith(PARTIAL_SUFFIX) || !PARTIAL_TAG.test(name.slice(base.length, -PARTIAL_SUFFIX.length))) continue;
      const partial = path.join(path.dirname(file), name);
      // With no age asked for, no clock is read: a file's mtime may lie a fraction of a
      // millisecond past Date.now().
      if (minAgeMs > 0) {
        const info = await stat(partial).catch(() => undefined);
        if (!info || now - info.mtimeMs < minAgeMs) continue;
      }
      await rm(partial, { force: true });
    }
  }

  /** Permanent, at once, for what no retry changes: a read-only or forbidden folder, a file where the folder belongs. */
  async check(): Promise<void> {
    const existing = await stat(this.root).catch(() => undefined);
    if (existing && !existing.isDirectory()) {
      throw permanent(ErrorType.InvalidConfig, `repository ${this.name}: its path ${this.root} is not a directory (repositories.${this.name}.path must name a directory)`);
    }
    try {
      await this.makeDirs(this.root);
      await access(this.root, constants.W_OK);
      const probe = path.join(this.root, `.write-check-${process.pid}-${randomBytes(6).toString('hex')}`);
      const handle = await open(probe, 'wx', FILE_MODE);
      await handle.close();
      await rm(probe, { force: true });
    } catch (err) {
      throw classifyFilesystemError(err, `repository ${this.name} (${this.root}) is not writable`);
    }
  }

  private pathOf(key: string): string {
    assertSafeKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  /**
   * The key's file, once no folder between the root and it (and, with fileToo, not the file
   * itself) is a symbolic link. Anyone who can write to a shared folder can plant a link, and
   * the host that mounts the share follows it: a remove, a write or a read through it would
   * reach files outside the repository (another repository's backup). Only the root may be a
   * link (the operator's choice of where the repository lives). Permanent InvalidInput.
   */
  private async linkFreePathOf(key: string, options: { fileToo?: boolean } = {}): Promise<string> {
    const file = this.pathOf(key);
    await this.refuseLinks(key, file, options.fileToo === true);
    return file;
  }

  /** Refuses `target` (the path of `key`) when a component below the root is a link; a missing one ends the check. */
  private async refuseLinks(key: string, target: string, lastToo: boolean): Promise<void> {
    const parts = key.split('/');
    const upTo = lastToo ? parts.length : parts.length - 1;
    let at = this.root;
    for (let i = 0; i < upTo; i++) {
      at = path.join(at, parts[i]);
      let info;
      try {
        info = await lstat(at);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
        throw classifyFilesystemError(err, `repository ${this.name}: checking ${at}`);
      }
      if (info.isSymbolicLink()) {
        throw permanent(
          ErrorType.InvalidInput,
          `repository ${this.name}: ${target} passes through the symbolic link ${at}; nothing below a repository's root may be a link (one planted in a shared folder could lead anywhere on this host), so it is neither read, written nor removed`,
        );
      }
    }
  }

  private async makeDirs(dir: string): Promise<void> {
    try {
      await mkdir(dir, { recursive: true, mode: DIR_MODE });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      throw await whyMkdirFailed(dir, err);
    }
  }
}

/**
 * Node's recursive mkdir says ENOENT when the kernel said EROFS or EACCES, which would be
 * retried as unreachable storage. Making the first missing folder alone gives the real reason.
 */
async function whyMkdirFailed(dir: string, reported: unknown): Promise<unknown> {
  let missing = dir;
  while (path.dirname(missing) !== missing && !(await stat(path.dirname(missing)).catch(() => undefined))) missing = path.dirname(missing);
  try {
    await mkdir(missing, { mode: DIR_MODE });
  } catch (err) {
    return err;
  }
  return reported;
}

async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
