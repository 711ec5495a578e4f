// The WAL archive. `wal-push` (PostgreSQL's archive_command) stores each segment, compressed
// and encrypted, in the local spool repository and returns: no Temporal round trip on the hot
// path. A workflow ships the stored objects, byte for byte, to the other repositories.
// `wal-fetch` (restore_command) finds a segment in any repository.
//
// Each segment is two objects: the data (`wal/<name>.zst.gpg`) and, written after it, an entry
// (`wal/<name>.json`) with the checksums of the plaintext and of the stored bytes. The entry is
// the segment's "manifest": a segment counts as archived only once its entry exists.
//
// Authenticity. The object is encrypted to the PUBLIC key, so anyone who can write to a
// repository could plant a segment, and WAL records write pages directly (a full-page image of
// pg_authid is a new superuser). wal-push runs as the database server's OS user, which holds no
// signing key: its entries in the spool are unsigned. The shipping workflow (the backup host's
// worker, which holds the signing key) signs each entry as it ships it, and wal-fetch and the
// fetch-ahead replay a segment only from an entry signed by a trusted key, or an unsigned one in
// this host's own spool (its local disk, written by its own database server: whoever can write
// there can already write the database's files), or, with --allow-unsigned, any unsigned one
// (archives shipped before entries were signed). docs/SECURITY.md, "WAL".
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, createWriteStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { COMPRESSIONS, ErrorType, type Compression } from '../common/types.js';
import type { Config } from '../common/config.js';
import type { ManifestSignature } from '../common/types.js';
import { writeJson } from './catalog.js';
import { compressionSuffix, fileCompressorCommand } from './compression.js';
import { readFirstGoodCopy } from './copySelection.js';
import { encryptorCommand, loadRecipient } from './encryption.js';
import { classifyFilesystemError, permanent, transient } from './errors.js';
import { checkSignature, refusalOf, signManifest, type Signer, type Verifier } from './manifestSignature.js';
import { runCommand } from './exec.js';
import { checkBranchSegment, checkSegment, checkWalFile, MAX_TEXT_FILE_BYTES, walFileKind, type TimelineSwitch } from './walHeader.js';
import { LongerThanExpected, readBack, within, type Reader } from './readBack.js';
import type { Repository } from './storage/repository.js';
import { FilesystemRepository } from './storage/filesystem.js';
import { SEAL_IN_THREAD_UP_TO, SealerPool, ThreadSealerPool, type Sealed, type Sealing } from './walSealer.js';
import { OpenerPool, type WalOpening } from './walOpener.js';
import { lockWalWriter, type WalWriterLock } from './walWriterLock.js';

/** Segment, timeline history and backup history file names, as PostgreSQL makes them. */
export const WAL_FILE_NAME = /^[0-9A-F]{8}(\.history|[0-9A-F]{16}(\.partial|\.[0-9A-F]{8}\.backup)?)$/;

export interface WalEntry {
  segment: string;
  key: string;
  compression: Compression;
  bytes: number;
  sha256: string;
  plainBytes: number;
  plainSha256: string;
  archivedAt: string;
  /** For a timeline history file: its lines, so a wal-push without the private key can check a branch. */
  switches?: TimelineSwitch[];
  /** Added by the shipping workflow (the spool's own entries are unsigned): over every other field. */
  signature?: ManifestSignature;
}

/** Which WAL entries a host replays: signed by a trusted key, unsigned in its own spool, or (allowUnsigned) any unsigned one. */
export interface WalTrust {
  verifier: Verifier;
  allowUnsigned: boolean;
  /** The repository this host's archive_command writes to (its own spool), if it has one. */
  ownSpool?: string;
}

/**
 * The WAL trust of a host. Its own spool's unsigned entries are trusted only when the
 * configuration names it (wal.spool): the default spool is merely the first filesystem
 * repository, which on a host that only restores may well be a shared NAS.
 */
export function walTrustOf(config: Config, verifier: Verifier, allowUnsigned: boolean): WalTrust {
  return { verifier, allowUnsigned, ownSpool: config.wal.spool };
}

