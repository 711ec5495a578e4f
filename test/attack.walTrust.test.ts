// Hostile review of WAL authenticity (commit 5b43c5c): an attacker who can write to ONE
// repository (the NAS or S3, not the spool, not the hosts).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stopAgent } from '../engine/encryption.js';
import { loadSigner, loadVerifier, signManifest } from '../engine/manifestSignature.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { fetchSegment, pushSegment, shipSegments, walEntryKey, walTrustOf, type WalEntry } from '../engine/walArchive.js';
import { prefetchWal } from '../engine/walPrefetch.js';
import { ensureKeyPair, ensureSigningKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { validateConfig, type Config } from '../common/config.js';
import { plantWalSegment } from './fixtures/plantedBackup.js';
import { segmentBytes } from './fixtures/walSegment.js';

let dir: string;
let keys: KeyPair;
let config: Config;
let spool: FilesystemRepository;
let nas: FilesystemRepository;
let s3: FilesystemRepository;
// A second host of the fleet, whose signing key the recovery host trusts too (signing.publicKeyFiles).
let otherHost: ReturnType<typeof ensureSigningKeyPair>;

const configOf = (extra: Record<string, unknown> = {}) =>
  validateConfig(
    {
      host: 'wal-trust',
      database: { url: 'postgres://app@127.0.0.1:1/app' },
      repositories: {
        local: { type: 'filesystem', path: path.join(dir, 'local') },
        nas: { type: 'filesystem', path: path.join(dir, 'nas') },
        s3: { type: 'filesystem', path: path.join(dir, 's3') },
      },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      signing: { privateKeyFile: keys.signing.privateKeyFile, publicKeyFiles: [otherHost.publicKeyFile] },
      wal: { spool: 'local' },
      ...extra,
    },
    'wal trust config',
  );

const trust = async () => walTrustOf(config, await loadVerifier(config), false);

async function pushGenuine(segment: string): Promise<Buffer> {
  const plain = segmentBytes(segment, 1024 * 1024);
  const file = path.join(dir, 'pg_wal', segment);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, plain);
  await pushSegment(config, [spool, nas, s3], file);
  return plain;
}

const plant = (repository: FilesystemRepository, segment: string, sign?: (entry: WalEntry) => WalEntry) => plantWalSegment(repository, segment, keys.publicKeyFile, sign);

const fetchInto = async (segment: string, repositories: FilesystemRepository[]) => {
  const destination = path.join(dir, `fetched-${segment}-${Math.random().toString(16).slice(2)}`);
  const delivered = await fetchSegment(config, repositories, segment, destination, await trust()).catch((err: unknown) => err as Error);
  return { delivered, bytes: existsSync(destination) ? readFileSync(destination) : undefined };
};

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'wal-trust-'));
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  otherHost = ensureSigningKeyPair(path.join(dir, 'other-host'));
  for (const r of ['local', 'nas', 's3']) mkdirSync(path.join(dir, r));
  config = configOf();
  spool = new FilesystemRepository('local', path.join(dir, 'local'));
  nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
  s3 = new FilesystemRepository('s3', path.join(dir, 's3'));
}, 120_000);

