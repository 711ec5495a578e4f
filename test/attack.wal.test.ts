// Attacks on the WAL archive with real WAL from two real clusters (two initdb, so two system
// identifiers, and the same segment names): the spool must hold one cluster's WAL only
// (README promise 9: "wal-push archives only a real WAL file whose header matches its name,
// size and cluster"), and one damaged entry must not stop the archive for good.
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { stopAgent } from '../engine/encryption.js';
import { openRepositories } from '../engine/storage/index.js';
import { loadVerifier } from '../engine/manifestSignature.js';
import { CLUSTER_IDENTITY_KEY, fetchSegment, listWalEntries, pushSegment, shipSegments, walTrustOf } from '../engine/walArchive.js';
import { walFileKind } from '../engine/walHeader.js';
import { loadConfig } from '../common/config.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';

let dir: string;
let keys: KeyPair;
const clusters: { cluster: PgCluster; archive: string; sysid: string }[] = [];

function postgresOwner(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const [, , uid, gid] = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'))!.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

const segmentsIn = (archive: string) => readdirSync(archive).filter((f) => walFileKind(f) === 'segment').sort();

async function waitFor(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-attack-wal-'));
  chmodSync(dir, 0o755);
  const owner = postgresOwner();
  for (const name of ['a', 'b']) {
    const archive = path.join(dir, `archive-${name}`);
    mkdirSync(archive);
    if (owner) chownSync(archive, owner.uid, owner.gid);
    const cluster = await startCluster({ archive: true, extraConf: [`archive_command = 'test ! -f ${archive}/%f && cp %p ${archive}/%f'`] });
    const sysid = String((await cluster.query<{ id: string }>('postgres', 'SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0].id);
    for (let i = 0; i < 3; i++) {
      await cluster.query('postgres', `CREATE TABLE t${i} AS SELECT g AS id FROM generate_series(1, 1000) g`);
      await cluster.query('postgres', 'SELECT pg_switch_wal()');
    }
    await waitFor(`three segments of cluster ${name}`, () => segmentsIn(archive).length >= 3);
    clusters.push({ cluster, archive, sysid });
  }
  keys = await ensureKeyPair(path.join(dir, 'keys'));
}, 180_000);

afterAll(async () => {
  for (const { cluster } of clusters) await cluster.stop();
  if (keys) await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

/** A configuration whose spool (and a second repository, `offsite`) are fresh folders of this name. */
function configFor(name: string) {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    YAML.stringify({
      host: name,
      database: { url: 'postgres://postgres@127.0.0.1:1/postgres' },
      repositories: {
        local: { type: 'filesystem', path: path.join(dir, name, 'local') },
        offsite: { type: 'filesystem', path: path.join(dir, name, 'offsite') },
      },
      // Named, so that wal-fetch replays its unsigned entries (the host's own spool).
      wal: { spool: 'local' },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      logLevel: 'warn',
    }),
  );
  const config = loadConfig(file, {});
  const repositories = openRepositories(config);
  return { config, repositories, spool: repositories.find((r) => r.name === 'local')!, offsite: repositories.find((r) => r.name === 'offsite')! };
}

describe('wal-push: one spool, one cluster', () => {
  test('two clusters whose first segments arrive at the same moment: one is refused, the spool never holds both clusters\' WAL', async () => {
    const [a, b] = clusters;
    expect(a.sysid).not.toBe(b.sysid);
    // Distinct names, so no WalConflict by name: only the cluster check can refuse one.
    const aSegment = path.join(a.archive, segmentsIn(a.archive)[0]);
    const bSegment = path.join(b.archive, segmentsIn(b.archive)[1]);
    const { config, repositories, spool } = configFor('identity-race');
    const outcomes = await Promise.allSettled([pushSegment(config, repositories, aSegment), pushSegment(config, repositories, bSegment)]);
    const archived = await listWalEntries(spool);
    const refused = outcomes.filter((o) => o.status === 'rejected').map((o) => {
      const reason = (o as PromiseRejectedResult).reason as { type?: string };
      return `${reason?.type}: ${String(reason)}`;
    });
    // One cluster's segment in, the other refused as another cluster's.
    expect({ archived: archived.length, refused: refused.length }).toEqual({ archived: 1, refused: 1 });
    expect(refused[0]).toContain('WalConflict');
  }, 60_000);
});

describe('a damaged entry', () => {
  test('a damaged WAL entry in the spool does not stop the shipping of every later segment', async () => {
    const [a] = clusters;
    const { config, repositories, spool, offsite } = configFor('damaged-entry');
    const names = segmentsIn(a.archive).slice(0, 3);
    for (const name of names) await pushSegment(config, repositories, path.join(a.archive, name));
    // The first segment's entry loses its tail (bit rot, a hostile or careless operator).
    const entryFile = path.join(dir, 'damaged-entry', 'local', 'wal', `${names[0]}.json`);
    writeFileSync(entryFile, readFileSync(entryFile, 'utf8').slice(0, 40));

    let failure: unknown;
    await shipSegments(spool, offsite).catch((err: unknown) => (failure = err));
    // The whole later segments reach the offsite repository; the damaged one is reported.
    expect(await listWalEntries(offsite)).toEqual(names.slice(1));
    // And if the pass fails, it fails with a classified error naming the damaged entry, not a raw parse error.
    if (failure) expect(String(failure)).not.toMatch(/SyntaxError|Unexpected end of JSON/);
  }, 60_000);

  test("a damaged cluster identity file gives a classified error naming the file, not a raw SyntaxError", async () => {
    const [a] = clusters;
    const { config, repositories } = configFor('damaged-identity');
    const names = segmentsIn(a.archive);
    await pushSegment(config, repositories, path.join(a.archive, names[0]));
    const identity = path.join(dir, 'damaged-identity', 'local', CLUSTER_IDENTITY_KEY);
    writeFileSync(identity, readFileSync(identity, 'utf8').slice(0, 20));
    let failure: unknown;
    await pushSegment(config, repositories, path.join(a.archive, names[1])).catch((err: unknown) => (failure = err));
    expect(failure).toBeDefined();
    expect(String(failure)).not.toMatch(/SyntaxError|Unexpected end of JSON|Unterminated string/);
    expect(String(failure)).toContain(CLUSTER_IDENTITY_KEY);
  }, 60_000);
});

describe('what wal-push checks is what it archives', () => {
  test('a segment swapped for other bytes of the same size after the check is not archived under the checked name', async () => {
    const [a] = clusters;
    const { config, repositories } = configFor('swapped-after-check');
    const name = segmentsIn(a.archive)[0];
    const checked = readFileSync(path.join(a.archive, name));
    // The file archive_command is given, in a folder of its own (pg_wal).
    const pgWal = path.join(dir, 'swapped-after-check', 'pg_wal');
    mkdirSync(pgWal, { recursive: true });
    const file = path.join(pgWal, name);
    copyFileSync(path.join(a.archive, name), file);
    // The moment the checks are done: on a fresh spool, the cluster identity is recorded
    // after the header check and before the bytes are streamed. Then the file changes.
    const identity = path.join(dir, 'swapped-after-check', 'local', CLUSTER_IDENTITY_KEY);
    const watcher = setInterval(() => {
      if (!existsSync(identity)) return;
      clearInterval(watcher);
      writeFileSync(file, randomBytes(checked.length));
    }, 1);
    const pushed = await pushSegment(config, repositories, file).catch((err: unknown) => err);
    clearInterval(watcher);

    if (!(pushed instanceof Error)) {
      // Archived: what wal-fetch gives back must be the segment that was checked.
      const restored = path.join(dir, 'swapped-after-check', 'restored');
      expect(await fetchSegment(config, repositories, name, restored, walTrustOf(config, await loadVerifier(config), false))).toBe(true);
      expect(readFileSync(restored).equals(checked)).toBe(true);
    }
  }, 60_000);
});
