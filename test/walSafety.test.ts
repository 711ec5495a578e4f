// wal-push archives only what PostgreSQL could replay, checked on real WAL: segments, a
// .partial, a timeline history and a backup history file written by a real cluster that was
// promoted onto timeline 2, and corrupted copies of them (random bytes, wrong name, wrong
// position, truncated, another cluster's). A refused file leaves the spool untouched, so the
// real segment still archives afterwards.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, readlinkSync, statSync, symlinkSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import YAML from 'yaml';
import { stopAgent } from '../engine/encryption.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Repository } from '../engine/storage/repository.js';
import { listWalEntries, pushSegment, shipSegments } from '../engine/walArchive.js';
import { createWalShippingActivities } from '../activities/walShipping.js';
import { loadConfig } from '../common/config.js';
import { checkWalFile, segmentStartLsn, walFileKind } from '../engine/walHeader.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';

const CLI = path.resolve('bin/backupctl.js');
let dir: string;
let archive: string;
let cluster: PgCluster;
let keys: KeyPair;
let configFile: string;
let systemIdentifier: string;

function postgresOwner(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const [, , uid, gid] = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'))!.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${cluster.log().split('\n').slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const headerTimeline = (name: string) => readFileSync(path.join(archive, name)).readUInt32LE(4);
const archived = () => readdirSync(archive).sort();
const segments = () => archived().filter((f) => walFileKind(f) === 'segment');

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-walsafety-'));
  chmodSync(dir, 0o755);
  archive = path.join(dir, 'archive');
  mkdirSync(archive);
  const owner = postgresOwner();
  if (owner) chownSync(archive, owner.uid, owner.gid);
  cluster = await startCluster({ archive: true, extraConf: [`archive_command = 'test ! -f ${archive}/%f && cp %p ${archive}/%f'`] });
  systemIdentifier = String((await cluster.query<{ id: string }>('postgres', 'SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0].id);
  await cluster.query('postgres', 'CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 20000) g');
  await cluster.query('postgres', 'SELECT pg_switch_wal()');
  // A backup history file, as pg_backup_stop writes it; the same session must start and stop.
  await cluster.query('postgres', "SELECT pg_backup_start('walsafety', true); SELECT pg_backup_stop(true)");
  await waitFor('a backup history file', () => archived().some((f) => f.endsWith('.backup')));

  // Archive recovery to the end, then promotion: timeline 2, its history file, the old
  // timeline's last segment as .partial, and a timeline-2 segment whose first page is timeline 1's.
  const asOwner = { uid: owner?.uid, gid: owner?.gid, cwd: '/' };
  await execa(path.join(cluster.binDir, 'pg_ctl'), ['stop', '-D', cluster.dataDir, '-m', 'fast', '-w'], asOwner);
  writeFileSync(path.join(cluster.dataDir, 'recovery.signal'), '');
  writeFileSync(path.join(cluster.dataDir, 'postgresql.auto.conf'), `restore_command = 'cp ${archive}/%f %p'\nrecovery_target_timeline = 'latest'\n`, { flag: 'a' });
  if (owner) chownSync(path.join(cluster.dataDir, 'recovery.signal'), owner.uid, owner.gid);
  await execa(path.join(cluster.binDir, 'pg_ctl'), ['start', '-D', cluster.dataDir, '-l', path.join(path.dirname(cluster.dataDir), 'server.log'), '-w', '-t', '60'], asOwner);
  await waitFor('promotion', async () => !(await cluster.query<{ r: boolean }>('postgres', 'SELECT pg_is_in_recovery() AS r').catch(() => ({ rows: [{ r: true }] }))).rows[0].r);
  for (let i = 0; i < 2; i++) {
    await cluster.query('postgres', 'INSERT INTO t SELECT g FROM generate_series(1, 1000) g');
    await cluster.query('postgres', 'SELECT pg_switch_wal()');
  }
  await waitFor('timeline 2 segments, its history and a .partial', () => {
    const names = archived();
    return names.includes('00000002.history') && names.some((f) => f.endsWith('.partial')) && segments().filter((f) => f.startsWith('00000002') && headerTimeline(f) === 2).length > 0;
  });

  keys = await ensureKeyPair(path.join(dir, 'keys'));
  configFile = path.join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    YAML.stringify({
      host: 'wal-safety',
      database: { url: 'postgres://postgres@127.0.0.1:1/postgres' },
      repositories: {
        local: { type: 'filesystem', path: path.join(dir, 'local') },
        cancelled: { type: 'filesystem', path: path.join(dir, 'cancelled') },
        raced: { type: 'filesystem', path: path.join(dir, 'raced') },
      },
      encryption: { publicKeyFile: keys.publicKeyFile, privateKeyHome: keys.privateHome },
      // The host's own spool, named: wal-fetch replays its unsigned entries.
      wal: { spool: 'local' },
      signing: { privateKeyFile: keys.signing.privateKeyFile },
      logLevel: 'warn',
    }),
  );
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  if (keys) await stopAgent(keys.privateHome);
  rmSync(dir, { recursive: true, force: true });
});

const read = (name: string) => readFileSync(path.join(archive, name));
const push = (file: string) => execa('node', [CLI, '--config', configFile, 'wal-push', file], { reject: false });
const spool = () => (existsSync(path.join(dir, 'local', 'wal')) ? readdirSync(path.join(dir, 'local', 'wal')).sort() : []);

/** A file of this name and content in a folder of its own, as archive_command would be given it. */
function stray(name: string, bytes: Buffer): string {
  const folder = path.join(dir, 'pg_wal', randomBytes(4).toString('hex'));
  mkdirSync(folder, { recursive: true });
  writeFileSync(path.join(folder, name), bytes);
  return path.join(folder, name);
}

describe('the WAL file check', () => {
  test('accepts every file a real cluster archived, across a promotion', () => {
    const names = archived();
    expect(names.filter((f) => f.endsWith('.history'))).toEqual(['00000002.history']);
    expect(names.filter((f) => f.endsWith('.partial'))).toHaveLength(1);
    expect(names.filter((f) => f.endsWith('.backup'))).toHaveLength(1);
    for (const name of names) {
      const verdict = checkWalFile(name, read(name));
      expect({ name, verdict: verdict.ok ? 'ok' : verdict.problem }).toEqual({ name, verdict: 'ok' });
    }
  });

  test("reads a real segment's header: the server's version, timeline, position, system identifier and sizes", () => {
    const name = segments()[0];
    const verdict = checkWalFile(name, read(name));
    if (!verdict.ok) throw new Error(verdict.problem);
    expect(verdict.header).toEqual({
      version: Number(path.basename(path.dirname(cluster.binDir))),
      timeline: 1,
      pageAddress: segmentStartLsn(name, 16 * 1024 * 1024),
      systemIdentifier,
      segmentSize: 16 * 1024 * 1024,
      blockSize: 8192,
    });
  });

  test('refuses random bytes, a truncated segment, a segment under another position or a lower timeline, and garbage text files', () => {
    const name = segments().find((f) => f.startsWith('00000001'))!;
    const real = read(name);
    const problem = (file: string, bytes: Buffer) => {
      const verdict = checkWalFile(file, bytes);
      return verdict.ok ? 'accepted' : verdict.problem;
    };
    expect(problem(name, randomBytes(16 * 1024 * 1024))).toMatch(/no WAL page magic/);
    expect(problem(name, randomBytes(1000))).toMatch(/size, 1000 bytes, is no WAL segment size/);
    expect(problem(name, real.subarray(0, 8 * 1024 * 1024))).toMatch(/header says segments are 16777216 bytes, the file has 8388608/);
    const nextPosition = name.slice(0, 16) + (parseInt(name.slice(16), 16) + 1).toString(16).toUpperCase().padStart(8, '0');
    expect(problem(nextPosition, real)).toMatch(/its name says it starts at .*, its first page says/);
    const ownTimeline = segments().find((f) => f.startsWith('00000002') && headerTimeline(f) === 2)!;
    expect(problem('00000001' + ownTimeline.slice(8), read(ownTimeline))).toMatch(/its name says timeline 1, its first page timeline 2/);
    const flipped = Buffer.from(real);
    flipped.writeUInt32LE(7, 4);
    expect(problem(name, flipped)).toMatch(/its name says timeline 1, its first page timeline 7/);
    expect(problem(name + '.partial', randomBytes(16 * 1024 * 1024))).toMatch(/no WAL page magic/);
    expect(problem('00000002.history', randomBytes(200))).toMatch(/not a text file|line 1/);
    expect(problem('00000002.history', Buffer.from('2\t0/3000000\treason\n'))).toMatch(/line 1 is not/);
    expect(problem('00000003.history', Buffer.from('# only a comment\n'))).toMatch(/names no parent timeline/);
    const backup = archived().find((f) => f.endsWith('.backup'))!;
    expect(problem(backup, randomBytes(300))).toMatch(/not a text file|START WAL LOCATION/);
    const other = '00000001000000000000000F.00000028.backup';
    expect(problem(other, read(backup))).toMatch(/its START WAL LOCATION is in segment/);
  });
});

describe('wal-push', () => {
  test('refuses random bytes under a segment name, naming the file and the problem but not its content, and then archives the real segment', async () => {
    const name = segments()[0];
    const impostor = stray(name, randomBytes(1000));
    const refused = await push(impostor);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain(`InvalidInput: wal-push: ${impostor} is not a WAL file PostgreSQL could replay: its size, 1000 bytes`);
    expect(refused.stderr).toContain('nothing archived');
    const sameSize = stray(name, randomBytes(16 * 1024 * 1024));
    const refusedToo = await push(sameSize);
    expect(refusedToo.exitCode).toBe(2);
    expect(refusedToo.stderr).toContain('no WAL page magic');
    const secret = Buffer.alloc(16 * 1024 * 1024, 'password=hunter2\n');
    const leaked = await push(stray(name, secret));
    expect(leaked.exitCode).toBe(2);
    expect(leaked.stderr).not.toMatch(/hunter2|password|7061|6170/i);
    expect(spool()).toEqual([]);

    const real = stray(name, read(name));
    const pushed = await push(real);
    expect(pushed.stderr).toBe('');
    expect(pushed.exitCode).toBe(0);
    expect(spool()).toEqual([`${name}.json`, `${name}.zst.gpg`]);
  });

  test("refuses the first segment of timeline 2 (its first page is timeline 1's) until timeline 2's history is archived, and a lookalike in another place", async () => {
    const branch = segments().find((f) => f.startsWith('00000002') && headerTimeline(f) === 1)!;
    expect(branch).toBeDefined();
    const refused = await push(stray(branch, read(branch)));
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain("its first page is timeline 1's, and the history of timeline 2 is not archived");
    expect((await push(stray('00000002.history', read('00000002.history')))).exitCode).toBe(0);
    // A timeline 1 segment from before the branch point, renamed into timeline 2.
    const early = segments()[0];
    const renamed = await push(stray('00000002' + early.slice(8), read(early)));
    expect(renamed.exitCode).toBe(2);
    expect(renamed.stderr).toContain('timeline 2 did not branch inside this segment');
    expect(spool().filter((f) => f.startsWith('00000002') && !f.endsWith('.history.json') && !f.includes('.history.'))).toEqual([]);
  });

  test('archives every real file of the promotion: history, .partial, .backup and the timeline 2 segments', async () => {
    for (const name of archived()) {
      const pushed = await push(stray(name, read(name)));
      expect({ name, exitCode: pushed.exitCode, stderr: pushed.stderr.replace(/^.*was already archived with the same content$/, '') }).toEqual({ name, exitCode: 0, stderr: '' });
    }
    expect(spool().filter((f) => f.endsWith('.json'))).toHaveLength(archived().length);
  });

  test("refuses a segment of another cluster, naming both system identifiers", async () => {
    const name = segments()[0];
    const foreign = Buffer.from(read(name));
    foreign.writeBigUInt64LE(BigInt(systemIdentifier) + 1n, 24);
    const next = name.slice(0, 16) + (parseInt(name.slice(16), 16) + 10).toString(16).toUpperCase().padStart(8, '0');
    foreign.writeBigUInt64LE(segmentStartLsn(next, 16 * 1024 * 1024)!, 8);
    const before = spool();
    const refused = await push(stray(next, foreign));
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain(`WalConflict: wal-push: ${next} is WAL of the cluster with system identifier ${BigInt(systemIdentifier) + 1n}`);
    expect(refused.stderr).toContain(`archives the cluster ${systemIdentifier}`);
    expect(spool()).toEqual(before);
  });

  test('refuses what is not a regular file', async () => {
    const folder = stray('00000001000000000000007F', Buffer.alloc(0));
    rmSync(folder);
    mkdirSync(folder);
    const refused = await push(folder);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain('is not a regular file');
  });
});

describe('WAL shipping and wal-fetch never harm what a newer attempt wrote', () => {
  const repositories = () => openRepositories(loadConfig(configFile, {}));
  const walFiles = (repo: string) => (existsSync(path.join(dir, repo, 'wal')) ? readdirSync(path.join(dir, repo, 'wal')).sort() : []);

  beforeAll(async () => {
    // Whether or not the wal-push tests ran first: the spool holds timeline 1's real segments.
    const config = loadConfig(configFile, {});
    for (const name of segments().filter((f) => f.startsWith('00000001'))) await pushSegment(config, openRepositories(config), path.join(archive, name));
  });

  /** A real repository whose `method` runs `hook` after it (or, with before, ahead of it) once: the moment a worker froze or an answer arrived. */
  function at<T extends Repository>(repository: T, method: 'put' | 'get', hook: () => Promise<void> | void, before = false): T {
    let fired = false;
    return new Proxy(repository, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target) as unknown;
        if (prop !== method || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: unknown[]) => {
          const once = !fired;
          fired = true;
          if (before && once) await hook();
          const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          if (!before && once) await hook();
          return result;
        };
      },
    });
  }

  test('an attempt that learns it was superseded (its cancellation fires) writes nothing more: no entry for the object it was storing, no further segment', async () => {
    const all = repositories();
    const spool = all.find((r) => r.name === 'local')!;
    expect((await listWalEntries(spool)).length).toBeGreaterThanOrEqual(2);
    const mock = new MockActivityEnvironment();
    const target = at(all.find((r) => r.name === 'cancelled')!, 'put', () => mock.cancel('NOT_FOUND'));
    const config = loadConfig(configFile, {});
    const activities = createWalShippingActivities({ config, repositories: [spool, target] });
    const outcome = await mock.run(activities.shipWalTo, { repository: 'cancelled' }).then(
      () => 'completed',
      (err: Error) => err.name,
    );
    expect(outcome).toBe('CancelledFailure');
    const written = walFiles('cancelled');
    expect(written.filter((f) => f.endsWith('.json'))).toEqual([]);
    expect(written.filter((f) => !f.endsWith('.partial'))).toHaveLength(1);
  });

  test('a stale attempt that wakes after a newer one shipped everything leaves every object and entry as the newer one wrote it', async () => {
    const all = repositories();
    const spool = all.find((r) => r.name === 'local')!;
    const raced = all.find((r) => r.name === 'raced')!;
    let afterNewer: Record<string, string> = {};
    const fingerprint = () =>
      Object.fromEntries(walFiles('raced').map((f) => {
        const info = statSync(path.join(dir, 'raced', 'wal', f));
        return [f, `${info.ino}:${info.mtimeMs}:${info.size}`];
      }));
    // The stale attempt listed the target, then froze; meanwhile a newer attempt shipped it all.
    const frozenSpool = at(spool, 'get', async () => {
      expect(await shipSegments(spool, raced)).toHaveLength((await listWalEntries(spool)).length);
      afterNewer = fingerprint();
    }, true);
    const stale = await shipSegments(frozenSpool, raced);
    expect(stale).toEqual([]);
    expect(Object.keys(afterNewer).length).toBeGreaterThan(3);
    expect(fingerprint()).toEqual(afterNewer);
  });

  test('wal-fetch writes through a name of its own: a file or link under another name beside the destination is never followed, written or removed', async () => {
    const name = segments()[0];
    const folder = path.join(dir, 'fetch');
    mkdirSync(folder);
    const destination = path.join(folder, 'RECOVERYXLOG');
    const victim = path.join(dir, 'victim.txt');
    writeFileSync(victim, 'not a WAL file\n');
    symlinkSync(victim, `${destination}.backupctl-partial`);
    const fetched = await execa('node', [CLI, '--config', configFile, 'wal-fetch', name, destination], { reject: false });
    expect(fetched.stderr).toBe('');
    expect(fetched.exitCode).toBe(0);
    // A boolean: on failure the victim holds a WAL segment, not worth printing.
    expect(readFileSync(victim, 'utf8') === 'not a WAL file\n').toBe(true);
    expect(lstatSync(destination).isFile()).toBe(true);
    expect(readFileSync(destination).equals(read(name))).toBe(true);
    expect(readlinkSync(`${destination}.backupctl-partial`)).toBe(victim);
    expect(readdirSync(folder).sort()).toEqual(['RECOVERYXLOG', 'RECOVERYXLOG.backupctl-partial']);
  });
});
