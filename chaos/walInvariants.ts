// The WAL archive, read from outside backupctl: the repositories' folders and the S3 server
// itself (not through the fault proxy), PostgreSQL's own archive_status, plain gpg and zstd.
// What must hold: the spool holds every segment PostgreSQL counts as archived, with no gap;
// every other repository holds, once shipping has caught up, exactly the spool's segments; each
// segment is one object and one entry, and the same bytes everywhere (its stored sha256, the
// entry's, and decrypted: the entry's plaintext sha256, a WAL page header naming this segment
// of this cluster, and, where the harness saw it, the file PostgreSQL wrote); nothing is
// stored half (an object without its entry).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { BUCKET, HOST, type ChaosStack } from './stack.js';

const SEGMENT = /^[0-9A-F]{24}$/;
const WAL_NAME = /^[0-9A-F]{8}(\.history|[0-9A-F]{16}(\.partial|\.[0-9A-F]{8}\.backup)?)$/;
const OBJECT = /^(.+)\.([a-z0-9]+)\.gpg$/;
const SEGMENT_BYTES = 16 * 1024 * 1024;
/** PostgreSQL's XLP_LONG_HEADER: the first page of a segment carries the long header. */
const XLP_LONG_HEADER = 0x0002;

export const WAL_REPOSITORIES = ['local', 'nas', 's3'] as const;
export type WalRepository = (typeof WAL_REPOSITORIES)[number];

interface Listed {
  bytes: number;
  /** Changes when the object is written again. */
  stamp: string;
}

interface EntryLike {
  segment: string;
  key: string;
  compression: string;
  bytes: number;
  sha256: string;
  plainBytes: number;
  plainSha256: string;
  signature?: unknown;
}

/** What one stack's checks have already read whole, so each run reads only what changed. */
interface Memory {
  /** `${repository}\0${key}` -> stamp when read and found whole. */
  whole: Map<string, string>;
  /** `${repository}\0${entry key}` -> stamp and the entry read then. */
  entries: Map<string, { stamp: string; entry: EntryLike | string }>;
  /** Segments whose spool copy was decrypted and checked. */
  decrypted: Set<string>;
  systemIdentifier?: bigint;
}

const memories = new WeakMap<ChaosStack, Memory>();

function memoryOf(stack: ChaosStack): Memory {
  let memory = memories.get(stack);
  if (!memory) memories.set(stack, (memory = { whole: new Map(), entries: new Map(), decrypted: new Set() }));
  return memory;
}

function rootOf(stack: ChaosStack, repository: WalRepository): string | undefined {
  return repository === 's3' ? undefined : stack.repositories[repository];
}

/** Every object under wal/ of a repository: key -> size and stamp. */
export async function listWal(stack: ChaosStack, repository: WalRepository): Promise<Map<string, Listed>> {
  const listed = new Map<string, Listed>();
  const root = rootOf(stack, repository);
  if (root) {
    const dir = path.join(root, 'wal');
    if (!existsSync(dir)) return listed;
    for (const name of readdirSync(dir)) {
      const info = statSync(path.join(dir, name), { throwIfNoEntry: false });
      if (info) listed.set(`wal/${name}`, { bytes: info.size, stamp: `${info.ino}:${info.mtimeMs}:${info.size}` });
    }
    return listed;
  }
  let token: string | undefined;
  do {
    const page = await stack.s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${HOST}/wal/`, ContinuationToken: token }));
    for (const o of page.Contents ?? []) listed.set(o.Key!.slice(HOST.length + 1), { bytes: o.Size ?? -1, stamp: `${o.ETag}:${o.LastModified?.toISOString()}:${o.Size}` });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return listed;
}

async function bytesOf(stack: ChaosStack, repository: WalRepository, key: string): Promise<Buffer> {
  const root = rootOf(stack, repository);
  if (root) return readFileSync(path.join(root, key));
  const answer = await stack.s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${HOST}/${key}` }));
  return Buffer.from(await answer.Body!.transformToByteArray());
}

