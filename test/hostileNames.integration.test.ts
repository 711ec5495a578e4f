// Hostile names everywhere a name reaches SQL, a shell or a path (issue 9): a database whose
// name is 63 bytes of quotes, a semicolon, a comment, a newline and Unicode; a role with quotes
// and a semicolon owning tables named likewise; repository folders with spaces and quotes; a
// seed dump file with a quote and a newline in its name. Backed up, restored onto a server
// that has never seen the role, verified, and restored from the file: the data arrives
// identical, and nothing but the intended databases and folders is touched.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import pino from 'pino';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupDatabase, restoreDatabase, verifyBackup } from '../workflows/index.js';
import type { RestoreDatabaseResult, VerificationReport } from '../common/restoreTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type DatabaseBackupResult } from '../common/types.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { ident, tableChecksums } from './fixtures/postgres.js';

// 63 bytes (PostgreSQL's limit): quotes, a semicolon, a comment, a newline, Unicode.
const DB = `Thesis "Grey"'; DROP DATABASE postgres;--\nünïcødé ✓ ${'x'.repeat(5)}`;
const ROLE = `o'ne"; DROP ROLE postgres;--`;
const TABLES = [`tbl '; DROP TABLE x;--`, `line\nbreak "q"`, `ünïcødé ✓`];

let env: BackupEnv;
let worker: RunningWorker;
let repoRoot: string;
let sums: Record<string, string>;

beforeAll(async () => {
  env = await startBackupEnv({ users: 5, sessionsPerUser: 1, activitiesPerSession: 1 });
  expect(Buffer.byteLength(DB)).toBe(63);
  await env.source.query('postgres', `CREATE ROLE ${ident(ROLE)} NOLOGIN`);
  await env.source.query('postgres', `CREATE DATABASE ${ident(DB)} OWNER ${ident(ROLE)}`);
  for (const [i, table] of TABLES.entries()) {
    await env.source.query(DB, `CREATE TABLE ${ident(table)} AS SELECT g AS ${ident(`col "${i}"; --`)}, repeat(E'\\'";\\n', g % 5) AS v FROM generate_series(1, 200) g`);
    await env.source.query(DB, `ALTER TABLE ${ident(table)} OWNER TO ${ident(ROLE)}`);
  }
  sums = await tableChecksums(env.source, DB);
  repoRoot = path.join(env.dir, `repos with 'single' "double" ;semi $(touch pwned) \`x\``);
  mkdirSync(repoRoot, { recursive: true });
  const config = env.config('db', (raw) => {
    raw.database = { url: `${env.source.url(DB)}` };
    raw.repositories.local.path = path.join(repoRoot, 'local ✓');
    raw.repositories.nas.path = path.join(repoRoot, "nas 'mount'");
    raw.encryption.privateKeyHome = env.keys.privateHome;
    // The fresh server has never seen the role: the restore creates it from the globals.
    raw.restore = { serverUrl: env.fresh.url('postgres'), jobs: 2 };
  });
  worker = await startWorker(config, pino({ level: 'silent' }), { bundleInProcess: true });
}, 240_000);

afterAll(async () => {
  await worker?.shutdown();
  await env?.stop();
});

const run = <T>(workflow: any, workflowId: string, input: Record<string, unknown>) =>
  env.temporal.client.workflow.execute(workflow, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue('db'), ...input }] }) as Promise<T>;

test('a database, role, tables and repository folders with hostile names: backed up, restored identical onto a fresh server, verified', async () => {
  const backup = await run<DatabaseBackupResult>(backupDatabase, 'hostile-names-backup', {});
  expect(backup.objects.length).toBe(2);
  const restored = await run<RestoreDatabaseResult>(restoreDatabase, 'hostile-names-restore', { backup: backup.backupId, into: 'hostile_restored' });
  expect(restored.restored.createdRoles).toContain(ROLE);
  expect(await tableChecksums(env.fresh, 'hostile_restored')).toEqual(sums);
  const owner = await env.fresh.query<{ owner: string }>('hostile_restored', `SELECT tableowner AS owner FROM pg_tables WHERE tablename = $1`, [TABLES[0]]);
  expect(owner.rows[0].owner).toBe(ROLE);
  const report = await run<VerificationReport>(verifyBackup, 'hostile-names-verify', { backup: 'latest', amcheck: true });
  expect(report.ok).toBe(true);
  // Nothing outside the intended places: the shell-looking folder name ran nothing, the
  // statements in the names dropped nothing.
  expect(existsSync(path.join(env.dir, 'pwned'))).toBe(false);
  expect(existsSync('pwned')).toBe(false);
  for (const cluster of [env.source, env.fresh]) {
    const dbs = await cluster.query<{ datname: string }>('postgres', 'SELECT datname FROM pg_database');
    expect(dbs.rows.map((r) => r.datname)).toContain('postgres');
    const roles = await cluster.query('postgres', "SELECT 1 FROM pg_roles WHERE rolname = 'postgres'");
    expect(roles.rows.length).toBe(1);
  }
  expect(readdirSync(repoRoot).sort()).toEqual(["local ✓", "nas 'mount'"]);
}, 300_000);

test('a seed dump file whose name holds a quote and a newline restores from that exact file', async () => {
  const file = path.join(env.dir, `seed 'dump'\n"2026" ;$(touch pwned).dump`);
  await execa(path.join(env.source.binDir, 'pg_dump'), ['--format=custom', `--file=${file}`, `--dbname=${DB}`], { env: env.source.env(DB) });
  const restored = await run<RestoreDatabaseResult>(restoreDatabase, 'hostile-names-file', { backup: file, into: 'hostile_from_file', allowUnsigned: true });
  expect(restored.source).toMatchObject({ kind: 'file', path: file });
  expect(await tableChecksums(env.fresh, 'hostile_from_file')).toEqual(sums);
  expect(existsSync(path.join(env.dir, 'pwned'))).toBe(false);
}, 300_000);

test('a refused file name with a newline is shown escaped: it cannot forge a line of the log', async () => {
  const file = path.join(env.dir, `forged\n{"level":"info","msg":"restore verified"}.txt`);
  const failure = await run(restoreDatabase, 'hostile-names-forged', { backup: file, into: 'hostile_forged', allowUnsigned: true }).then(
    () => undefined,
    (err: any) => err.cause,
  );
  expect(failure).toMatchObject({ type: 'InvalidInput' });
  expect(failure.message).not.toContain('\n');
  expect(failure.message).toContain(JSON.stringify(file));
}, 120_000);