afterAll(async () => {
  await stopAgent(keys.privateHome).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

test('two admitted entries of one segment that describe different bytes are never settled by repository order: the first one read is not replayed over the other', async () => {
  // The genuine segment, shipped and signed by this host into the S3 repository.
  const segment = '000000010000000000000011';
  const genuine = await pushGenuine(segment);
  await shipSegments(spool, s3, { signer: await loadSigner(config) });
  // The attacker writes to the NAS only: an entry of the same name for other bytes, signed by a
  // key this host trusts (another host of the fleet: its own archive holds a segment of that name).
  const other = await loadSigner(configOf({ signing: { privateKeyFile: otherHost.privateKeyFile } }));
  const planted = await plant(nas, segment, (entry) => signManifest(entry, other!));
  const { delivered, bytes } = await fetchInto(segment, [nas, s3]);
  expect(bytes?.equals(planted)).not.toBe(true);
  // Either the genuine bytes or a refusal naming the conflict; never the planted ones.
  if (delivered === true) expect(bytes?.equals(genuine)).toBe(true);
  else expect(delivered).toMatchObject({ type: 'WalConflict' });
}, 60_000);

test('a damaged entry planted in one repository, for a segment no other repository has, is reported as damaged (permanent), not as a repository that could not be read (retried)', async () => {
  const segment = '0000000100000000000000F0';
  mkdirSync(path.join(nas.root, 'wal'), { recursive: true });
  writeFileSync(path.join(nas.root, walEntryKey(segment)), '{ not json');
  try {
    const { delivered } = await fetchInto(segment, [nas, s3]);
    expect(delivered).toMatchObject({ type: 'ManifestDamaged', retryable: false });
  } finally {
    rmSync(path.join(nas.root, walEntryKey(segment)));
  }
}, 60_000);

test('the fetch-ahead is not stopped by a planted entry that a trusted entry of the same segment in another repository outweighs', async () => {
  const segment = '000000010000000000000012';
  await pushGenuine(segment);
  await shipSegments(spool, s3, { signer: await loadSigner(config) });
  await plant(nas, segment);
  const out = path.join(dir, 'prefetch');
  const got = await prefetchWal(config, [nas, s3], await trust(), out, 1, '0/12000000', () => undefined).catch((err: unknown) => err as Error);
  expect(got).toMatchObject({ complete: expect.any(Boolean) });
  expect(readdirSync(out)).toContain(segment);
}, 60_000);

test('an entry planted past the end of the archive, or a planted timeline history, in one repository does not stop every point-in-time recovery: the fetch-ahead leaves out what this host would not replay and no admitted segment follows', async () => {
  const nasB = new FilesystemRepository('nas', path.join(dir, 'nas-b'));
  const s3B = new FilesystemRepository('s3', path.join(dir, 's3-b'));
  mkdirSync(nasB.root);
  mkdirSync(s3B.root);
  const genuine = ['000000010000000000000021', '000000010000000000000022'];
  for (const s of genuine) await pushGenuine(s);
  await shipSegments(spool, s3B, { signer: await loadSigner(config) });
  // The attacker's files, in the NAS only: a segment past the archive's end and a history of a
  // timeline nobody made. wal-fetch alone would refuse them (exit 2: "no such file" to PostgreSQL).
  await plant(nasB, '000000010000000000000023');
  await plant(nasB, '00000007.history');
  const out = path.join(dir, 'prefetch-b');
  const got = await prefetchWal(config, [nasB, s3B], await trust(), out, 1, '0/21000000', () => undefined).catch((err: unknown) => err as Error);
  expect(got).toMatchObject({ segments: 2 });
  expect(readdirSync(out).sort()).toEqual(genuine);
}, 60_000);

test('a planted entry refused in the middle of the archive (an admitted segment follows it) still stops the fetch-ahead, naming it', async () => {
  const nasC = new FilesystemRepository('nas', path.join(dir, 'nas-c'));
  const s3C = new FilesystemRepository('s3', path.join(dir, 's3-c'));
  mkdirSync(nasC.root);
  mkdirSync(s3C.root);
  for (const s of ['000000010000000000000031', '000000010000000000000033']) await pushGenuine(s);
  await shipSegments(spool, s3C, { signer: await loadSigner(config) });
  await plant(nasC, '000000010000000000000032');
  const got = await prefetchWal(config, [nasC, s3C], await trust(), path.join(dir, 'prefetch-c'), 1, '0/31000000', () => undefined).catch((err: unknown) => err as Error);
  expect(got).toMatchObject({ type: 'UnsignedBackup', message: expect.stringContaining('000000010000000000000032 is not replayed') });
}, 60_000);

test("a spool entry whose key names another segment's object (written by the database server's OS user, who owns the spool) does not make the shipping overwrite that object in the other repositories, nor get signed", async () => {
  const nasD = new FilesystemRepository('nas', path.join(dir, 'nas-d'));
  const spoolD = new FilesystemRepository('local', path.join(dir, 'local-d'));
  mkdirSync(nasD.root);
  mkdirSync(spoolD.root);
  // Y is archived and shipped: its object in the NAS is the only copy off the host.
  const y = '000000010000000000000041';
  const plain = segmentBytes(y, 1024 * 1024);
  const file = path.join(dir, 'pg_wal', y);
  writeFileSync(file, plain);
  await pushSegment(configOf({ repositories: { local: { type: 'filesystem', path: spoolD.root }, nas: { type: 'filesystem', path: nasD.root } } }), [spoolD, nasD], file);
  const signer = await loadSigner(config);
  await shipSegments(spoolD, nasD, { signer });
  const yObject = path.join(nasD.root, `wal/${y}.zst.gpg`);
  const before = readFileSync(yObject);
  // The server's OS user (any superuser, through COPY ... TO PROGRAM) replaces Y's spool object
  // and writes an entry of another segment naming it.
  const junk = Buffer.from('not a segment at all');
  writeFileSync(path.join(spoolD.root, `wal/${y}.zst.gpg`), junk);
  const x = '000000010000000000000042';
  const entry = { segment: x, key: `wal/${y}.zst.gpg`, compression: 'zstd', bytes: junk.length, sha256: createHash('sha256').update(junk).digest('hex'), plainBytes: 1, plainSha256: '0'.repeat(64), archivedAt: new Date().toISOString() };
  writeFileSync(path.join(spoolD.root, walEntryKey(x)), JSON.stringify(entry));
  await shipSegments(spoolD, nasD, { signer }).catch(() => undefined);
  expect(readFileSync(yObject).equals(before)).toBe(true);
  expect(existsSync(path.join(nasD.root, walEntryKey(x)))).toBe(false);
}, 60_000);

/** A repository that cannot be read now (S3 down for a moment). */
const unreachable = (name: string) =>
  ({
    name,
    stat: async () => {
      throw Object.assign(new Error(`${name}: connect ECONNREFUSED`), { type: 'StorageUnreachable', retryable: true });
    },
    list: async () => {
      throw Object.assign(new Error(`${name}: connect ECONNREFUSED`), { type: 'StorageUnreachable', retryable: true });
    },
  }) as unknown as FilesystemRepository;

test('an entry refused in one repository while another cannot be read now is retried (the other may hold the genuine one), not refused for good', async () => {
  const segment = '000000010000000000000051';
  await plant(nas, segment);
  const { delivered } = await fetchInto(segment, [nas, unreachable('s3')]);
  expect(delivered).toMatchObject({ type: 'StorageUnreachable', retryable: true });
}, 60_000);

test('the fetch-ahead does not call itself complete when a repository could not be listed: restore_command must still be asked for what it may hold', async () => {
  const nasE = new FilesystemRepository('nas', path.join(dir, 'nas-e'));
  mkdirSync(nasE.root);
  await pushGenuine('000000010000000000000061');
  await shipSegments(spool, nasE, { signer: await loadSigner(config) });
  const got = await prefetchWal(config, [nasE, unreachable('s3')], await trust(), path.join(dir, 'prefetch-e'), 1, '0/61000000', () => undefined).catch((err: unknown) => err as Error);
  expect(got).not.toMatchObject({ complete: true });
}, 60_000);

test('with --allow-unsigned, an unsigned entry planted in the repository read first neither wins over nor blocks the signed one elsewhere: the signed entry is replayed', async () => {
  const segment = '000000010000000000000071';
  const genuine = await pushGenuine(segment);
  await shipSegments(spool, s3, { signer: await loadSigner(config) });
  await plant(nas, segment);
  const destination = path.join(dir, `fetched-allow-${segment}`);
  const delivered = await fetchSegment(config, [nas, s3], segment, destination, walTrustOf(config, await loadVerifier(config), true)).catch((err: unknown) => err as Error);
  expect(delivered).toBe(true);
  expect(readFileSync(destination).equals(genuine)).toBe(true);
}, 60_000);