/** The names with an entry (wal/<name>.json) in a listing. */
export function entryNames(listing: Map<string, Listed>): Set<string> {
  return new Set([...listing.keys()].filter((k) => k.endsWith('.json')).map((k) => k.slice('wal/'.length, -'.json'.length)));
}

function segmentNumber(name: string): number {
  return parseInt(name.slice(8, 16), 16) * 256 + parseInt(name.slice(16, 24), 16);
}

function segmentName(timeline: string, number: number): string {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${timeline}${hex(Math.floor(number / 256))}${hex(number % 256)}`;
}

/**
 * The spool's continuity and PostgreSQL's own record of what it archived, from the local
 * folder and archive_status alone (cheap: checked after every run, whatever its workflow).
 */
export async function spoolProblems(stack: ChaosStack): Promise<string[]> {
  const problems: string[] = [];
  // archive_status/<name>.done is written only after archive_command succeeded for it, so it is
  // read FIRST: a file marked done by then has its entry in the spool by the listing after it.
  // (Listing first raced with an archive_command finishing between the two reads: chaos seed
  // 20261129, a base backup's .backup history file archived as its run closed.)
  const statusDir = path.join(stack.cluster.dataDir, 'pg_wal', 'archive_status');
  const done = existsSync(statusDir) ? readdirSync(statusDir).filter((f) => f.endsWith('.done')).map((f) => f.slice(0, -'.done'.length)) : [];
  const spool = entryNames(await listWal(stack, 'local'));
  const byTimeline = new Map<string, number[]>();
  for (const name of [...spool].filter((n) => SEGMENT.test(n))) byTimeline.set(name.slice(0, 8), [...(byTimeline.get(name.slice(0, 8)) ?? []), segmentNumber(name)]);
  for (const [timeline, numbers] of byTimeline) {
    numbers.sort((a, b) => a - b);
    const missing: string[] = [];
    for (let i = 1; i < numbers.length; i++) for (let n = numbers[i - 1] + 1; n < numbers[i]; n++) missing.push(segmentName(timeline, n));
    if (missing.length) problems.push(`the spool's WAL has a gap: ${missing.length} segment(s) missing between ${segmentName(timeline, numbers[0])} and ${segmentName(timeline, numbers.at(-1)!)}: ${missing.slice(0, 3).join(', ')}`);
  }
  const unrecorded = done.filter((name) => WAL_NAME.test(name) && !spool.has(name));
  if (unrecorded.length) problems.push(`PostgreSQL counts ${unrecorded.length} WAL file(s) archived that have no entry in the spool: ${unrecorded.slice(0, 3).join(', ')}`);
  return problems;
}

/** What the spool has and the other repositories lack, up to `upTo` (a name) when given. */
export async function shippingLag(stack: ChaosStack, upTo?: string): Promise<{ spool: Set<string>; missing: Record<string, string[]> }> {
  const spool = entryNames(await listWal(stack, 'local'));
  const wanted = [...spool].filter((n) => upTo === undefined || n <= upTo);
  const missing: Record<string, string[]> = {};
  for (const repository of ['nas', 's3'] as const) {
    const there = entryNames(await listWal(stack, repository));
    missing[repository] = wanted.filter((n) => !there.has(n)).sort();
  }
  return { spool, missing };
}

function headerProblem(name: string, plain: Buffer, systemIdentifier: bigint): string | undefined {
  if (plain.length !== SEGMENT_BYTES) return `${plain.length} bytes, not a 16 MiB segment`;
  const info = plain.readUInt16LE(2);
  const timeline = plain.readUInt32LE(4);
  const pageAddress = plain.readBigUInt64LE(8);
  const sysid = plain.readBigUInt64LE(24);
  const segmentSize = plain.readUInt32LE(32);
  const wanted = BigInt(segmentNumber(name)) * BigInt(SEGMENT_BYTES);
  if (!(info & XLP_LONG_HEADER) || segmentSize !== SEGMENT_BYTES) return 'no long page header of a 16 MiB segment at its start';
  if (timeline !== parseInt(name.slice(0, 8), 16)) return `its header says timeline ${timeline}`;
  if (pageAddress !== wanted) return `its header says it starts at ${pageAddress.toString(16)}, not ${wanted.toString(16)}`;
  if (sysid !== systemIdentifier) return `its header names cluster ${sysid}, not ${systemIdentifier}`;
  return undefined;
}

