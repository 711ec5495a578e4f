// Authenticity of backups (issue 9) on real components: a Temporal dev server, PostgreSQL,
// filesystem repositories and SeaweedFS S3, gpg. The database host signs its manifests; a
// restoring host holds only the signing PUBLIC keys. An attacker who has the encryption public
// key and write access to every repository plants complete, newer backups of their own: one
// unsigned, one signed with their own key; and a dump object inside a genuine backup. The
// planted dump's SQL, run by pg_restore as a superuser, creates a role on the restore server:
// the proof that it ran.
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { WorkflowFailedError, type Workflow } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import pino from 'pino';
import { createPrivateKey } from 'node:crypto';
import { readManifestCopies } from '../engine/catalog.js';
import { loadVerifier, signManifest } from '../engine/manifestSignature.js';
import { resolveCatalogBackup } from '../engine/restoreSource.js';
import { expectedSource } from '../engine/sourceMatch.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Repository } from '../engine/storage/repository.js';
import { runListBackups } from '../client/commands/listBackups.js';
import { collectStatus } from '../client/commands/status.js';
import { ensureSigningKeyPair, type SigningKeyPair } from '../client/dev/demoKeys.js';
import type { Printer } from '../client/output.js';
import type { Config } from '../common/config.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupDatabase, restoreDatabase, verifyBackup } from '../workflows/index.js';
import type { RestoreDatabaseInput } from '../common/restoreTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type BackupManifest, type DatabaseBackupResult } from '../common/types.js';
import { APP_USER, SOURCE_DB, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { encryptLikeABackup, plantBackup } from './fixtures/plantedBackup.js';

let env: BackupEnv;
let dbConfig: Config;
let restorerConfig: Config;
let repositories: Repository[];
const running: RunningWorker[] = [];
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });
let oldKey: SigningKeyPair;
let newKey: SigningKeyPair;
let attackerKey: SigningKeyPair;
const genuine: Record<'old' | 'current', DatabaseBackupResult> = {} as never;
let attackerDump: Buffer;
const PLANTED_ROLE = 'planted_role';

/** Both hosts use the database host's repositories. */
function sharedRepositories(raw: any) {
  raw.repositories = {
    local: { type: 'filesystem', path: path.join(env.dir, 'db', 'local') },
    nas: { type: 'filesystem', path: path.join(env.dir, 'db', 'nas') },
    s3: { ...raw.repositories.s3, prefix: 'db' },
  };
}

const manifestOf = (backupId: string): BackupManifest => JSON.parse(readFileSync(path.join(env.dir, 'db', 'local', 'database', backupId, 'manifest.json'), 'utf8'));

async function outcome<W extends Workflow>(workflow: W, workflowId: string, input: Parameters<W>[0]) {
  const handle = await env.temporal.client.workflow.start(workflow, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [input] } as any);
  try {
    return { result: (await handle.result()) as Awaited<ReturnType<W>> };
  } catch (err) {
    return { failure: (err as WorkflowFailedError).cause as ApplicationFailure };
  }
}

function restore(workflowId: string, input: Partial<RestoreDatabaseInput>) {
  return outcome(restoreDatabase, workflowId, { hostTaskQueue: hostTaskQueue('restorer'), backup: 'latest', into: workflowId.replace(/-/g, '_'), ...input });
}

/** Whether the planted dump's SQL ever ran on the restore server. */
async function plantedSqlRan(): Promise<boolean> {
  return (await env.source.query('postgres', 'SELECT 1 FROM pg_roles WHERE rolname = $1', [PLANTED_ROLE])).rowCount === 1;
}

