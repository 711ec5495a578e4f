// Storage statistics (engine/repositoryStats.ts) over real filesystem repositories in temp
// folders, written through the engine's own writers (repository.put, writeManifest, writeJson),
// and through `backups list` and `status`: counts, bytes as the disk holds them, oldest and
// newest, free space as statfs/df see it, days until full; and a repository that cannot be
// listed (a "folder" that is a file, an S3 endpoint on a closed port) reported unreachable
// with its reason while the others are still shown. No database, no Temporal.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { validateConfig, type Config } from '../common/config.js';
import { writeJson, writeManifest } from '../engine/catalog.js';
import { keyIdOf, loadVerifier, signManifest, type Signer } from '../engine/manifestSignature.js';
import { repositoryStats, type ReachableRepositoryStats, type RepositoryStats } from '../engine/repositoryStats.js';
import { openRepositories } from '../engine/storage/index.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import type { Repository } from '../engine/storage/repository.js';
import { walEntryKey } from '../engine/walArchive.js';
import { runListBackups } from '../client/commands/listBackups.js';
import { collectStatus } from '../client/commands/status.js';
import type { Printer } from '../client/output.js';
import { freePort } from './fixtures/ports.js';

const DAY = 86_400_000;
const CLUSTER = '7300000000000000001';
const iso = (ms: number) => new Date(ms).toISOString();
const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-stats-'));
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const signer: Signer = { keyId: keyIdOf(publicKey), privateKey };
const publicKeyFile = path.join(dir, 'signing-public.pem');
writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
const notAFolder = path.join(dir, 'not-a-folder');
writeFileSync(notAFolder, 'a file where the repository folder should be');

let config: Config;
let repositories: Repository[];
const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };

beforeAll(async () => {
  // Credentials from the environment: the SDK must not go looking for an instance role.
  process.env.AWS_ACCESS_KEY_ID = 'closed';
  process.env.AWS_SECRET_ACCESS_KEY = 'closed-port-secret';
  config = validateConfig(
    {
      host: 'db-1',
      database: { url: 'postgres://app@127.0.0.1:1/app' },
      repositories: {
        local: { type: 'filesystem', path: path.join(dir, 'local') },
        nas: { type: 'filesystem', path: path.join(dir, 'nas') },
        broken: { type: 'filesystem', path: notAFolder },
        offsite: { type: 's3', bucket: 'closed-port', endpoint: `http://127.0.0.1:${await freePort()}` },
      },
      encryption: { publicKeyFile: '/etc/backupctl/public.asc' },
      signing: { publicKeyFiles: [publicKeyFile], required: false },
      restore: { sourceSystemIdentifier: CLUSTER },
      wal: { spool: 'local' },
    },
    'test config',
  );
  repositories = openRepositories(config);
  const [local, nas] = repositories;
  const now = Date.now();
  for (const r of [local, nas]) {
    await databaseBackup(r, 'd-old', now - 20 * DAY, 4000);
    await databaseBackup(r, 'd-new', now - DAY, 6000);
    await baseBackup(r, 'b1', now - 3 * DAY, 50_000);
  }
  // A failed attempt's leftover: bytes, and no backup.
  await put(local, 'database/d-failed/dump.pgcustom.zst.gpg', 700);
  // WAL in the spool only: the newest one archived an hour ago, after the base backup stopped (segment ...02).
  await walSegment(local, '000000010000000000000001', now - 4 * DAY, 1000);
  await walSegment(local, '000000010000000000000002', now - 2 * DAY, 2000);
  await walSegment(local, '000000010000000000000003', now - 3600_000, 3000);
});

afterAll(() => {
  process.env.AWS_ACCESS_KEY_ID = saved.id;
  process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
  if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
  if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
  rmSync(dir, { recursive: true, force: true });
});

async function put(r: Repository, key: string, bytes: number): Promise<void> {
  const body = Buffer.alloc(bytes, 0x41);
  await r.put(key, Readable.from([body]), { contentLength: body.length });
}

async function databaseBackup(r: Repository, backupId: string, finishedAt: number, bytes: number): Promise<void> {
  await put(r, `database/${backupId}/dump.pgcustom.zst.gpg`, bytes);
  await put(r, `database/${backupId}/globals.sql.zst.gpg`, 100);
  await writeManifest(
    r,
    signManifest(
      {
        formatVersion: 1,
        backupId,
        component: 'database' as const,
        runId: 'run',
        startedAt: iso(finishedAt - 600_000),
        finishedAt: iso(finishedAt),
        compression: 'zstd',
        encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
        source: { database: 'app', systemIdentifier: CLUSTER, snapshotTakenAt: iso(finishedAt - 600_000) },
        rowCounts: { t: 1 },
        objects: [
          { role: 'dump', key: `database/${backupId}/dump.pgcustom.zst.gpg`, bytes, sha256: 'a'.repeat(64) },
          { role: 'globals', key: `database/${backupId}/globals.sql.zst.gpg`, bytes: 100, sha256: 'b'.repeat(64) },
        ],
        copies: [],
      },
      signer,
    ),
  );
}

