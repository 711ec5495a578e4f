// `restore database <path>` takes a path on the restoring host: hostile input. Real files,
// links, a FIFO, and real pg_dump output from a throw-away cluster.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { EngineError } from '../engine/errors.js';
import { resolveFile, restrictedScript } from '../engine/restoreSource.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';

let dir: string;
let cluster: PgCluster;
const SECRET = 'password=Hunter2-Very-Secret';

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-files-'));
  cluster = await startCluster();
  await cluster.createDatabase('app');
  await cluster.query('app', "CREATE TABLE t (a text); INSERT INTO t VALUES ('x')");
  const dump = (format: string) => execFileSync(path.join(cluster.binDir, 'pg_dump'), [`--format=${format}`, 'app'], { env: { ...process.env, ...cluster.env('app') } });
  writeFileSync(path.join(dir, 'real.sql'), dump('plain'));
  writeFileSync(path.join(dir, 'real.sql.gz'), gzipSync(dump('plain')));
  writeFileSync(path.join(dir, 'real.backup'), dump('custom'));
  writeFileSync(path.join(dir, 'cluster.sql'), execFileSync(path.join(cluster.binDir, 'pg_dumpall'), [], { env: { ...process.env, ...cluster.env('postgres') } }));
});

afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function refusal(file: string): Promise<EngineError> {
  const err = await resolveFile(file).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EngineError);
  const failure = err as EngineError;
  expect(failure.type).toBe('InvalidInput');
  expect(failure.nonRetryable).toBe(true);
  expect(failure.message).toContain(file);
  return failure;
}

test('real pg_dump output is accepted in every format', async () => {
  await expect(resolveFile(path.join(dir, 'real.sql'))).resolves.toMatchObject({ kind: 'file', format: 'sql' });
  await expect(resolveFile(path.join(dir, 'real.sql.gz'))).resolves.toMatchObject({ kind: 'file', format: 'sql.gz' });
  await expect(resolveFile(path.join(dir, 'real.backup'))).resolves.toMatchObject({ kind: 'file', format: 'custom' });
});

test('a symbolic link is refused, as the file and as any folder on the way', async () => {
  symlinkSync(path.join(dir, 'real.sql'), path.join(dir, 'link.sql'));
  expect((await refusal(path.join(dir, 'link.sql'))).message).toContain('symbolic link');
  mkdirSync(path.join(dir, 'inner'));
  writeFileSync(path.join(dir, 'inner', 'dump.sql'), '--\n-- PostgreSQL database dump\n--\n');
  symlinkSync(path.join(dir, 'inner'), path.join(dir, 'linked-folder'));
  expect((await refusal(path.join(dir, 'linked-folder', 'dump.sql'))).message).toContain(`symbolic link ${path.join(dir, 'linked-folder')}`);
});

test('a path with .. is refused: the path checked is the path read', async () => {
  mkdirSync(path.join(dir, 'up'));
  expect((await refusal(path.join(dir, 'up') + '/../real.sql')).message).toContain('normalized');
});

test('a FIFO or a folder is not a regular file, and a FIFO never hangs the check', async () => {
  execFileSync('mkfifo', [path.join(dir, 'pipe.sql')]);
  expect((await refusal(path.join(dir, 'pipe.sql'))).message).toContain('not a regular file');
  mkdirSync(path.join(dir, 'folder.backup'));
  expect((await refusal(path.join(dir, 'folder.backup'))).message).toContain('not a regular file');
});

test('any file that is not pg_dump output is refused, and its content is never quoted', async () => {
  writeFileSync(path.join(dir, 'secrets.sql'), `${SECRET}\nDROP DATABASE thesis_grey_db;\n`);
  writeFileSync(path.join(dir, 'secrets.sql.gz'), gzipSync(`${SECRET}\n`));
  writeFileSync(path.join(dir, 'secrets.backup'), `${SECRET}\n`);
  for (const name of ['secrets.sql', 'secrets.sql.gz', 'secrets.backup']) {
    const failure = await refusal(path.join(dir, name));
    expect(failure.message).not.toContain('Hunter2');
  }
});

test('a cluster dump (pg_dumpall) is refused: it would create roles and databases beyond the new one', async () => {
  expect((await refusal(path.join(dir, 'cluster.sql'))).message).toContain('pg_dump plain output');
});

describe('the script psql reads', () => {
  async function through(chunks: string[]): Promise<string> {
    let out = '';
    for await (const chunk of restrictedScript(Readable.from(chunks.map((c) => Buffer.from(c, 'latin1'))))) out += (chunk as Buffer).toString('latin1');
    return out;
  }

  test("starts restricted with a key of its own; the file's \\restrict lines are blanked, line numbers kept, everything else byte for byte", async () => {
    const file = '--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\nCOPY t (a) FROM stdin;\n\\\\restrict kept as data\n\\.\n\\unrestrict abc\n\\! echo no\n';
    // Split everywhere, one byte at a time included: a line may arrive in pieces.
    for (const size of [1, 3, 7, 4096]) {
      const chunks = [];
      for (let i = 0; i < file.length; i += size) chunks.push(file.slice(i, i + size));
      const out = await through(chunks);
      const [first, ...rest] = out.split('\n');
      expect(first).toMatch(/^\\restrict [0-9a-f]{48}$/);
      expect(rest.join('\n')).toBe(file.replace('\\restrict abc', '').replace('\\unrestrict abc', ''));
    }
  });

  test('a very long line streams through unchanged', async () => {
    const long = 'x'.repeat(3 * 1024 * 1024);
    const out = await through(['INSERT ', long.slice(0, 1_000_000), long.slice(1_000_000), '\n\\restrict k\n']);
    expect(out.split('\n').slice(1)).toEqual([`INSERT ${long}`, '', '']);
  });
});