/** Why an entry found in a repository is not replayed, or undefined when it may be. */
export function walEntryRefusal(entry: WalEntry, repository: string, trust: WalTrust): { reason: string; errorType: ErrorType } | undefined {
  const verdict = checkSignature(entry, trust.verifier);
  if (verdict.state === 'signed') return undefined;
  if (verdict.state === 'unsigned' && (trust.allowUnsigned || repository === trust.ownSpool)) return undefined;
  const refusal = refusalOf(verdict);
  // The one reason this host's own spool is refused: the configuration does not say it is one.
  if (verdict.state === 'unsigned' && trust.ownSpool === undefined) refusal.reason += '; if this is the repository this host\'s own archive_command writes to, name it in wal.spool';
  return refusal;
}

/** Whether an admitted entry is admitted without --allow-unsigned: signed by a trusted key, or in this host's own spool. */
function isVouched(entry: WalEntry, repository: string, trust: WalTrust): boolean {
  return walEntryRefusal(entry, repository, { ...trust, allowUnsigned: false }) === undefined;
}

const PREFIX = 'wal/';
/** No entry of ours comes near this (a few hundred bytes, with its signature). */
const WAL_ENTRY_MAX_BYTES = 64 * 1024;

export function walEntryKey(segment: string): string {
  return `${PREFIX}${segment}.json`;
}

function walObjectKey(segment: string, compression: Compression): string {
  return `${PREFIX}${segment}.${compressionSuffix(compression)}.gpg`;
}

/** The repository archive_command writes to: wal.spool, else the first filesystem repository. */
export function spoolRepository(config: Config, repositories: Repository[]): Repository {
  const name = config.wal.spool ?? Object.entries(config.repositories).find(([, r]) => r.type === 'filesystem')?.[0];
  const spool = repositories.find((r) => r.name === name);
  if (!spool) throw permanent(ErrorType.InvalidConfig, `wal.spool: no filesystem repository to archive WAL into (configured: ${repositories.map((r) => r.name).join(', ')})`);
  return spool;
}

/**
 * The spool as the folder wal-push and the pusher write into: the sealers write the objects'
 * files themselves (walSealer.ts), and the writer lock is on that folder (walWriterLock.ts).
 */
export function spoolFolder(config: Config, repositories: Repository[]): FilesystemRepository {
  const spool = spoolRepository(config, repositories);
  if (!(spool instanceof FilesystemRepository)) throw permanent(ErrorType.InvalidConfig, `wal.spool: ${spool.name} is not a filesystem repository; WAL is archived into a folder of this host`);
  return spool;
}

/** A segment's entry; a damaged one (cut short, not this segment's) is ManifestDamaged, naming it. */
export async function readWalEntry(repository: Repository, segment: string, reader?: Reader): Promise<WalEntry | undefined> {
  const key = walEntryKey(segment);
  if (!(await (reader ? within(repository.stat(key), reader, `repository ${repository.name}: stat ${key}`) : repository.stat(key)))) return undefined;
  let body: string | undefined;
  if (reader) {
    // Given a reader (the monitor's look): a read that stalls fails as unreachable, never hangs
    // the look; an entry far larger than any is damaged, not read into memory.
    try {
      body = (await readBack(repository, key, reader, true, undefined, WAL_ENTRY_MAX_BYTES)).toString('utf8');
    } catch (err) {
      if (!(err instanceof LongerThanExpected)) throw err;
      throw permanent(ErrorType.ManifestDamaged, `${repository.name}: the WAL entry ${key} is damaged (more than ${WAL_ENTRY_MAX_BYTES} bytes); the segment counts as not archived there`);
    }
  }
  let entry: WalEntry;
  try {
    entry = JSON.parse(body ?? (await text(await repository.get(key)))) as WalEntry;
  } catch {
    throw permanent(ErrorType.ManifestDamaged, `${repository.name}: the WAL entry ${key} is damaged (not whole JSON); the segment counts as not archived there`);
  }
  if (entry?.segment !== segment || typeof entry.key !== 'string' || typeof entry.sha256 !== 'string' || typeof entry.bytes !== 'number') {
    throw permanent(ErrorType.ManifestDamaged, `${repository.name}: the WAL entry ${key} is damaged (not an entry of ${segment}); the segment counts as not archived there`);
  }
  // Its object is the segment's own, as wal-push names it: an entry naming another object (the
  // spool is the database server's OS user's to write) would have the shipping overwrite that
  // object in every other repository, or a fetch read it.
  if (!COMPRESSIONS.includes(entry.compression) || entry.key !== walObjectKey(segment, entry.compression)) {
    throw permanent(ErrorType.ManifestDamaged, `${repository.name}: the WAL entry ${key} is damaged (its object is not ${segment}'s own); the segment counts as not archived there`);
  }
  return entry;
}

