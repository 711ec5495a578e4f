// A manifest is evidence, not truth (DESIGN safety rule 9), on real components: a Temporal dev
// server, PostgreSQL clusters, filesystem repositories and SeaweedFS S3, gpg. Repositories are
// shared by a second database of the same cluster and by a second host whose database has the
// same name; manifests are copied, truncated and altered as a hostile operator or a failing
// disk would.
import { createPrivateKey } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { WorkflowFailedError, type Workflow } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import pino from 'pino';
import { readCatalog } from '../client/commands/listBackups.js';
import { loadVerifier, signManifest } from '../engine/manifestSignature.js';
import { collectStatus } from '../client/commands/status.js';
import { openRepositories } from '../engine/storage/index.js';
import type { ExpectedSource } from '../engine/sourceMatch.js';
import type { Config } from '../common/config.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupDatabase, restoreDatabase, verifyBackup } from '../workflows/index.js';
import type { RestoreDatabaseInput, VerificationReport } from '../common/restoreTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type DatabaseBackupResult } from '../common/types.js';
import { APP_USER, SOURCE_DB, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

let env: BackupEnv;
let dbConfig: Config;
const running: RunningWorker[] = [];
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });
const backups: Record<'a' | 'b' | 'otherDb' | 'otherHost', DatabaseBackupResult> = {} as never;
let sourceClusterId: string;

/** The database host's repositories, which the other database and the other host share. */
function sharedRepositories(raw: any) {
  raw.repositories = {
    local: { type: 'filesystem', path: path.join(env.dir, 'db', 'local') },
    nas: { type: 'filesystem', path: path.join(env.dir, 'db', 'nas') },
    s3: { ...raw.repositories.s3, prefix: 'db' },
  };
}

const dir = (repository: 'local' | 'nas') => path.join(env.dir, 'db', repository);
const manifestFile = (repository: 'local' | 'nas', backupId: string) => path.join(dir(repository), 'database', backupId, 'manifest.json');

async function backup(host: string, workflowId: string) {
  return env.temporal.client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue(host) }] });
}

async function marker(value: string) {
  await env.source.query(SOURCE_DB, `SET ROLE ${APP_USER}; CREATE TABLE IF NOT EXISTS evidence_marker (v text); TRUNCATE evidence_marker; INSERT INTO evidence_marker VALUES ('${value}')`);
}

