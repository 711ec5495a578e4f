// WAL authenticity (attack round 4, now closed). A WAL entry (`wal/<segment>.json`) was plain
// JSON and its object is encrypted to the PUBLIC key: anyone who could write to one repository
// could plant a segment, or replace one in a repository read first, and wal-fetch handed it to
// PostgreSQL. WAL records write pages directly (a full-page image of pg_authid makes any role a
// superuser with a password the attacker chose), with no SQL and no check of who made them.
//
// Now the shipping workflow signs each entry it ships (the spool's own entries, written by
// wal-push as the database server's OS user, are unsigned), and wal-fetch and the fetch-ahead
// replay a segment only from an entry signed by a trusted key, an unsigned one in the host's own
// spool, or, with --allow-unsigned, any unsigned one.
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { stopAgent } from '../engine/encryption.js';
import { loadSigner, loadVerifier, signManifest } from '../engine/manifestSignature.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { fetchSegment, pushSegment, readWalEntry, shipSegments, walTrustOf, type WalEntry } from '../engine/walArchive.js';
import { ensureKeyPair, ensureSigningKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { validateConfig, type Config } from '../common/config.js';
import { CLI_PATH } from '../common/runtime.js';
import { plantWalSegment } from './fixtures/plantedBackup.js';
import { segmentBytes } from './fixtures/walSegment.js';

let dir: string;
let keys: KeyPair;
let config: Config;
let spool: FilesystemRepository;
let nas: FilesystemRepository;

const configOf = (extra: Record<string, unknown> = {}) =>
  validateConfig(
    {
      host: 'wal-authenticity',
      database: { url: 'postgres://app@127.0.0.1:1/app' },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') }, nas: { type: 'filesystem', path: path.join(dir, 'nas') } },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      signing: { privateKeyFile: keys.signing.privateKeyFile },
      wal: { spool: 'local' },
      ...extra,
    },
    'wal authenticity config',
  );

const trust = async (options: { allowUnsigned?: boolean; config?: Config } = {}) => {
  const c = options.config ?? config;
  return walTrustOf(c, await loadVerifier(c), options.allowUnsigned === true);
};

/** Pushes a genuine segment into the spool (unsigned there, as wal-push leaves it). */
async function pushGenuine(segment: string): Promise<Buffer> {
  const plain = segmentBytes(segment, 1024 * 1024);
  const file = path.join(dir, 'pg_wal', segment);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, plain);
  await pushSegment(config, [spool, nas], file);
  return plain;
}

const plant = (repository: FilesystemRepository, segment: string, sign?: (entry: WalEntry) => WalEntry) => plantWalSegment(repository, segment, keys.publicKeyFile, sign);

const fetchInto = async (segment: string, repositories: FilesystemRepository[], walTrust: Awaited<ReturnType<typeof trust>>) => {
  const destination = path.join(dir, `fetched-${segment}-${Math.random().toString(16).slice(2)}`);
  const delivered = await fetchSegment(config, repositories, segment, destination, walTrust).catch((err: unknown) => err as Error);
  return { delivered, bytes: existsSync(destination) ? readFileSync(destination) : undefined, leftovers: readdirSync(dir).filter((f) => f.includes('.partial')) };
};

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'wal-authenticity-'));
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  mkdirSync(path.join(dir, 'local'));
  mkdirSync(path.join(dir, 'nas'));
  config = configOf();
  spool = new FilesystemRepository('local', path.join(dir, 'local'));
  nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
}, 120_000);