function isDamaged(err: unknown): boolean {
  return (err as { type?: string })?.type === ErrorType.ManifestDamaged;
}

/** Every archived segment of a repository, oldest first (names sort in WAL order within a timeline). */
export async function listWalEntries(repository: Repository): Promise<string[]> {
  return (await repository.list(PREFIX)).map((o) => o.key.slice(PREFIX.length)).filter((k) => k.endsWith('.json')).map((k) => k.slice(0, -'.json'.length));
}

export type PushOutcome = { segment: string; action: 'stored' | 'already-archived'; bytes: number };

export interface PushOptions {
  /** Sealers started by the caller (startWalSealing); otherwise one is started for this push. */
  sealing?: Sealing;
  /** Without `sealing`: the largest file sealed in a thread (startWalSealing). */
  inThreadUpTo?: number;
  /** The spool's writer lock, held by the caller (the pusher, for its whole run); otherwise taken for this push. */
  writerLock?: WalWriterLock;
}

/** How long a wal-push waits for another writer of the spool to end. */
const WRITER_LOCK_WAIT_SECONDS = 60;

/**
 * archive_command: stores one WAL file durably (temp name, fsync, rename, fsync the folder),
 * compressed and encrypted, then its entry. Pushing the identical file again succeeds; a
 * different file under an archived name is refused (WalConflict), since overwriting it could
 * destroy the only copy of history. Success is reported only after both objects are durable.
 */
export async function pushSegment(config: Config, repositories: Repository[], file: string, options: PushOptions = {}): Promise<PushOutcome> {
  const segment = path.basename(file);
  if (!WAL_FILE_NAME.test(segment)) throw permanent(ErrorType.InvalidInput, `wal-push: ${file} is not a WAL file name (expected e.g. 000000010000000000000003)`);
  const spool = spoolFolder(config, repositories);
  const { head, size, identity } = await readWalFileHead(file, segment);
  const verdict = head.length === size ? checkWalFile(segment, head) : checkSegment(segment, head, size);
  // The problem, never the bytes: a stray file may hold anything.
  if (!verdict.ok) throw permanent(ErrorType.InvalidInput, `wal-push: ${file} is not a WAL file PostgreSQL could replay: ${verdict.problem}; nothing archived`);
  if (verdict.header) {
    if (verdict.header.timeline !== parseInt(segment.slice(0, 8), 16)) {
      const history = await readWalEntry(spool, `${segment.slice(0, 8)}.history`);
      // A history archived before entries recorded its lines can only be taken on trust.
      const problem = history && !history.switches ? undefined : checkBranchSegment(segment, verdict.header, history?.switches);
      if (problem) throw permanent(ErrorType.InvalidInput, `wal-push: ${file} is not a WAL file PostgreSQL could replay: ${problem}; nothing archived`);
    }
    await checkClusterIdentity(spool, verdict.header.systemIdentifier, segment);
  }
  // One writer of the spool at a time (walWriterLock.ts): from the look for an entry to the entry written.
  const lock = options.writerLock ?? (await lockWalWriter(spool.root, WRITER_LOCK_WAIT_SECONDS));
  try {
    return await storeSegment(config, spool, file, { segment, head, size, identity, switches: verdict.switches }, { ...options, writerLock: lock });
  } finally {
    if (!options.writerLock) await lock.release();
  }
}

/** What pushSegment read of a WAL file and checked. */
interface ReadWalFile {
  segment: string;
  head: Buffer;
  size: number;
  identity: string;
  switches?: TimelineSwitch[];
}