beforeAll(async () => {
  env = await startBackupEnv({ users: 20, sessionsPerUser: 2, activitiesPerSession: 2 });
  sourceClusterId = (await env.source.query<{ id: string }>('postgres', 'SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0].id;
  dbConfig = env.config('db', (raw) => {
    raw.encryption.privateKeyHome = env.keys.privateHome;
    raw.restore = { serverUrl: env.source.url('postgres'), jobs: 1 };
  });
  // A second database in the same cluster, and a database of the same name on another host.
  await env.source.query('postgres', `CREATE DATABASE other_db OWNER ${APP_USER}`);
  await env.fresh.createDatabase(SOURCE_DB);
  await env.fresh.query(SOURCE_DB, "CREATE TABLE evidence_marker (v text); INSERT INTO evidence_marker VALUES ('other-host')");
  const otherDbConfig = env.config('otherdb', (raw) => {
    raw.database.url = raw.database.url.replace(`/${SOURCE_DB}`, '/other_db');
    sharedRepositories(raw);
  });
  const otherHostConfig = env.config('otherhost', (raw) => {
    raw.database.url = env.fresh.url(SOURCE_DB);
    sharedRepositories(raw);
  });
  for (const config of [dbConfig, otherDbConfig, otherHostConfig]) running.push(await startWorker(config, logger, { bundleInProcess: true }));
  await marker('A');
  backups.a = await backup('db', 'ev-a');
  await marker('B');
  backups.b = await backup('db', 'ev-b');
  // Newer than ours: a plain "newest manifest" would take them.
  backups.otherDb = await backup('otherdb', 'ev-otherdb');
  backups.otherHost = await backup('otherhost', 'ev-otherhost');
});

afterAll(async () => {
  await Promise.all(running.map((w) => w.shutdown().catch(() => undefined)));
  await env?.stop();
});

async function outcome<W extends Workflow>(workflow: W, workflowId: string, input: Parameters<W>[0]) {
  const handle = await env.temporal.client.workflow.start(workflow, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [input] } as any);
  try {
    return { result: (await handle.result()) as Awaited<ReturnType<W>>, handle };
  } catch (err) {
    return { failure: (err as WorkflowFailedError).cause as ApplicationFailure, handle };
  }
}

function restore(workflowId: string, input: Partial<RestoreDatabaseInput>) {
  return outcome(restoreDatabase, workflowId, { hostTaskQueue: hostTaskQueue('db'), backup: 'latest', into: workflowId.replace(/-/g, '_'), ...input });
}

async function markerOf(database: string): Promise<string> {
  return (await env.source.query<{ v: string }>(database, 'SELECT v FROM evidence_marker')).rows[0].v;
}

/** Writes a manifest body into every repository (filesystem and S3) under backupId's key. */
async function putManifest(backupId: string, body: Buffer, only?: string[]) {
  for (const repository of openRepositories(dbConfig).filter((r) => !only || only.includes(r.name))) {
    await repository.put(`database/${backupId}/manifest.json`, Readable.from([body]), { contentLength: body.length });
  }
}

/** Runs body with the named manifests as they were before, whatever body did to them. */
async function keepingManifests(backupIds: string[], body: () => Promise<void>) {
  const saved = await Promise.all(backupIds.map(async (id) => [id, await readAll(await openRepositories(dbConfig)[0].get(`database/${id}/manifest.json`))] as const));
  try {
    await body();
  } finally {
    for (const [id, original] of saved) await putManifest(id, original);
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function expected(): ExpectedSource {
  return { database: SOURCE_DB, systemIdentifier: sourceClusterId, from: 'the live cluster' };
}

describe('item 6: a repository shared by two databases and two hosts', () => {
  test('the manifests name their source: database and cluster system identifier', () => {
    const manifest = JSON.parse(readFileSync(manifestFile('local', backups.b.backupId), 'utf8'));
    expect(manifest.source).toMatchObject({ database: SOURCE_DB, systemIdentifier: sourceClusterId });
    const other = JSON.parse(readFileSync(manifestFile('nas', backups.otherHost.backupId), 'utf8'));
    expect(other.source.database).toBe(SOURCE_DB);
    expect(other.source.systemIdentifier).toMatch(/^\d+$/);
    expect(other.source.systemIdentifier).not.toBe(sourceClusterId);
  });

  test('restore latest takes the newest backup of the configured database and cluster, not a newer one of another database or host', async () => {
    const { result, failure } = await restore('ev-restore-latest', {});
    expect(failure).toBeUndefined();
    expect(result!.source).toMatchObject({ kind: 'backup', backupId: backups.b.backupId });
    expect(await markerOf('ev_restore_latest')).toBe('B');
  });

  test('backups list and status show only our backups as ours; the others are listed apart', async () => {
    const catalog = await readCatalog(openRepositories(dbConfig), await loadVerifier(dbConfig), expected());
    expect(catalog.entries.map((e) => e.backupId)).toEqual([backups.a.backupId, backups.b.backupId]);
    expect(catalog.otherSources.map((o) => o.backupId).sort()).toEqual([backups.otherDb.backupId, backups.otherHost.backupId].sort());
    const status = await collectStatus(undefined, 'not connected in this test', dbConfig, openRepositories(dbConfig));
    expect(status.latestBackup).toMatchObject({ backupId: backups.b.backupId });
  });

  test('an explicit id of another database is refused; of another cluster, restored with a warning in the result', async () => {
    const refused = await restore('ev-restore-otherdb', { backup: backups.otherDb.backupId });
    expect(refused.failure?.type).toBe('SourceMismatch');
    expect(refused.failure?.message).toContain('other_db');
    const warned = await restore('ev-restore-otherhost', { backup: backups.otherHost.backupId });
    expect(warned.failure).toBeUndefined();
    expect(await markerOf('ev_restore_otherhost')).toBe('other-host');
    expect(warned.result!.restored.warnings?.join(' ')).toContain(`not ${sourceClusterId}`);
  });

  test('restore.sourceSystemIdentifier names the cluster whose backups latest takes (a new host after the original is gone)', async () => {
    const otherClusterId = JSON.parse(readFileSync(manifestFile('local', backups.otherHost.backupId), 'utf8')).source.systemIdentifier;
    const newHost = env.config('db', (raw) => {
      raw.restore = { sourceSystemIdentifier: otherClusterId };
    });
    const { expectedSource } = await import('../engine/sourceMatch.js');
    const { resolveCatalogBackup } = await import('../engine/restoreSource.js');
    const trust = { verifier: await loadVerifier(dbConfig), allowUnsigned: false };
    const source = await resolveCatalogBackup('latest', openRepositories(dbConfig), await expectedSource(newHost), trust);
    expect(source).toMatchObject({ backupId: backups.otherHost.backupId, repositories: ['local', 'nas', 's3'], warnings: [] });
    // Without it, the live cluster decides.
    const live = await resolveCatalogBackup('latest', openRepositories(dbConfig), await expectedSource(dbConfig), trust);
    expect(live.backupId).toBe(backups.b.backupId);
  });

  test('a manifest that records no cluster (an older backup) is never latest, and restores by explicit id with a warning', async () => {
    // The same backup under a new id, as an older backupctl would have written it, and newest.
    const legacy = 'ev-legacy';
    const startedAt = new Date().toISOString();
    for (const repository of ['local', 'nas'] as const) {
      const from = path.join(dir(repository), 'database', backups.b.backupId);
      const to = path.join(dir(repository), 'database', legacy);
      mkdirSync(to, { recursive: true });
      // Flat, as an older backupctl laid it out (no claim, no attempt folder).
      const manifestBefore = JSON.parse(readFileSync(path.join(from, 'manifest.json'), 'utf8'));
      for (const o of manifestBefore.objects) copyFileSync(path.join(dir(repository), o.key), path.join(to, path.basename(o.key)));
      const manifest = JSON.parse(readFileSync(path.join(from, 'manifest.json'), 'utf8'));
      delete manifest.source.systemIdentifier;
      // An older backupctl signed nothing.
      delete manifest.signature;
      manifest.backupId = legacy;
      manifest.startedAt = startedAt;
      for (const o of manifest.objects) o.key = `database/${legacy}/${path.basename(o.key)}`;
      writeFileSync(path.join(to, 'manifest.json'), JSON.stringify(manifest));
    }
    const latest = await restore('ev-restore-latest-2', {});
    expect(latest.result?.source).toMatchObject({ backupId: backups.b.backupId });
    const explicit = await restore('ev-restore-legacy', { backup: legacy, allowUnsigned: true });
    expect(explicit.failure).toBeUndefined();
    expect(explicit.result!.restored.warnings?.join(' ')).toContain('records no cluster system identifier');
  });
});

describe('item 5: a manifest must name the backup it is asked for', () => {
  test("another backup's manifest copied into this backup's folder is a damaged copy: skipped, reported, the next repository's used", async () => {
    await keepingManifests([backups.b.backupId], async () => {
      await putManifest(backups.b.backupId, readFileSync(manifestFile('nas', backups.a.backupId)), ['local']);
      const { result, failure } = await restore('ev-restore-swapped-local', { backup: backups.b.backupId });
      expect(failure).toBeUndefined();
      expect(await markerOf('ev_restore_swapped_local')).toBe('B');
      expect(result!.restored.copy).toMatchObject({ repository: 'nas' });
      expect(result!.restored.skipped).toEqual(expect.arrayContaining([expect.objectContaining({ repository: 'local', errorType: 'ManifestDamaged' })]));
    });
  });

  test('when every copy names another backup, the restore fails as ManifestDamaged and restores nothing', async () => {
    await keepingManifests([backups.b.backupId], async () => {
      await putManifest(backups.b.backupId, readFileSync(manifestFile('nas', backups.a.backupId)));
      const { failure } = await restore('ev-restore-swapped-all', { backup: backups.b.backupId });
      expect(failure?.type).toBe('ManifestDamaged');
      const exists = await env.source.query('postgres', "SELECT 1 FROM pg_database WHERE datname = 'ev_restore_swapped_all'");
      expect(exists.rows).toEqual([]);
    });
  });

  test('the listing never shows a copied manifest under either id, and reports it', async () => {
    const fake = path.join(dir('local'), 'database', 'ev-fake');
    mkdirSync(fake, { recursive: true });
    copyFileSync(manifestFile('local', backups.a.backupId), path.join(fake, 'manifest.json'));
    try {
      const catalog = await readCatalog(openRepositories(dbConfig), await loadVerifier(dbConfig), expected());
      const a = catalog.entries.find((e) => e.backupId === backups.a.backupId)!;
      expect(a.foundIn).toEqual(['local', 'nas', 's3']);
      expect(catalog.damaged).toEqual([expect.objectContaining({ repository: 'local', key: 'database/ev-fake/manifest.json', errorType: 'ManifestDamaged' })]);
    } finally {
      writeFileSync(path.join(fake, 'manifest.json'), '');
      await openRepositories(dbConfig)[0].remove('database/ev-fake/manifest.json');
    }
  });
});

describe('item 7: a damaged manifest is a damaged copy', () => {
  test('a truncated manifest in the first repository: restore and verify use the next one and report the damaged copy', async () => {
    await keepingManifests([backups.b.backupId], async () => {
      const whole = readFileSync(manifestFile('local', backups.b.backupId));
      writeFileSync(manifestFile('local', backups.b.backupId), whole.subarray(0, whole.length >> 1));
      const restored = await restore('ev-restore-truncated', { backup: backups.b.backupId });
      expect(restored.failure).toBeUndefined();
      expect(restored.result!.restored.skipped).toEqual(expect.arrayContaining([expect.objectContaining({ repository: 'local', errorType: 'ManifestDamaged' })]));
      const verified = await outcome(verifyBackup, 'ev-verify-truncated', { hostTaskQueue: hostTaskQueue('db'), backup: backups.b.backupId, amcheck: false });
      expect(verified.failure).toBeUndefined();
      const report = verified.result as VerificationReport;
      expect(report.ok).toBe(true);
      expect(report.restored!.skipped).toEqual(expect.arrayContaining([expect.objectContaining({ repository: 'local', errorType: 'ManifestDamaged' })]));
    });
  });

  test('copies that differ between repositories: the first whole one is used, the other reported, never silently mixed', async () => {
    await keepingManifests([backups.b.backupId], async () => {
      const altered = JSON.parse(readFileSync(manifestFile('nas', backups.b.backupId), 'utf8'));
      altered.rowCounts = Object.fromEntries(Object.keys(altered.rowCounts).map((t) => [t, 1]));
      // Signed again with the trusted key: a copy that is genuine but differs (an altered copy
      // that is not signed again is a BadSignature copy, signing.integration.test.ts).
      const signer = { keyId: env.keys.signing.keyId, privateKey: createPrivateKey(readFileSync(env.keys.signing.privateKeyFile, 'utf8')) };
      await putManifest(backups.b.backupId, Buffer.from(JSON.stringify(signManifest(altered, signer))), ['nas']);
      const { result, failure } = await restore('ev-restore-differs', { backup: backups.b.backupId });
      expect(failure).toBeUndefined();
      expect(result!.inspection.rowCounts).toEqual(backups.b.rowCounts);
      expect(result!.restored.skipped).toEqual(
        expect.arrayContaining([expect.objectContaining({ repository: 'nas', errorType: 'ManifestDamaged', reason: expect.stringContaining('differs') })]),
      );
    });
  });
});

describe('item 11: a seed file is hostile input', () => {
  const header = '--\n-- PostgreSQL database dump\n--\n\n';
  const secret = 'sk_live_Zq81VerySecretToken';
  let files: string;
  beforeAll(() => {
    files = path.join(env.dir, 'seed-files');
    mkdirSync(files, { recursive: true });
    chmodSync(files, 0o755);
  });

  test("a failing .sql file's content reaches neither the error nor the workflow history", async () => {
    const file = path.join(files, 'leaky.sql');
    writeFileSync(file, `${header}CREATE TABLE t (a int);\nINSERT INTO t VALUES ('${secret}');\n`);
    const { failure, handle } = await restore('ev-restore-leaky', { backup: file, allowUnsigned: true });
    const history = JSON.stringify(await handle.fetchHistory());
    expect(history).not.toContain(secret);
    expect(history).not.toContain('VerySecret');
    expect(failure?.type).toBe('RestoreFailed');
    // The kind of error and the file's line number are all an operator needs to look.
    expect(failure?.message).toMatch(/line 6: ERROR: invalid input syntax for type integer/);
  });

  test('backslash commands in a .sql file are refused: no shell command runs as the worker', async () => {
    const proof = path.join(files, 'pwned');
    const file = path.join(files, 'shell.sql');
    writeFileSync(file, `${header}CREATE TABLE t (a int);\n\\! touch ${proof}\n`);
    const { failure } = await restore('ev-restore-shell', { backup: file, allowUnsigned: true });
    expect(failure?.type).toBe('RestoreFailed');
    expect(existsSync(proof)).toBe(false);
  });

  test('a symbolic link to a file is refused before anything runs', async () => {
    const real = path.join(files, 'real.sql');
    writeFileSync(real, `${header}CREATE TABLE t (a int);\n`);
    const link = path.join(files, 'link.sql');
    symlinkSync(real, link);
    const { failure } = await restore('ev-restore-link', { backup: link });
    expect(failure?.type).toBe('InvalidInput');
    expect(failure?.message).toContain('symbolic link');
    const exists = await env.source.query('postgres', "SELECT 1 FROM pg_database WHERE datname = 'ev_restore_link'");
    expect(exists.rows).toEqual([]);
  });
});