async function databaseExists(name: string): Promise<boolean> {
  return (await env.source.query('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
}

/** A table of text that compresses poorly: the bulk of a dump. */
function filler(rows: number, seed: number, owner?: string): string {
  const md5s = [1, 7, 13, 17].map((k) => `md5((g * ${k} + ${seed})::text)`).join(' || ');
  return `CREATE TABLE z_filler AS SELECT g AS id, ${md5s} AS body FROM generate_series(1, ${rows}) g;${owner ? ` ALTER TABLE z_filler OWNER TO ${owner};` : ''}`;
}

function capture(): Printer & { text: string; value: any } {
  const out = { json: false, text: '', value: undefined as any, result: (value: unknown, human: () => string) => ((out.value = value), (out.text += human() + '\n')) };
  return out;
}

beforeAll(async () => {
  // A dump of a few MB: long enough to stream that a restore which loads while it reads would
  // run a planted object's first statements before its last byte (and checksum) arrived.
  env = await startBackupEnv({ users: 20, sessionsPerUser: 2, activitiesPerSession: 2 }, async (db) => void (await db.query(filler(40_000, 0, APP_USER))));
  oldKey = env.keys.signing;
  newKey = ensureSigningKeyPair(path.join(env.dir, 'keys'), 'rotated');
  attackerKey = ensureSigningKeyPair(path.join(env.dir, 'attacker'), 'attacker');
  // The database host signs with whatever key this file holds: the old one, then the rotated one.
  const hostKey = path.join(env.dir, 'db-signing.pem');
  copyFileSync(oldKey.privateKeyFile, hostKey);
  dbConfig = env.config('db', (raw) => (raw.signing = { privateKeyFile: hostKey }));
  // The restoring host: the private encryption key, and only the public halves of the signing keys.
  restorerConfig = env.config('restorer', (raw) => {
    sharedRepositories(raw);
    raw.encryption.privateKeyHome = env.keys.privateHome;
    raw.restore = { serverUrl: env.source.url('postgres'), jobs: 1 };
    raw.signing = { publicKeyFiles: [newKey.publicKeyFile, oldKey.publicKeyFile] };
  });
  repositories = openRepositories(restorerConfig);
  for (const config of [dbConfig, restorerConfig]) running.push(await startWorker(config, logger, { bundleInProcess: true }));
  const backup = (workflowId: string) => env.temporal.client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue('db') }] });
  genuine.old = await backup('sig-old');
  copyFileSync(newKey.privateKeyFile, hostKey);
  genuine.current = await backup('sig-current');

  // The attacker's database: a CHECK constraint whose function creates a role, so loading its
  // rows runs SQL of the attacker's choosing as whoever restores.
  await env.fresh.createDatabase('attacker_db');
  await env.fresh.query(
    'attacker_db',
    `CREATE FUNCTION planted_effect() RETURNS boolean LANGUAGE plpgsql AS $$
     BEGIN
       IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '${PLANTED_ROLE}') THEN CREATE ROLE ${PLANTED_ROLE}; END IF;
       RETURN true;
     END $$;
     CREATE TABLE planted_marker (v text CHECK (planted_effect()));
     INSERT INTO planted_marker VALUES ('planted');`,
  );
  // Loaded after planted_marker (pg_restore goes by name): the bulk of a planted object.
  await env.fresh.query('attacker_db', filler(30_000, 1_000_000));
  attackerDump = (await execa(path.join(env.fresh.binDir, 'pg_dump'), ['-Fc', 'attacker_db'], { env: env.fresh.env('attacker_db'), encoding: 'buffer', stripFinalNewline: false })).stdout as Buffer;
  const template = manifestOf(genuine.current.backupId);
  const attackerSigner = { keyId: attackerKey.keyId, privateKey: createPrivateKey(readFileSync(attackerKey.privateKeyFile, 'utf8')) };
  const plant = (backupId: string, minutes: number, finish?: (m: BackupManifest) => object) =>
    plantBackup(repositories, {
      backupId,
      template,
      dump: attackerDump,
      globals: Buffer.from('-- roles\n'),
      publicKeyFile: env.keys.publicKeyFile,
      startedAt: new Date(Date.now() + minutes * 60_000).toISOString(),
      finish,
    });
  // Newer than every genuine backup: a plain "newest manifest" would take them.
  await plant('planted-unsigned', 1);
  await plant('planted-foreign', 2, (m) => signManifest(m, attackerSigner));
  expect(await plantedSqlRan()).toBe(false);
}, 240_000);

afterAll(async () => {
  await Promise.all(running.map((w) => w.shutdown().catch(() => undefined)));
  await env?.stop();
});

