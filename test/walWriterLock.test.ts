// Two writers of one segment into one spool (a pusher of an old archive_command's status folder
// still storing beside the new one's, or a wal-push run by hand): each seals with its own
// session key, so their objects differ, and without one writer at a time the entry one wrote
// could describe the object the other put in place: the segment would read back damaged
// everywhere. The first test fails on the code before the writer lock (7aed4fe): the entry
// describes the other writer's object (its sha256 is not the object's).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { type Config } from '../common/config.js';
import { stopAgent } from '../engine/encryption.js';
import { loadVerifier } from '../engine/manifestSignature.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import type { PutOptions } from '../engine/storage/repository.js';
import { fetchSegment, pushSegment, readWalEntry, walTrustOf } from '../engine/walArchive.js';
import { lockWalWriter } from '../engine/walWriterLock.js';
import { segmentBytes } from './fixtures/walSegment.js';
import { spoolConfig } from './fixtures/walSpool.js';

let dir: string;
let keys: KeyPair;
let config: Config;
let spoolRoot: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-walwriter-'));
  keys = await ensureKeyPair(path.join(dir, 'keys'));
  spoolRoot = path.join(dir, 'local');
  config = spoolConfig(keys, spoolRoot, 'walwriter');
  mkdirSync(path.join(dir, 'pg_wal'));
}, 60_000);

afterAll(async () => {
  await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The spool as one writer sees it: its segment entry is written `entryDelayMs` late (a slow disk, a frozen moment). */
class SlowEntries extends FilesystemRepository {
  constructor(private readonly entryDelayMs: number) {
    super('local', spoolRoot);
  }

  override async put(key: string, body: Readable, options?: PutOptions) {
    if (/^wal\/[0-9A-F]{24}\.json$/.test(key)) await sleep(this.entryDelayMs);
    return super.put(key, body, options);
  }
}

test('two writers of one segment at once: the entry describes the object in place, and the segment reads back whole', async () => {
  const name = '000000010000000000000050';
  const file = path.join(dir, 'pg_wal', name);
  const content = segmentBytes(name);
  writeFileSync(file, content);
  const object = path.join(spoolRoot, 'wal', `${name}.zst.gpg`);
  // The first writer puts its object in place, then is slow to write its entry...
  const first = pushSegment(config, [new SlowEntries(1500)], file);
  for (let i = 0; i < 1000 && !existsSync(object); i++) await sleep(10);
  expect(existsSync(object)).toBe(true);
  // ...while a second writer of the same segment comes.
  const second = pushSegment(config, [new SlowEntries(0)], file);
  const outcomes = await Promise.all([first, second]);
  expect(outcomes.map((o) => o.action).sort()).toEqual(['already-archived', 'stored']);

  const entry = (await readWalEntry(new FilesystemRepository('local', spoolRoot), name))!;
  expect(sha(readFileSync(object))).toBe(entry.sha256);
  const back = path.join(dir, 'back');
  const trust = walTrustOf(config, await loadVerifier(config, { ownKey: 'if-readable' }), false);
  expect(await fetchSegment(config, [new FilesystemRepository('local', spoolRoot)], name, back, trust)).toBe(true);
  expect(sha(readFileSync(back))).toBe(sha(content));
}, 120_000);

test('a second writer waits for the lock, and says who holds it when it gives up', async () => {
  const held = await lockWalWriter(spoolRoot, 1);
  try {
    await expect(lockWalWriter(spoolRoot, 1)).rejects.toMatchObject({ retryable: true, message: expect.stringMatching(/another writer has held the WAL spool .* for 1 s/) });
  } finally {
    await held.release();
  }
  // Free again once released.
  await (await lockWalWriter(spoolRoot, 1)).release();
}, 30_000);

test('a writer killed by SIGKILL holds the lock no more', async () => {
  // Another process takes the lock (as a pusher would) and is killed.
  const holder = execa(process.execPath, ['--import', 'tsx', '-e', `import('${path.resolve('engine/walWriterLock.ts')}').then(async (m) => { await m.lockWalWriter(${JSON.stringify(spoolRoot)}, 5); console.log('held'); setInterval(() => {}, 1000); })`], { reject: false });
  await new Promise<void>((resolve) => holder.stdout!.on('data', (d: Buffer) => d.toString().includes('held') && resolve()));
  await expect(lockWalWriter(spoolRoot, 1)).rejects.toMatchObject({ retryable: true });
  holder.kill('SIGKILL');
  await holder;
  const lock = await lockWalWriter(spoolRoot, 5);
  expect(lock.held()).toBe(true);
  await lock.release();
  expect(lock.held()).toBe(false);
}, 60_000);

test('what a killed push left of an entry (its temp file) is cleared by the push that stores the segment again', async () => {
  // A pusher SIGKILLed while it wrote the entry leaves wal/<name>.json.<tag>.partial, young; the
  // segment is pushed again (archive_command never succeeded). Seen in walAsync.integration's
  // SIGKILL test; fails on 0ec62f5, whose entry write cleared only partials an hour old.
  const name = '000000010000000000000060';
  const file = path.join(dir, 'pg_wal', name);
  writeFileSync(file, segmentBytes(name));
  mkdirSync(path.join(spoolRoot, 'wal'), { recursive: true });
  const left = path.join(spoolRoot, 'wal', `${name}.json.1b73e7859b58.partial`);
  writeFileSync(left, '{"segment": "0000000100');
  expect(await pushSegment(config, [new FilesystemRepository('local', spoolRoot)], file)).toMatchObject({ action: 'stored' });
  expect(existsSync(left)).toBe(false);
}, 60_000);