afterAll(async () => {
  await stopAgent(keys.privateHome).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

test('a segment planted in a repository other than the spool (unsigned entry) is refused, naming the repository; nothing is written', async () => {
  const segment = '000000010000000000000007';
  await plant(nas, segment);
  const { delivered, bytes, leftovers } = await fetchInto(segment, [nas, spool], await trust());
  expect(delivered).toMatchObject({ type: 'UnsignedBackup', message: expect.stringMatching(/000000010000000000000007 is not replayed: its entry in nas is not signed.*--allow-unsigned/) });
  expect({ bytes, leftovers }).toEqual({ bytes: undefined, leftovers: [] });
}, 60_000);

test('a segment planted with an entry signed by a key the host does not trust is refused as BadSignature', async () => {
  const segment = '000000010000000000000008';
  const stranger = ensureSigningKeyPair(path.join(dir, 'stranger'));
  const signer = await loadSigner(configOf({ signing: { privateKeyFile: stranger.privateKeyFile } }));
  await plant(nas, segment, (entry) => signManifest(entry, signer!));
  const { delivered, bytes } = await fetchInto(segment, [nas], await trust());
  expect(delivered).toMatchObject({ type: 'BadSignature', message: expect.stringContaining('which host wal-authenticity does not trust') });
  expect(bytes).toBeUndefined();
}, 60_000);

test('shipping signs each entry; a shipped segment is fetched from the other repository alone, byte for byte', async () => {
  const segment = '000000010000000000000001';
  const plain = await pushGenuine(segment);
  expect((await readWalEntry(spool, segment))?.signature).toBeUndefined();
  await shipSegments(spool, nas, { signer: await loadSigner(config) });
  expect((await readWalEntry(nas, segment))?.signature).toMatchObject({ algorithm: 'ed25519' });
  const { delivered, bytes } = await fetchInto(segment, [nas], await trust());
  expect(delivered).toBe(true);
  expect(bytes?.equals(plain)).toBe(true);
}, 60_000);

test('a shipped segment replaced in the repository read first (object and entry, the signature kept) is skipped for the genuine copy', async () => {
  const segment = '000000010000000000000002';
  const plain = await pushGenuine(segment);
  await shipSegments(spool, nas, { signer: await loadSigner(config) });
  const genuine = (await readWalEntry(nas, segment))!;
  // The attacker keeps the genuine signature on an entry naming their object.
  await plant(nas, segment, (entry) => ({ ...entry, signature: genuine.signature }));
  const alone = await fetchInto(segment, [nas], await trust());
  expect(alone.delivered).toMatchObject({ type: 'BadSignature', message: expect.stringContaining('does not match its content') });
  const both = await fetchInto(segment, [nas, spool], await trust());
  expect(both.delivered).toBe(true);
  expect(both.bytes?.equals(plain)).toBe(true);
}, 60_000);

test("the host's own spool is trusted unsigned; --allow-unsigned admits unsigned entries elsewhere (archives shipped before signing)", async () => {
  const segment = '000000010000000000000003';
  const plain = await pushGenuine(segment);
  expect((await fetchInto(segment, [spool], await trust())).bytes?.equals(plain)).toBe(true);
  // Shipped as before signing began: unsigned in the NAS.
  await shipSegments(spool, nas, {});
  expect((await fetchInto(segment, [nas], await trust())).delivered).toMatchObject({ type: 'UnsignedBackup' });
  expect((await fetchInto(segment, [nas], await trust({ allowUnsigned: true }))).bytes?.equals(plain)).toBe(true);
  // The rule follows the configuration: a host whose spool (wal.spool) is the NAS trusts it unsigned (docs/SECURITY.md) ...
  const nasSpool = configOf({ wal: { spool: 'nas' } });
  expect((await fetchInto(segment, [nas], await trust({ config: nasSpool }))).delivered).toBe(true);
  // ... and one that names none trusts no unsigned entry: the default spool (the first
  // filesystem repository) may be a shared NAS on a host that only restores.
  const unnamed = configOf({ wal: {} });
  expect((await fetchInto(segment, [spool], await trust({ config: unnamed }))).delivered).toMatchObject({
    type: 'UnsignedBackup',
    message: expect.stringContaining("in local is not signed (made before backups were signed, by a host without signing.privateKeyFile, or planted); if this is the repository this host's own archive_command writes to, name it in wal.spool"),
  });
}, 60_000);

test('wal-fetch as the database server OS user: trusts signing.publicKeyFiles without reading the signing private key, and refuses a planted segment (exit 2, the reason on stderr)', async () => {
  const owner = await execa('id', ['-u', 'postgres'], { reject: false });
  if (process.getuid?.() !== 0 || owner.exitCode !== 0) {
    // Needs root to act as postgres; CI runs as root.
    expect(process.getuid?.()).not.toBe(0);
    return;
  }
  const segment = '000000010000000000000004';
  const plain = await pushGenuine(segment);
  await shipSegments(spool, nas, { signer: await loadSigner(config) });
  const planted = '000000010000000000000009';
  await plant(nas, planted);
  // The postgres user's view: its own keyring copy, the public half of the signing key, and a
  // configuration naming the private key file it cannot read (root's, 0600) and only the NAS.
  const pgDir = path.join(dir, 'as-postgres');
  mkdirSync(pgDir);
  const publicHalf = path.join(pgDir, 'signing.pub.pem');
  copyFileSync(keys.signing.publicKeyFile, publicHalf);
  const pgKeys = path.join(pgDir, 'gnupg');
  await execa('cp', ['-r', keys.privateHome, pgKeys]);
  for (const f of readdirSync(pgKeys)) if (/^S\.|\.lock$/.test(f)) rmSync(path.join(pgKeys, f), { recursive: true, force: true });
  const configFile = path.join(pgDir, 'config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      host: 'wal-authenticity',
      database: { url: 'postgres://app@127.0.0.1:1/app' },
      repositories: { nas: { type: 'filesystem', path: path.join(dir, 'nas') } },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: pgKeys },
      signing: { privateKeyFile: keys.signing.privateKeyFile, publicKeyFiles: [publicHalf] },
    }),
  );
  await execa('chown', ['-R', 'postgres:postgres', pgDir]);
  // The NAS as a recovery host mounts it: readable by the server's OS user.
  await execa('chmod', ['-R', 'a+rX', path.join(dir, 'nas')]);
  chmodSync(dir, 0o755);
  chmodSync(path.join(dir, 'keys'), 0o700);
  const asPostgres = (args: string[]) => execa('runuser', ['-u', 'postgres', '--', process.execPath, CLI_PATH, '--config', configFile, ...args], { reject: false });
  const good = await asPostgres(['wal-fetch', segment, path.join(pgDir, 'RECOVERYXLOG')]);
  expect({ exit: good.exitCode, stderr: good.stderr }).toEqual({ exit: 0, stderr: '' });
  expect(readFileSync(path.join(pgDir, 'RECOVERYXLOG')).equals(plain)).toBe(true);
  const bad = await asPostgres(['wal-fetch', planted, path.join(pgDir, 'PLANTED')]);
  expect({ exit: bad.exitCode, stderr: bad.stderr }).toEqual({ exit: 2, stderr: expect.stringContaining(`UnsignedBackup: wal-fetch: ${planted} is not replayed: its entry in nas is not signed`) });
  expect(existsSync(path.join(pgDir, 'PLANTED'))).toBe(false);
  const allowed = await asPostgres(['wal-fetch', '--allow-unsigned', planted, path.join(pgDir, 'PLANTED')]);
  expect(allowed.exitCode).toBe(0);
}, 120_000);