async function decrypt(stack: ChaosStack, stored: Buffer, compression: string): Promise<Buffer> {
  const plain = await execa('gpg', ['--batch', '--quiet', '--homedir', stack.keys.privateHome, '--decrypt'], { input: stored, encoding: 'buffer', stripFinalNewline: false });
  if (compression !== 'zstd') throw new Error(`compression ${compression}: the chaos stack archives with zstd`);
  return Buffer.from((await execa('zstd', ['-d', '-c'], { input: plain.stdout, encoding: 'buffer', stripFinalNewline: false })).stdout);
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/**
 * The whole archive (see the top of this file). `shippedUpTo`: shipping has caught up to this
 * name, so every other repository must hold the spool's segments up to it. `written`: the
 * sha256 of segments as PostgreSQL wrote them in pg_wal, where the harness read them.
 */
export async function walArchiveProblems(stack: ChaosStack, options: { shippedUpTo?: string; written: Map<string, string> }): Promise<string[]> {
  const memory = memoryOf(stack);
  const problems: string[] = [...(await spoolProblems(stack))];
  memory.systemIdentifier ??= BigInt((await stack.cluster.query<{ id: string }>('postgres', 'SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0].id);
  const listings = new Map<WalRepository, Map<string, Listed>>();
  for (const repository of WAL_REPOSITORIES) listings.set(repository, await listWal(stack, repository));
  const spool = entryNames(listings.get('local')!);
  const newestInSpool = [...spool].sort().at(-1) ?? '';

  const spoolEntries = new Map<string, EntryLike>();
  for (const repository of WAL_REPOSITORIES) {
    const listing = listings.get(repository)!;
    const names = entryNames(listing);
    // Shipped exactly what the spool has: nothing missing (once caught up), nothing of its own.
    if (repository !== 'local') {
      const missing = [...spool].filter((n) => options.shippedUpTo !== undefined && n <= options.shippedUpTo && !names.has(n));
      if (missing.length) problems.push(`${repository}: ${missing.length} archived WAL file(s) not shipped: ${missing.sort().slice(0, 3).join(', ')}`);
      const extra = [...names].filter((n) => !spool.has(n));
      if (extra.length) problems.push(`${repository}: holds ${extra.length} WAL file(s) the spool has no entry for: ${extra.sort().slice(0, 3).join(', ')}`);
    }
    const objectsOf = new Map<string, string[]>();
    for (const key of listing.keys()) {
      const name = key.slice('wal/'.length);
      if (name.endsWith('.json')) {
        if (!WAL_NAME.test(name.slice(0, -'.json'.length))) problems.push(`${repository}: ${key} is no WAL file's entry`);
        continue;
      }
      const object = OBJECT.exec(name);
      if (!object || !WAL_NAME.test(object[1])) {
        problems.push(`${repository}: ${key} is neither a WAL entry nor a WAL object (a temporary or stray name)`);
        continue;
      }
      objectsOf.set(object[1], [...(objectsOf.get(object[1]) ?? []), key]);
    }
    // An object whose entry never came: a segment stored half. (One newer than the spool's
    // newest entry may be a push under way.)
    const half = [...objectsOf.keys()].filter((n) => !names.has(n) && n <= newestInSpool);
    if (half.length) problems.push(`${repository}: ${half.length} WAL object(s) without their entry (stored half): ${half.sort().slice(0, 3).join(', ')}`);

    for (const name of [...names].sort()) {
      const entryKey = `wal/${name}.json`;
      const stamp = listing.get(entryKey)!.stamp;
      const remembered = memory.entries.get(`${repository}\0${entryKey}`);
      let entry: EntryLike | string;
      if (remembered?.stamp === stamp) entry = remembered.entry;
      else {
        try {
          const parsed = JSON.parse((await bytesOf(stack, repository, entryKey)).toString('utf8')) as EntryLike;
          entry = parsed?.segment === name && typeof parsed.key === 'string' && typeof parsed.sha256 === 'string' ? parsed : `${entryKey} is not an entry of ${name}`;
        } catch (err) {
          entry = `${entryKey} unreadable: ${(err as Error).message.slice(0, 80)}`;
        }
        memory.entries.set(`${repository}\0${entryKey}`, { stamp, entry });
      }
      if (typeof entry === 'string') {
        problems.push(`${repository}: ${entry}`);
        continue;
      }
      if (repository === 'local') spoolEntries.set(name, entry);
      else {
        // Shipped entries are signed (the stack's worker holds the signing key): an unsigned one
        // there is one wal-fetch would refuse, or one planted.
        if (!entry.signature) problems.push(`${repository}: the entry of ${name} is not signed`);
        const first = spoolEntries.get(name);
        if (first && (first.key !== entry.key || first.bytes !== entry.bytes || first.sha256 !== entry.sha256 || first.plainSha256 !== entry.plainSha256)) {
          problems.push(`${name} is stored with two different contents: local ${first.key} sha256 ${first.sha256.slice(0, 12)} (plain ${first.plainSha256.slice(0, 12)}), ${repository} ${entry.key} sha256 ${entry.sha256.slice(0, 12)} (plain ${entry.plainSha256.slice(0, 12)})`);
        }
      }
      const others = (objectsOf.get(name) ?? []).filter((k) => k !== entry.key);
      if (others.length) problems.push(`${repository}: ${name} has a second object beside its entry's: ${others.join(', ')}`);
      const object = listing.get(entry.key);
      if (!object) {
        problems.push(`${repository}: the entry of ${name} names ${entry.key}, which is not there`);
        continue;
      }
      if (object.bytes !== entry.bytes) {
        problems.push(`${repository}: ${entry.key} is ${object.bytes} bytes, its entry says ${entry.bytes}`);
        continue;
      }
      if (memory.whole.get(`${repository}\0${entry.key}`) === object.stamp) continue;
      const stored = await bytesOf(stack, repository, entry.key);
      if (sha256(stored) !== entry.sha256) {
        problems.push(`${repository}: ${entry.key} reads back with sha256 ${sha256(stored).slice(0, 12)}, its entry says ${entry.sha256.slice(0, 12)}`);
        continue;
      }
      memory.whole.set(`${repository}\0${entry.key}`, object.stamp);
      if (repository !== 'local' || memory.decrypted.has(name)) continue;
      // Decrypted once, from the spool: every other copy has the same stored sha256.
      memory.decrypted.add(name);
      try {
        const plain = await decrypt(stack, stored, entry.compression);
        if (plain.length !== entry.plainBytes || sha256(plain) !== entry.plainSha256) {
          problems.push(`${name} decrypts to ${plain.length} bytes, sha256 ${sha256(plain).slice(0, 12)}; its entry says ${entry.plainBytes}, ${entry.plainSha256.slice(0, 12)}`);
          continue;
        }
        const header = SEGMENT.test(name) ? headerProblem(name, plain, memory.systemIdentifier) : undefined;
        if (header) problems.push(`${name} decrypts to something that is not that segment: ${header}`);
        const written = options.written.get(name);
        if (written && written !== entry.plainSha256) problems.push(`${name} is archived with other bytes than PostgreSQL wrote in pg_wal (sha256 ${entry.plainSha256.slice(0, 12)}, written ${written.slice(0, 12)})`);
      } catch (err) {
        problems.push(`${name} does not decrypt with gpg and zstd: ${(err as Error).message.split('\n')[0].slice(0, 160)}`);
      }
    }
  }
  return problems;
}