/** pushSegment's storing, under the spool's writer lock. */
async function storeSegment(config: Config, spool: FilesystemRepository, file: string, read: ReadWalFile, options: PushOptions & { writerLock: WalWriterLock }): Promise<PushOutcome> {
  const { segment, head, size, identity } = read;
  const stillWriter = () => {
    if (!options.writerLock.held()) throw transient(ErrorType.StorageUnreachable, `wal-push: the WAL writer lock of ${options.writerLock.folder} was lost (its process ended) while ${segment} was stored; stored again on the next call`);
  };
  const existing = await readWalEntry(spool, segment);
  if (existing) {
    const plainSha256 = head.length === size ? createHash('sha256').update(head).digest('hex') : await fileSha256(file);
    if (existing.plainSha256 === plainSha256) {
      // Its object must still be there whole (size): an entry whose object was removed or cut
      // short must not make PostgreSQL drop the only copy left. Not rewritten: an operator looks.
      const object = await spool.stat(existing.key);
      if (object?.bytes !== existing.bytes) {
        throw permanent(
          ErrorType.ManifestDamaged,
          `wal-push: ${segment} has an entry in ${spool.name} but its object ${existing.key} is ${object ? `${object.bytes} bytes, not ${existing.bytes}` : 'missing'}; not archived. Move the entry aside so the segment is stored again`,
        );
      }
      return { segment, action: 'already-archived', bytes: existing.bytes };
    }
    throw permanent(
      ErrorType.WalConflict,
      `wal-push: ${segment} is already archived in ${spool.name} with different content (sha256 ${existing.plainSha256}, this one ${plainSha256}); refusing to overwrite it. Two clusters archiving to one place?`,
    );
  }
  // No entry: whatever object is stored under the key is not archived (a killed push's), and
  // this push is its only writer.
  const compression = config.compression;
  const key = walObjectKey(segment, compression.algorithm);
  // A caller that pushes many segments (the pusher) starts its sealers once, and closes them itself.
  const own = options.sealing ? undefined : await startWalSealing(config, 1, { inThreadUpTo: options.inThreadUpTo });
  try {
    const sealing = options.sealing ?? own!.sealing;
    let sealed: Sealed | undefined;
    stillWriter();
    const stored = await spool.putWritten(
      key,
      async (partial) => {
        sealed = await sealing.seal(file, partial);
      },
      { soleWriter: true },
    );
    // The file was read more than once (its head, then checksummed and compressed): it must be
    // the same file, unchanged, throughout.
    if ((await statIdentity(file)) !== identity || (head.length === size && createHash('sha256').update(head).digest('hex') !== sealed!.plainSha256)) {
      throw permanent(ErrorType.InvalidInput, `wal-push: ${file} changed while it was archived`);
    }
    const entry: WalEntry = { segment, key, compression: compression.algorithm, bytes: stored.bytes, sha256: sealed!.sha256, plainBytes: size, plainSha256: sealed!.plainSha256, archivedAt: new Date().toISOString(), ...(read.switches && { switches: read.switches }) };
    stillWriter();
    // The sole writer (the lock): what a killed push left of the entry's temp file goes now.
    await writeJson(spool, walEntryKey(segment), entry, { soleWriter: true });
    return { segment, action: 'stored', bytes: stored.bytes };
  } finally {
    await own?.close();
  }
}

/**
 * Sealers for WAL files (walSealer.ts), `processes` of them, with the public key loaded once:
 * what pushSegment seals with. The caller closes them (and disposes of the key) when done.
 * `inThreadUpTo`: the largest file sealed in a thread (tests set 0 to have the bash sealers seal all).
 */
export async function startWalSealing(config: Config, processes: number, options: { inThreadUpTo?: number } = {}): Promise<{ sealing: Sealing; close: () => Promise<void> }> {
  const recipient = await loadRecipient(config.encryption.publicKeyFile);
  const inThreadUpTo = options.inThreadUpTo ?? SEAL_IN_THREAD_UP_TO;
  const encrypt = encryptorCommand(recipient);
  const threads = inThreadUpTo > 0 ? new ThreadSealerPool(processes, config.compression, encrypt, undefined, inThreadUpTo) : undefined;
  // Started when a file first needs them. One thread per segment: segments are stored several at
  // a time (the pusher), and one zstd spreading a 16 MiB file over every core only adds its
  // threads' overhead to theirs.
  let bash: SealerPool | undefined;
  const bashSealers = () => (bash ??= new SealerPool(processes, fileCompressorCommand({ ...config.compression, threads: 1 }), encrypt));
  const sizeOf = (file: string) => stat(file).then((s) => s.size, () => 0);
  return {
    sealing: { seal: async (file, out) => (threads && (await sizeOf(file)) <= inThreadUpTo ? threads.seal(file, out) : bashSealers().seal(file, out)) },
    close: async () => {
      await Promise.all([threads?.close(), bash?.close()]);
      await recipient.dispose();
    },
  };
}

