// Attack round 4: the WAL archive is not authenticated. Manifests of database and base backups
// are signed, and a point-in-time recovery starts only from a signed base backup; but it then
// replays whatever WAL `wal-fetch` (its restore_command, and the fetch-ahead) finds. A WAL
// entry (`wal/<segment>.json`) is plain JSON, and its object is encrypted to the PUBLIC key:
// anyone who can write to one repository (docs/SECURITY.md: "Can write to a repository") can
// plant a segment, or replace one in a repository read first, and wal-fetch hands it to
// PostgreSQL. WAL records write pages directly (a full-page image of pg_authid makes any role
// a superuser with a password the attacker chose), with no SQL and no check of who made them.
// The pieces a forger needs are public: the system identifier, timeline and LSNs are in the
// base backup's (unencrypted) manifest. So signing manifests does not yet give the promise of
// issue 9 ("sign every manifest and object digest on the backup host ... refuse an unsigned or
// wrongly signed backup by default") for point-in-time recovery.
//
// The fix is not small: wal-push runs as the database server's OS user (archive_command) and
// would need the signing key (or the shipping workflow would sign entries as it ships them), and
// archives made before would need --allow-unsigned at recovery. Out of the default suite until
// then (describe.skip); it fails on the current code: the planted segment is delivered.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { stopAgent } from '../engine/encryption.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { fetchSegment, walEntryKey } from '../engine/walArchive.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { validateConfig, type Config } from '../common/config.js';
import { encryptLikeABackup } from './fixtures/plantedBackup.js';

let dir: string;
let keys: KeyPair;
let config: Config;

describe.skip('WAL authenticity (open: see the comment at the top)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'attack4-wal-'));
    keys = await ensureKeyPair(path.join(dir, 'keys'));
    config = validateConfig(
      {
        host: 'attack4-wal',
        database: { url: 'postgres://app@127.0.0.1:1/app' },
        repositories: { nas: { type: 'filesystem', path: path.join(dir, 'nas') }, local: { type: 'filesystem', path: path.join(dir, 'local') } },
        encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
        signing: { privateKeyFile: keys.signing.privateKeyFile },
      },
      'attack config',
    );
  }, 120_000);

  afterAll(async () => {
    await stopAgent(keys.privateHome).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  test('wal-fetch refuses a segment whose entry no trusted key signed', async () => {
    const nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
    const local = new FilesystemRepository('local', path.join(dir, 'local'));
    // The attacker's segment: any bytes will do to show who decides what PostgreSQL replays.
    const segment = '000000010000000000000007';
    const plain = Buffer.alloc(16 * 1024 * 1024, 0x5a);
    const stored = await encryptLikeABackup(plain, keys.publicKeyFile);
    const key = `wal/${segment}.zst.gpg`;
    await nas.put(key, Readable.from([stored]));
    const entry = {
      segment,
      key,
      compression: 'zstd',
      bytes: stored.length,
      sha256: createHash('sha256').update(stored).digest('hex'),
      plainBytes: plain.length,
      plainSha256: createHash('sha256').update(plain).digest('hex'),
      archivedAt: new Date().toISOString(),
    };
    await nas.put(walEntryKey(segment), Readable.from([Buffer.from(JSON.stringify(entry))]));

    const destination = path.join(dir, 'pg_wal_RECOVERYXLOG');
    const delivered = await fetchSegment(config, [nas, local], segment, destination).catch(() => false);
    const replayed = delivered ? readFileSync(destination) : undefined;
    expect({ delivered, planted: replayed?.equals(plain) ?? false }).toEqual({ delivered: false, planted: false });
  }, 120_000);
});
