// Hostile review of the WAL sealers (engine/walSealer.ts) and the spool's writer lock
// (engine/walWriterLock.ts), on real processes.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { validateConfig, type Config } from '../common/config.js';
import { stopAgent } from '../engine/encryption.js';
import { loadVerifier } from '../engine/manifestSignature.js';
import { openRepositories } from '../engine/storage/index.js';
import { fetchSegment, pushSegment, startWalSealing, walTrustOf } from '../engine/walArchive.js';
import { lockWalWriter } from '../engine/walWriterLock.js';
import { segmentBytes } from './fixtures/walSegment.js';

let dir: string;
let keys: KeyPair;

const configFor = (spool: string): Config =>
  validateConfig(
    {
      host: 'walsealattack',
      database: { url: 'postgres://x@127.0.0.1:1/x' },
      repositories: { local: { type: 'filesystem', path: spool } },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      wal: { spool: 'local' },
    },
    'test',
  );

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-sealattack-'));
  keys = await ensureKeyPair(path.join(dir, 'keys'));
}, 60_000);

afterAll(async () => {
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fetchedBack(cfg: Config, name: string): Promise<Buffer> {
  const back = path.join(dir, `back-${name}`);
  const trust = walTrustOf(cfg, await loadVerifier(cfg, { ownKey: 'if-readable' }), false);
  expect(await fetchSegment(cfg, openRepositories(cfg), name, back, trust)).toBe(true);
  const bytes = readFileSync(back);
  rmSync(back);
  return bytes;
}

test('a spool and a pg_wal whose paths hold a newline: the segment is stored, fetched back whole, and pushed again is already archived', async () => {
  const odd = path.join(dir, 'odd\nfolder');
  const walDir = path.join(odd, 'pg_wal');
  mkdirSync(walDir, { recursive: true });
  const cfg = configFor(path.join(odd, 'spool'));
  const name = '000000010000000000000001';
  const file = path.join(walDir, name);
  const content = segmentBytes(name);
  writeFileSync(file, content);
  expect(await pushSegment(cfg, openRepositories(cfg), file)).toMatchObject({ action: 'stored' });
  expect(sha(await fetchedBack(cfg, name))).toBe(sha(content));
  expect(await pushSegment(cfg, openRepositories(cfg), file)).toMatchObject({ action: 'already-archived' });
}, 120_000);