async function baseBackup(r: Repository, backupId: string, stoppedAt: number, bytes: number): Promise<void> {
  await put(r, `base/${backupId}/base.tar.zst.gpg`, bytes);
  await writeManifest(
    r,
    signManifest(
      {
        formatVersion: 1,
        backupId,
        component: 'base' as const,
        runId: 'run',
        startedAt: iso(stoppedAt - 3600_000),
        finishedAt: iso(stoppedAt),
        compression: 'zstd',
        encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
        server: { version: '15.8', versionNum: 150008, systemIdentifier: CLUSTER },
        backup: { timeline: 1, startLsn: '0/1000028', stopLsn: '0/2000100', startedAt: iso(stoppedAt - 3600_000), stoppedAt: iso(stoppedAt) },
        objects: [{ role: 'base', key: `base/${backupId}/base.tar.zst.gpg`, bytes, sha256: 'a'.repeat(64) }],
        copies: [],
      },
      signer,
    ),
  );
}

async function walSegment(r: Repository, segment: string, archivedAt: number, bytes: number): Promise<void> {
  await put(r, `wal/${segment}.zst.gpg`, bytes);
  await writeJson(r, walEntryKey(segment), { segment, key: `wal/${segment}.zst.gpg`, compression: 'zstd', bytes, sha256: 'a'.repeat(64), plainBytes: 16 << 20, plainSha256: 'b'.repeat(64), archivedAt: iso(archivedAt) });
}

/** The bytes of the files under a folder, as the disk holds them. */
function du(folder: string): number {
  let sum = 0;
  for (const entry of readdirSync(folder, { withFileTypes: true, recursive: true })) if (entry.isFile()) sum += statSync(path.join(entry.parentPath, entry.name)).size;
  return sum;
}

function files(folder: string): number {
  return readdirSync(folder, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).length;
}

const byName = (stats: RepositoryStats[], name: string) => stats.find((s) => s.repository === name)!;

test('per repository and component: counts, bytes on disk, oldest and newest, free space, days until full; the unlistable ones unreachable, the rest shown', async () => {
  const stats = await repositoryStats(repositories, { verifier: await loadVerifier(config) });
  expect(stats.map((s) => [s.repository, s.reachable])).toEqual([
    ['local', true],
    ['nas', true],
    ['broken', false],
    ['offsite', false],
  ]);
  expect((byName(stats, 'broken') as { error: string }).error).toContain(notAFolder);
  expect((byName(stats, 'offsite') as { error: string }).error).toMatch(/ECONNREFUSED|connect|socket|network/i);

  const local = byName(stats, 'local') as ReachableRepositoryStats;
  const root = path.join(dir, 'local');
  const [database, base, wal] = local.components;
  expect(database).toMatchObject({ component: 'database', count: 2, objects: files(path.join(root, 'database')), bytes: du(path.join(root, 'database')), damaged: 0 });
  expect([database.oldest, database.newest].map((t) => Date.now() - Date.parse(t!))).toEqual([expect.closeTo(20 * DAY, -6), expect.closeTo(DAY, -6)]);
  expect(base).toMatchObject({ component: 'base', count: 1, bytes: du(path.join(root, 'base')) });
  expect(wal).toMatchObject({ component: 'wal', count: 3, objects: 6, bytes: du(path.join(root, 'wal')), oldest: '000000010000000000000001', newest: '000000010000000000000003' });
  expect(local.bytes).toBe(du(root));

  // Recent: d-new and b1 finished in the last 7 days, and all three WAL files were archived in them.
  expect(database.recentBytes).toBe(du(path.join(root, 'database', 'd-new')));
  expect(base.recentBytes).toBe(du(path.join(root, 'base')));
  expect(wal.recentBytes).toBe(du(path.join(root, 'wal')));
  const growth = (database.recentBytes! + base.recentBytes! + wal.recentBytes!) / 7;
  expect(local.growthBytesPerDay).toBe(growth);

  // Free space as df sees it for the folder (within what other processes write meanwhile).
  const df = (await execa('df', ['-B1', '--output=avail,size', root])).stdout.trim().split('\n')[1].trim().split(/\s+/).map(Number);
  expect(Math.abs(local.freeBytes! - df[0])).toBeLessThan(256 * 1024 * 1024);
  expect(local.totalBytes).toBe(df[1]);
  expect(local.daysUntilFull).toBe(local.freeBytes! / growth);

  // The window local alone supports: from b1's stop to the newest WAL's archive time. nas has no WAL: none.
  expect(local.window).toMatchObject({ newestSegment: '000000010000000000000003' });
  expect(Date.now() - Date.parse(local.window.earliest!)).toBeCloseTo(3 * DAY, -6);
  expect(Date.now() - Date.parse(local.window.latest!)).toBeCloseTo(3600_000, -6);
  const nas = byName(stats, 'nas') as ReachableRepositoryStats;
  expect(nas.components.map((c) => c.count)).toEqual([2, 1, 0]);
  expect(nas.window).toMatchObject({ earliest: null, latest: null, newestSegment: null });
}, 60_000);