/**
 * Openers of archived WAL files (walOpener.ts), `processes` of them: what fetchSegment opens a
 * copy on a filesystem repository with. The caller closes them when done.
 */
export function startWalOpening(config: Config, processes: number): OpenerPool {
  if (!config.encryption.privateKeyHome) throw permanent(ErrorType.PrivateKeyMissing, `host ${config.host} has no encryption.privateKeyHome: wal-fetch needs the private key`);
  return new OpenerPool(processes, { home: config.encryption.privateKeyHome, passphraseFile: config.encryption.passphraseFile });
}

/**
 * The sha256 of a file, computed by openssl, which uses the CPU's SHA instructions (coreutils'
 * sha256sum took 70-100 ms of CPU per 16 MiB segment here, openssl 10-20 ms): another process,
 * so on another core.
 */
async function fileSha256(file: string): Promise<string> {
  try {
    const { stdout } = await runCommand('openssl', ['dgst', '-sha256', '-r', '--', file]);
    // A path holding a newline has openssl escape its line, a backslash first.
    const hash = /^\\?([0-9a-f]{64})/.exec(stdout)?.[1];
    if (!hash) throw new Error(`openssl dgst printed no checksum: ${stdout.slice(0, 100)}`);
    return hash;
  } catch (err) {
    throw classifyFilesystemError(err, `wal-push: reading ${file}`);
  }
}