test('restore latest restores the genuine backup, names the newer planted ones it passed over, and runs none of their SQL', async () => {
  const { result, failure } = await restore('sig-restore-latest', {});
  expect(failure).toBeUndefined();
  expect(result!.source).toMatchObject({ kind: 'backup', backupId: genuine.current.backupId });
  const passedOver = result!.restored.skipped.filter((s) => s.key.includes('planted')).map((s) => `${s.repository} ${s.key} ${s.errorType}`);
  expect(passedOver.sort()).toEqual(
    ['local', 'nas', 's3'].flatMap((r) => [`${r} database/planted-foreign/manifest.json BadSignature`, `${r} database/planted-unsigned/manifest.json UnsignedBackup`]).sort(),
  );
  expect((await env.source.query('sig_restore_latest', "SELECT to_regclass('planted_marker') AS t")).rows[0].t).toBeNull();
  expect(await plantedSqlRan()).toBe(false);
});

test('verify latest verifies the genuine backup, every manifest copy signed', async () => {
  const { result, failure } = await outcome(verifyBackup, 'sig-verify-latest', { hostTaskQueue: hostTaskQueue('restorer'), backup: 'latest', amcheck: false });
  expect(failure).toBeUndefined();
  expect(result).toMatchObject({ backupId: genuine.current.backupId, ok: true, state: 'verified' });
  expect(await plantedSqlRan()).toBe(false);
});

test('backups list marks the planted backups (exit 1 for the wrongly signed one); status never counts them', async () => {
  const out = capture();
  const code = await runListBackups(repositories, out, await loadVerifier(restorerConfig), await expectedSource(restorerConfig));
  expect(code).toBe(1);
  const signatureOf = Object.fromEntries(out.value.backups.map((e: any) => [e.backupId, e.signature]));
  expect(signatureOf).toEqual({ [genuine.old.backupId]: 'signed', [genuine.current.backupId]: 'signed', 'planted-unsigned': 'unsigned', 'planted-foreign': 'bad-signature' });
  const row = (id: string) => out.text.split('\n').find((line) => line.includes(`  ${id}  `))!;
  expect(row('planted-unsigned')).toContain('UNSIGNED (never latest; restored only with --allow-unsigned)');
  expect(row('planted-foreign')).toContain(`BAD SIGNATURE (never used): manifest is signed by key ${attackerKey.keyId.slice(0, 16)}`);
  expect(row(genuine.current.backupId)).not.toMatch(/UNSIGNED|BAD SIGNATURE/);

  const status = await collectStatus(undefined, 'not connected in this test', restorerConfig, repositories);
  expect(status.latestBackup).toMatchObject({ backupId: genuine.current.backupId });
  expect(status.problems.join('\n')).toContain(`backup planted-unsigned is newer than the newest signed backup (${genuine.current.backupId}) but UNSIGNED`);
  expect(status.problems.join('\n')).toContain('backup planted-foreign is wrongly signed and never used');
});

test('the explicit id of a planted backup is refused, naming it and every repository; nothing is restored', async () => {
  const unsigned = await restore('sig-restore-planted-unsigned', { backup: 'planted-unsigned' });
  expect(unsigned.failure).toMatchObject({ type: 'UnsignedBackup', nonRetryable: true });
  expect(unsigned.failure!.message).toMatch(/^backup planted-unsigned is not signed in any repository, and is refused: .* in local .* in nas .* in s3 .*--allow-unsigned$/);
  const foreign = await restore('sig-restore-planted-foreign', { backup: 'planted-foreign', allowUnsigned: true });
  expect(foreign.failure).toMatchObject({ type: 'BadSignature', nonRetryable: true, message: expect.stringContaining('backup planted-foreign has no manifest copy signed by a trusted key') });
  const verify = await outcome(verifyBackup, 'sig-verify-planted', { hostTaskQueue: hostTaskQueue('restorer'), backup: 'planted-unsigned' });
  expect(verify.failure).toMatchObject({ type: 'UnsignedBackup' });
  expect(await databaseExists('sig_restore_planted_unsigned')).toBe(false);
  expect(await databaseExists('sig_restore_planted_foreign')).toBe(false);
  expect(await plantedSqlRan()).toBe(false);
});