function capture(): Printer & { text: string; value: any } {
  const out = { json: false, text: '', value: undefined as any, result: (value: unknown, human: () => string) => ((out.value = value), (out.text += human() + '\n')) };
  return out;
}

test('backups list and status carry the statistics: the table for people, all of it in the JSON; the listing fields stay', async () => {
  const out = capture();
  const code = await runListBackups(repositories, out, await loadVerifier(config));
  expect(code).toBe(1); // two repositories could not be read
  expect(out.value.backups.map((b: { backupId: string }) => b.backupId)).toEqual(['d-old', 'd-new']);
  expect(Object.keys(out.value)).toEqual(['backups', 'otherSources', 'damaged', 'errors', 'storage']);
  expect(out.value.storage.map((s: RepositoryStats) => s.repository)).toEqual(['local', 'nas', 'broken', 'offsite']);
  expect(out.text).toMatch(/^\s+repository\s+component\s+count\s+bytes\s+oldest\s+newest$/m);
  expect(out.text).toMatch(/^\s+local\s+database\s+2\s/m);
  expect(out.text).toMatch(/^\s+wal\s+3\s+.*000000010000000000000001\s+000000010000000000000003$/m);
  expect(out.text).toMatch(/^\s+local: .* stored, .* free of .*, growing .*\/day: full in ([0-9.]+ days|over 10 years); window .* \(from listing\)$/m);
  expect(out.text).toMatch(/^\s+broken \(.*\): UNREACHABLE: /m);
  expect(out.text).toMatch(/^\s+offsite \(s3:\/\/closed-port.*\): UNREACHABLE: /m);

  const status = await collectStatus(undefined, 'not connected in this test', config, repositories);
  expect(status.storage.map((s) => [s.repository, s.reachable])).toEqual([
    ['local', true],
    ['nas', true],
    ['broken', false],
    ['offsite', false],
  ]);
  // An unreachable repository is one problem, not two (the catalog already says it cannot be read).
  expect(status.problems.filter((p) => p.startsWith('repository broken ')).length).toBe(1);
  expect(status.problems.some((p) => p.includes('cannot be measured'))).toBe(false);
}, 60_000);

test('a repository not written to yet: nothing in it, the free space of the filesystem it will be on; a history file is counted, never the oldest or newest segment', async () => {
  const fresh = new FilesystemRepository('fresh', path.join(dir, 'not-yet', 'spool'));
  const [empty] = (await repositoryStats([fresh], { verifier: await loadVerifier(config) })) as ReachableRepositoryStats[];
  expect(empty.components.map((c) => [c.component, c.count, c.bytes])).toEqual([
    ['database', 0, 0],
    ['base', 0, 0],
    ['wal', 0, 0],
  ]);
  expect(empty.freeBytes).toBeGreaterThan(0);
  expect(empty.freeError).toBeUndefined();
  expect(empty.daysUntilFull).toBeNull(); // nothing grows

  // Just promoted: timeline 2's history is archived, none of its segments yet (the history file sorts last).
  await walSegment(fresh, '000000010000000000000008', Date.now(), 10);
  await walSegment(fresh, '000000010000000000000009', Date.now(), 10);
  await walSegment(fresh, '00000002.history', Date.now(), 10);
  const [one] = (await repositoryStats([fresh], { verifier: await loadVerifier(config) })) as ReachableRepositoryStats[];
  expect(one.components[2]).toMatchObject({ count: 3, oldest: '000000010000000000000008', newest: '000000010000000000000009' });
});