/** What identifies a file's content without reading it: device, inode, size, mtime (ns), ctime (ns). */
async function statIdentity(file: string): Promise<string> {
  const s = await stat(file, { bigint: true });
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

/** How much of a segment wal-push reads itself: its first page's header is all it checks. */
const HEAD_BYTES = 64 * 1024;

/**
 * Reads the head of a file wal-push was given (a text file whole), refusing what is no regular
 * file or too big to be a WAL file; with its size and identity (statIdentity) before the read.
 */
async function readWalFileHead(file: string, name: string): Promise<{ head: Buffer; size: number; identity: string }> {
  try {
    const identity = await statIdentity(file);
    // Opened without blocking, and what was opened is checked: a FIFO put in its place after a
    // check of the path would hold the open (and a thread of libuv's pool) for ever.
    const handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw permanent(ErrorType.InvalidInput, `wal-push: ${file} is not a regular file; nothing archived`);
      const kind = walFileKind(name);
      const segmentKind = kind === 'segment' || kind === 'partial';
      const limit = segmentKind ? MAX_SEGMENT_BYTES : MAX_TEXT_FILE_BYTES;
      if (info.size > limit) throw permanent(ErrorType.InvalidInput, `wal-push: ${file} has ${info.size} bytes, more than a ${kind} file can (${limit}); nothing archived`);
      const want = segmentKind ? Math.min(info.size, HEAD_BYTES) : info.size;
      const head = Buffer.alloc(want);
      const { bytesRead } = await handle.read(head, 0, want, 0);
      // A text file must be read whole (its size is checked again after the store).
      return { head: head.subarray(0, bytesRead), size: segmentKind ? info.size : bytesRead, identity };
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw classifyFilesystemError(err, `wal-push: reading ${file}`);
  }
}

const MAX_SEGMENT_BYTES = 1024 * 1024 * 1024;

/** Which cluster's WAL the spool holds: recorded from the first segment pushed, then enforced. */
export const CLUSTER_IDENTITY_KEY = 'wal-cluster.json';

interface ClusterIdentity {
  systemIdentifier: string;
  firstSegment: string;
  recordedAt: string;
}

/**
 * Refuses a segment of another cluster (another initdb, so another system identifier): two
 * clusters archiving to one spool would take each other's segment names, and a recovery would
 * replay a mix. The first segment pushed records the identifier.
 */
async function checkClusterIdentity(spool: Repository, systemIdentifier: string, segment: string): Promise<void> {
  const mine: ClusterIdentity = { systemIdentifier, firstSegment: segment, recordedAt: new Date().toISOString() };
  // Created atomically: of two clusters whose first segments arrive at once, one records itself.
  // Once recorded, only read: a create writes (and syncs) a temp file every time, and a wal-push
  // killed in it (PostgreSQL's immediate shutdown) left that file behind.
  const recorded = (await spool.stat(CLUSTER_IDENTITY_KEY)) !== undefined;
  if (recorded || !(await spool.create(CLUSTER_IDENTITY_KEY, Buffer.from(JSON.stringify(mine, null, 2) + '\n')))) {
    let known: ClusterIdentity;
    try {
      known = JSON.parse(await text(await spool.get(CLUSTER_IDENTITY_KEY))) as ClusterIdentity;
      if (typeof known?.systemIdentifier !== 'string') throw new Error('no systemIdentifier');
    } catch {
      throw permanent(
        ErrorType.ManifestDamaged,
        `wal-push: ${spool.name}'s ${CLUSTER_IDENTITY_KEY} (which cluster the spool archives) is damaged; nothing archived. Check which cluster archives here, then write it again or remove it.`,
      );
    }
    if (known.systemIdentifier !== systemIdentifier) {
      throw permanent(
        ErrorType.WalConflict,
        `wal-push: ${segment} is WAL of the cluster with system identifier ${systemIdentifier}, but ${spool.name} archives the cluster ${known.systemIdentifier} (recorded from ${known.firstSegment}); nothing archived. Give each cluster its own repository.`,
      );
    }
  }
}

/**
 * Copies segments the target lacks from the spool, byte for byte, each checked against its
 * entry before the entry is written there. Returns the segments shipped.
 *
 * A stale attempt harms nothing: a segment whose entry appeared in the target since the listing
 * (a newer attempt shipped it) is left as it is, an object already stored whole is not written
 * again, an entry is never overwritten, and once `signal` fires (the attempt was cancelled or
 * superseded: its heartbeat found it gone) nothing more is written.
 */
export interface ShipOptions {
  signal?: AbortSignal;
  onProgress?: (shipped: number) => void;
  /** Signs each entry shipped (the backup host's key); without it (signing.required false) entries go unsigned. */
  signer?: Signer;
}

export async function shipSegments(spool: Repository, target: Repository, options: ShipOptions = {}): Promise<string[]> {
  try {
    return await shipMissing(spool, target, options);
  } catch (err) {
    // A read or write cut short by the cancellation reports the cancellation, not an I/O error.
    throw options.signal?.aborted ? (options.signal.reason as Error) : err;
  }
}

async function shipMissing(spool: Repository, target: Repository, options: ShipOptions): Promise<string[]> {
  const { signal, onProgress, signer } = options;
  const stillOurs = () => signal?.throwIfAborted();
  const have = new Set(await listWalEntries(target));
  const missing = (await listWalEntries(spool)).filter((s) => !have.has(s));
  const shipped: string[] = [];
  const damaged: string[] = [];
  for (const segment of missing) {
    stillOurs();
    let entry: WalEntry | undefined;
    try {
      entry = await readWalEntry(spool, segment);
      if (!entry || (await entryAlreadyThere(target, entry))) continue;
    } catch (err) {
      // One damaged entry must not stop the shipping of every later segment: reported at the end.
      if (!isDamaged(err)) throw err;
      damaged.push((err as Error).message);
      continue;
    }
    if (!(await holdsWhole(target, entry, signal))) {
      stillOurs();
      // The host's one shipping workflow is the key's only writer: a temp file of it there is an
      // earlier attempt's (one that failed on a read-only or full repository could not remove
      // its own, and none other would ever retry that key), removed now. A stale attempt's
      // write it cuts short fails, as a stale attempt should.
      const info = await target.put(entry.key, await spool.get(entry.key, { signal }), { signal, soleWriter: true });
      if (info.bytes !== entry.bytes) throw permanent(ErrorType.ChecksumMismatch, `shipping ${segment} to ${target.name}: ${info.bytes} bytes stored, ${entry.bytes} expected`);
      if (!(await holdsWhole(target, entry, signal))) throw permanent(ErrorType.ChecksumMismatch, `shipping ${segment} to ${target.name}: the stored copy reads back with another sha256`);
    }
    stillOurs();
    if (await entryAlreadyThere(target, entry)) continue;
    // As its object: a temp file of the entry there is an earlier attempt's, cleared now.
    await writeJson(target, walEntryKey(segment), signer ? signManifest(entry, signer) : entry, { soleWriter: true });
    shipped.push(segment);
    onProgress?.(shipped.length);
  }
  if (damaged.length) throw permanent(ErrorType.ManifestDamaged, `shipping to ${target.name}: ${shipped.length} segments shipped, ${damaged.length} skipped: ${damaged.join('; ')}`);
  return shipped;
}

/**
 * Whether the target has the segment's entry already (written by a newer attempt or run since
 * the listing). One describing other bytes is never overwritten: WalConflict.
 */
async function entryAlreadyThere(target: Repository, entry: WalEntry): Promise<boolean> {
  const there = await readWalEntry(target, entry.segment);
  if (!there) return false;
  if (there.sha256 !== entry.sha256 || there.plainSha256 !== entry.plainSha256) {
    throw permanent(ErrorType.WalConflict, `shipping ${entry.segment} to ${target.name}: it already holds an entry for other bytes; left as it is`);
  }
  return true;
}

/** Whether the target holds the entry's object whole (size and sha256 of the stored bytes). */
async function holdsWhole(target: Repository, entry: WalEntry, signal: AbortSignal | undefined): Promise<boolean> {
  const info = await target.stat(entry.key);
  if (info?.bytes !== entry.bytes) return false;
  const hash = createHash('sha256');
  for await (const chunk of await target.get(entry.key, { signal })) hash.update(chunk as Buffer);
  return hash.digest('hex') === entry.sha256;
}

/**
 * restore_command: writes the segment to `destination` (temp name, then rename) from the first
 * repository with a whole copy whose entry `trust` admits. Returns false when no repository has
 * it: PostgreSQL asks for segments past the end of the archive, and a non-zero exit is how it
 * learns there are none. Permanent BadSignature or UnsignedBackup when entries exist but none
 * is admitted (each repository's reason named): never replayed, never taken for the archive's end in silence.
 */
export async function fetchSegment(config: Config, repositories: Repository[], segment: string, destination: string, trust: WalTrust, options: { opener?: WalOpening } = {}): Promise<boolean> {
  if (!WAL_FILE_NAME.test(segment)) throw permanent(ErrorType.InvalidInput, `wal-fetch: ${segment} is not a WAL file name`);
  if (!config.encryption.privateKeyHome) throw permanent(ErrorType.PrivateKeyMissing, `host ${config.host} has no encryption.privateKeyHome: wal-fetch needs the private key`);
  let entry: WalEntry | undefined;
  const holders: Repository[] = [];
  const refused: { repository: string; reason: string; errorType: ErrorType }[] = [];
  const unread: string[] = [];
  const admittedIn: { repository: Repository; found: WalEntry; vouched: boolean }[] = [];
  for (const repository of repositories) {
    const found = await readWalEntry(repository, segment).catch((err: unknown) => {
      // A damaged entry was read: that repository answered, and what it holds is refused (a
      // planted file there must not pass for a repository that could not be read, retried).
      if (isDamaged(err)) refused.push({ repository: repository.name, reason: `holds a damaged entry (${(err as Error).message})`, errorType: ErrorType.ManifestDamaged });
      else unread.push(`${repository.name}: ${(err as Error).message}`);
      return undefined;
    });
    if (!found) continue;
    const refusal = walEntryRefusal(found, repository.name, trust);
    if (refusal) {
      refused.push({ repository: repository.name, ...refusal });
      continue;
    }
    admittedIn.push({ repository, found, vouched: isVouched(found, repository.name, trust) });
  }
  // An entry admitted only by --allow-unsigned (anyone who can write a repository can make one)
  // gives way to a signed one, or one of this host's own spool, that describes other WAL.
  const vouched = admittedIn.filter((a) => a.vouched);
  const usable = vouched.length ? admittedIn.filter((a) => a.vouched || a.found.plainSha256 === vouched[0].found.plainSha256) : admittedIn;
  for (const a of usable) {
    // Holders of another admitted entry are read against this one's checksums: a copy that differs is skipped.
    entry ??= a.found;
    holders.push(a.repository);
  }
  // Admitted entries that describe different WAL (one signed by another trusted host's key, or
  // this host's from another cluster, planted under this name): which one is this archive's
  // cannot be told, and repository order must not decide what PostgreSQL replays.
  if (new Set(usable.map((a) => a.found.plainSha256)).size > 1) {
    throw permanent(
      ErrorType.WalConflict,
      `wal-fetch: ${segment} is not replayed: trusted entries in different repositories describe different WAL (${usable.map((a) => `${a.repository.name}: plaintext sha256 ${a.found.plainSha256}`).join('; ')}); one was planted or comes from another cluster. Remove the wrong one`,
    );
  }
  if (!entry) {
    // Not found anywhere readable: the end of the archive, unless a repository could not be
    // read (then it is said which, so a recovery that ends here is not taken for a complete one).
    // Entries refused elsewhere do not settle it either: the one that cannot be read may hold an admitted one.
    if (unread.length) {
      const refusals = refused.length ? `; refused: ${refused.map((r) => `in ${r.repository} ${r.reason}`).join('; ')}` : '';
      throw transient(ErrorType.StorageUnreachable, `wal-fetch: ${segment} is in no repository that could be read (${unread.join('; ')})${refusals}`);
    }
    if (!refused.length) return false;
    const hint = refused.some((r) => r.errorType === ErrorType.UnsignedBackup) ? ' (archived before WAL entries were signed: recover with --allow-unsigned, if you know it is so)' : '';
    const worst = [ErrorType.BadSignature, ErrorType.ManifestDamaged, ErrorType.UnsignedBackup].find((t) => refused.some((r) => r.errorType === t))!;
    throw permanent(
      worst,
      `wal-fetch: ${segment} is not replayed: its entry ${refused.map((r) => `in ${r.repository} ${r.reason}`).join('; ')}${hint}`,
    );
  }
  // A name of this call's own, created exclusively: two fetches of one segment (the fetch-ahead
  // and restore_command) never write into, rename or remove each other's file, and a file or
  // link already there is never followed.
  const temp = `${destination}.backupctl-${process.pid}-${randomBytes(6).toString('hex')}.partial`;
  try {
    await readFirstGoodCopy({
      object: { role: 'dump', key: entry.key, bytes: entry.bytes, sha256: entry.sha256, plainBytes: entry.plainBytes },
      repositories: holders,
      compression: entry.compression,
      privateKeyHome: config.encryption.privateKeyHome,
      passphraseFile: config.encryption.passphraseFile,
      signal: new AbortController().signal,
      consume: async (plain) => {
        // A copy that failed half way left its bytes under this call's own name.
        await rm(temp, { force: true });
        const hash = createHash('sha256');
        plain.on('data', (chunk: Buffer) => hash.update(chunk));
        await pipeline(plain, createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
        // The stored bytes matched; the plaintext must be what wal-push checked too.
        if (hash.digest('hex') !== entry!.plainSha256) {
          throw permanent(ErrorType.ChecksumMismatch, `wal-fetch: ${segment} decrypts to other bytes than were archived (plaintext sha256); not used`);
        }
      },
      consumerFailure: (err) => classifyFilesystemError(err, `wal-fetch: writing ${temp}`),
      // A copy on a filesystem is opened by one of the caller's openers, its bytes never
      // through node: the fetcher keeps ahead of replay so.
      direct: (repository) => {
        const opener = options.opener;
        if (!opener || !(repository instanceof FilesystemRepository)) return undefined;
        return (async () => {
          await rm(temp, { force: true });
          const handle = await repository.openFile(entry!.key);
          try {
            await opener.open(`/proc/${process.pid}/fd/${handle.fd}`, temp, { sha256: entry!.sha256, plainSha256: entry!.plainSha256, compression: entry!.compression, where: `repository ${repository.name}: ${entry!.key}` });
          } finally {
            await handle.close();
          }
        })();
      },
    });
    await rename(temp, destination);
    return true;
  } finally {
    await rm(temp, { force: true });
  }
}

/** How far a repository's archive is behind the spool: segments missing, and since when. */
export async function archiveLag(spool: Repository, target: Repository): Promise<{ newestSegment: string | null; behind: string[] }> {
  const have = new Set(await listWalEntries(target));
  const behind = (await listWalEntries(spool)).filter((s) => !have.has(s));
  return { newestSegment: newestSegmentOf([...have]), behind };
}

/**
 * The newest WAL segment among archived file names: a timeline's history file (`00000002.history`)
 * and a base backup's history file (`...68.00000028.backup`) sort among or after the segments,
 * and are no segment; a `.partial` one is. Null when there is none.
 */
export function newestSegmentOf(names: string[]): string | null {
  return names.filter((n) => /^[0-9A-F]{24}(\.partial)?$/.test(n)).sort().at(-1) ?? null;
}