test('key rotation: a backup signed with the old key restores while its public key is listed, and is refused once it is not', async () => {
  expect(manifestOf(genuine.old.backupId).signature?.keyId).toBe(oldKey.keyId);
  expect(manifestOf(genuine.current.backupId).signature?.keyId).toBe(newKey.keyId);
  const { result, failure } = await restore('sig-restore-old-key', { backup: genuine.old.backupId });
  expect(failure).toBeUndefined();
  expect(result!.source).toMatchObject({ backupId: genuine.old.backupId });
  const onlyNew = { ...restorerConfig, signing: { ...restorerConfig.signing, publicKeyFiles: [newKey.publicKeyFile] } };
  const refused = await resolveCatalogBackup(genuine.old.backupId, repositories, await expectedSource(onlyNew), { verifier: await loadVerifier(onlyNew), allowUnsigned: false }).catch((err) => err);
  expect(refused).toMatchObject({ type: 'BadSignature', message: expect.stringContaining(`signed by key ${oldKey.keyId.slice(0, 16)}, which host restorer does not trust`) });
});

test("a dump object planted inside a genuine backup (same size, encrypted to the public key) runs none of its SQL: its copy is skipped, the next one restores", async () => {
  const dump = genuine.current.objects.find((o) => o.role === 'dump')!;
  const local = repositories.find((r) => r.name === 'local')!;
  const original = path.join(env.dir, 'db', 'local', dump.key);
  const kept = readFileSync(original);
  const planted = await encryptLikeABackup(attackerDump, env.keys.publicKeyFile, dump.bytes);
  expect(planted.length).toBe(dump.bytes);
  await local.put(dump.key, Readable.from([planted]), { contentLength: planted.length });
  try {
    const { result, failure } = await restore('sig-restore-planted-object', { backup: genuine.current.backupId });
    expect(failure).toBeUndefined();
    expect(result!.restored.copy).toMatchObject({ repository: 'nas' });
    expect(result!.restored.skipped).toEqual(expect.arrayContaining([expect.objectContaining({ repository: 'local', key: dump.key, errorType: 'ChecksumMismatch' })]));
    expect(await plantedSqlRan()).toBe(false);
  } finally {
    writeFileSync(original, kept);
  }
});

test('a seed-made file has no signed manifest: refused without --allow-unsigned, restored with it', async () => {
  const file = path.join(env.dir, 'full_backup_20261120.backup');
  await execa(path.join(env.source.binDir, 'pg_dump'), ['-Fc', `--file=${file}`], { env: env.source.env(SOURCE_DB) });
  const refused = await restore('sig-restore-seed-refused', { backup: file });
  expect(refused.failure).toMatchObject({ type: 'UnsignedBackup', nonRetryable: true, message: expect.stringContaining(`restore source ${file} is a file with no signed manifest`) });
  expect(await databaseExists('sig_restore_seed_refused')).toBe(false);
  const admitted = await restore('sig-restore-seed-admitted', { backup: file, allowUnsigned: true });
  expect(admitted.failure).toBeUndefined();
  expect(admitted.result!.restored.copy).toEqual({ path: file });
});

// Last: admitting the planted backup runs its SQL, which is the point of refusing it by default.
test('with --allow-unsigned the unsigned backup is admitted, and the result says it is unsigned', async () => {
  const copies = await readManifestCopies(repositories, 'database', 'planted-unsigned', { verifier: await loadVerifier(restorerConfig), allowUnsigned: true });
  expect(copies.signature).toEqual({ state: 'unsigned' });
  const { result, failure } = await restore('sig-restore-admitted', { backup: 'planted-unsigned', allowUnsigned: true });
  expect(failure).toBeUndefined();
  expect(result!.restored.warnings?.join(' ')).toContain('backup planted-unsigned is UNSIGNED: admitted because unsigned backups were allowed (--allow-unsigned)');
  expect((await env.source.query('sig_restore_admitted', 'SELECT v FROM planted_marker')).rows).toEqual([{ v: 'planted' }]);
  expect(await plantedSqlRan()).toBe(true);
});
