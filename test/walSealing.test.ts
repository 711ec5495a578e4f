// wal-push's sealing (one bash: sha256sum, then the compressor into gpg) hands its output to the
// repository, whose write may start reading late (its folders first): no byte may be lost in
// between. A repository frozen at put for a moment shows it; the segment must come back whole.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { validateConfig, type Config } from '../common/config.js';
import { stopAgent } from '../engine/encryption.js';
import { loadVerifier } from '../engine/manifestSignature.js';
import { openRepositories } from '../engine/storage/index.js';
import { fetchSegment, pushSegment, walTrustOf } from '../engine/walArchive.js';
import { FreezableRepository } from './fixtures/freezableRepository.js';
import { segmentBytes } from './fixtures/walSegment.js';

let dir: string;
let keys: KeyPair;
let config: Config;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-walseal-'));
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  config = validateConfig(
    {
      host: 'walseal',
      database: { url: 'postgres://x@127.0.0.1:1/x' },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      wal: { spool: 'local' },
    },
    'test',
  );
  mkdirSync(path.join(dir, 'pg_wal'));
}, 60_000);

afterAll(async () => {
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

test('a spool whose write starts late still gets every sealed byte: the segment comes back whole', async () => {
  const name = '000000010000000000000007';

  const file = path.join(dir, 'pg_wal', name);
  const content = segmentBytes(name);
  writeFileSync(file, content);
  const spool = new FreezableRepository(openRepositories(config)[0]);
  const { frozen, wake } = spool.freezeAtNext('put');
  const pushing = pushSegment(config, [spool], file);
  await frozen;
  // gpg's first output is ready long before this; the write starts only now.
  await new Promise((r) => setTimeout(r, 500));
  wake();
  expect(await pushing).toMatchObject({ segment: name, action: 'stored' });
  const back = path.join(dir, 'back');
  const trust = walTrustOf(config, await loadVerifier(config, { ownKey: 'if-readable' }), false);
  expect(await fetchSegment(config, openRepositories(config), name, back, trust)).toBe(true);
  expect(createHash('sha256').update(readFileSync(back)).digest('hex')).toBe(createHash('sha256').update(content).digest('hex'));
}, 60_000);

test('a spool whose write fails at once (a full disk) fails the push with that error, instead of leaving gpg blocked on a full pipe for ever', async () => {
  const name = '000000010000000000000008';
  const file = path.join(dir, 'pg_wal', name);
  writeFileSync(file, segmentBytes(name));
  const inner = openRepositories(config)[0];
  const full = Object.assign(Object.create(inner) as typeof inner, {
    put: async () => {
      throw Object.assign(new Error(`ENOSPC: no space left on device, open '${path.join(dir, 'local', 'wal', name)}'`), { code: 'ENOSPC' });
    },
  });
  await expect(pushSegment(config, [full], file)).rejects.toMatchObject({ type: 'DiskFull' });
  // Nothing of this push is left running.
  const { stdout } = await execa('pgrep', ['-f', `-- ${file}`], { reject: false });
  expect(stdout.trim()).toBe('');
}, 30_000);
