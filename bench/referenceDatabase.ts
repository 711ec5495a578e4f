// The reference data: one throw-away PostgreSQL cluster holding
//   bench_text          pgbench at --scale plus the Django-shaped tables (compressible, about 1 GB at scale 70)
//   bench_random        random bytea (scale x 4 MiB) plus the Django-shaped tables (poorly compressible)
//   bench_text_quarter  bench_text at a quarter of the scale, for the memory-growth check
import path from 'node:path';
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import pg from 'pg';
import { createDemoRoles, seedDemoData, type DemoSize } from '../client/dev/demoData.js';
import { startCluster, type PgCluster } from '../test/fixtures/postgres.js';
import type { BenchOptions, Mix } from './options.js';

export interface BenchDatabase {
  name: string;
  mix: Mix;
  /** 'main' databases are benchmarked against every contender; 'growth' only with the workflow. */
  role: 'main' | 'growth';
  scale: number;
  description: string;
  /** pg_database_size once built and vacuumed. */
  bytes: number;
  /** Largest tables, for the report. */
  tables: Array<{ name: string; bytes: number; rows: number }>;
  buildSeconds: number;
}

export interface ReferenceData {
  cluster: PgCluster;
  databases: BenchDatabase[];
}

/** Django-shaped tables proportional to the scale: about 1 MB per pgbench scale unit. */
export function djangoSize(scale: number): DemoSize {
  return { users: Math.max(200, Math.round(scale * 150)), sessionsPerUser: 5, activitiesPerSession: 6 };
}

/** Random bytea: 8 KiB rows, 512 of them (4 MiB) per scale unit. */
const BLOB_ROW_BYTES = 8192;
const BLOB_ROWS_PER_SCALE = 512;

export async function startReferenceCluster(): Promise<PgCluster> {
  return startCluster({
    // Loading is write-heavy; fewer checkpoints make it faster. Nothing here affects reading.
    extraConf: ['max_wal_size = 8GB', 'checkpoint_timeout = 30min', 'maintenance_work_mem = 256MB'],
  });
}

export async function buildReferenceData(cluster: PgCluster, options: BenchOptions, say: (line: string) => void): Promise<BenchDatabase[]> {
  const admin = new pg.Client({ connectionString: cluster.url('postgres') });
  await admin.connect();
  try {
    await createDemoRoles(admin);
  } finally {
    await admin.end();
  }
  const quarter = Math.max(1, Math.round(options.scale / 4));
  const plans: Array<() => Promise<BenchDatabase>> = [];
  if (options.mixes.includes('text')) plans.push(() => buildText(cluster, 'bench_text', options.scale, 'main'));
  if (options.mixes.includes('random')) plans.push(() => buildRandom(cluster, 'bench_random', options.scale));
  if (options.growth) plans.push(() => buildText(cluster, 'bench_text_quarter', quarter, 'growth'));
  const databases: BenchDatabase[] = [];
  for (const plan of plans) {
    const db = await plan();
    say(`built ${db.name} in ${db.buildSeconds.toFixed(0)} s: ${(db.bytes / 1e6).toFixed(0)} MB (${db.description})`);
    databases.push(db);
  }
  // One CHECKPOINT so no contender pays for flushing what loading left dirty.
  await cluster.query('postgres', 'CHECKPOINT');
  return databases;
}

export async function buildText(cluster: PgCluster, name: string, scale: number, role: 'main' | 'growth'): Promise<BenchDatabase> {
  const t0 = performance.now();
  await cluster.createDatabase(name);
  // Server-side generation (G): no client round trips; then vacuum and primary keys.
  await execa(pgbench(cluster), ['-i', '-q', '-s', String(scale), '--init-steps=dtGvp', name], { env: cluster.env(name) });
  const size = djangoSize(scale);
  await withDatabase(cluster, name, (db) => seedDemoData(db, size));
  return describe(cluster, name, 'text', role, scale, `pgbench scale ${scale} + Django tables (${size.users} users)`, t0);
}

async function buildRandom(cluster: PgCluster, name: string, scale: number): Promise<BenchDatabase> {
  const t0 = performance.now();
  await cluster.createDatabase(name);
  const size = djangoSize(scale);
  const rows = scale * BLOB_ROWS_PER_SCALE;
  await withDatabase(cluster, name, async (db) => {
    await db.query('CREATE EXTENSION pgcrypto');
    // EXTERNAL: stored out of line without trying to compress bytes that do not compress.
    await db.query(`CREATE TABLE media_blob (id bigint PRIMARY KEY, uploaded_at timestamptz NOT NULL, sha1 text NOT NULL, payload bytea NOT NULL);
                    ALTER TABLE media_blob ALTER COLUMN payload SET STORAGE EXTERNAL`);
    const chunks = Array.from({ length: BLOB_ROW_BYTES / 1024 }, () => 'gen_random_bytes(1024)').join(' || ');
    // In batches, so one statement never holds the whole table's WAL.
    const batch = 4096;
    for (let from = 1; from <= rows; from += batch) {
      await db.query(
        `INSERT INTO media_blob (id, uploaded_at, sha1, payload)
         SELECT g, timestamptz '2026-01-01' + g * interval '1 minute', '', ${chunks}
         FROM generate_series($1::bigint, $2::bigint) g`,
        [from, Math.min(rows, from + batch - 1)],
      );
    }
    await db.query(`UPDATE media_blob SET sha1 = encode(digest(payload, 'sha1'), 'hex')`);
    await seedDemoData(db, size);
    await db.query('VACUUM ANALYZE media_blob');
  });
  return describe(cluster, name, 'random', 'main', scale, `${rows} rows of ${BLOB_ROW_BYTES / 1024} KiB random bytea + Django tables (${size.users} users)`, t0);
}

async function describe(cluster: PgCluster, name: string, mix: Mix, role: 'main' | 'growth', scale: number, description: string, t0: number): Promise<BenchDatabase> {
  const size = await cluster.query<{ bytes: string }>(name, 'SELECT pg_database_size(current_database())::text AS bytes');
  const tables = await cluster.query<{ name: string; bytes: string; rows: string }>(
    name,
    `SELECT c.relname AS name, pg_total_relation_size(c.oid)::text AS bytes, c.reltuples::bigint::text AS rows
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 4`,
  );
  return {
    name,
    mix,
    role,
    scale,
    description,
    bytes: Number(size.rows[0].bytes),
    tables: tables.rows.map((t) => ({ name: t.name, bytes: Number(t.bytes), rows: Number(t.rows) })),
    buildSeconds: (performance.now() - t0) / 1000,
  };
}

async function withDatabase<T>(cluster: PgCluster, name: string, body: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = new pg.Client({ connectionString: cluster.url(name) });
  await db.connect();
  try {
    return await body(db);
  } finally {
    await db.end();
  }
}

function pgbench(cluster: PgCluster): string {
  const own = path.join(cluster.binDir, 'pgbench');
  return existsSync(own) ? own : '/usr/bin/pgbench';
}
