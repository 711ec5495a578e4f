// The application's specifics left the tool's defaults (issue 10): with no key tables
// configured, every table is counted in the dump's snapshot, under names PostgreSQL itself
// quotes, and a restore's inspection counts the same names back. The freshness check is a
// configured query, read-only, whose answer (a timestamp) or failure is reported, never data.
import pg from 'pg';
import { inspectDatabase } from '../engine/inspection.js';
import { listTables, openSnapshot, parseDatabaseUrl } from '../engine/postgres.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';

let cluster: PgCluster;

beforeAll(async () => {
  cluster = await startCluster();
  await cluster.createDatabase('app');
  await cluster.query(
    'app',
    `CREATE TABLE auth_user (id int);
     INSERT INTO auth_user SELECT generate_series(1, 7);
     CREATE SCHEMA audit;
     CREATE TABLE audit."Log" (at timestamptz);
     INSERT INTO audit."Log" VALUES ('2026-11-01T10:00:00Z'), ('2026-11-02T11:30:00Z');
     CREATE SCHEMA "we.ird";
     CREATE TABLE "we.ird"."ta.ble ""q""" (x int);
     INSERT INTO "we.ird"."ta.ble ""q""" VALUES (1), (2), (3);
     CREATE TABLE events (id int, at date) PARTITION BY RANGE (at);
     CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
     CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
     INSERT INTO events VALUES (1, '2025-05-01'), (2, '2026-05-01'), (3, '2026-06-01');
     CREATE VIEW user_view AS SELECT * FROM auth_user;`,
  );
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

test("`all` counts every table in the dump's snapshot, partitions in their parent, views not at all", async () => {
  const snapshot = await openSnapshot(parseDatabaseUrl(cluster.url('app')), 'all');
  try {
    expect(snapshot.rowCounts).toEqual({ auth_user: 7, 'audit."Log"': 2, events: 3, '"we.ird"."ta.ble ""q"""': 3 });
    expect(snapshot.missingTables).toEqual([]);
  } finally {
    await snapshot.close();
  }
});

test('a configured list counts only those; [] counts none', async () => {
  const listed = await openSnapshot(parseDatabaseUrl(cluster.url('app')), ['auth_user', 'audit.missing']);
  await listed.close();
  expect(listed.rowCounts).toEqual({ auth_user: 7 });
  expect(listed.missingTables).toEqual(['audit.missing']);
  const none = await openSnapshot(parseDatabaseUrl(cluster.url('app')), []);
  await none.close();
  expect(none.rowCounts).toEqual({});
});

test('the inspection counts the same names back, and reports the freshness queries by name', async () => {
  const client = new pg.Client({ connectionString: cluster.url('app') });
  await client.connect();
  try {
    const tables = await listTables(client);
    expect(tables).toEqual(['"we.ird"."ta.ble ""q"""', 'audit."Log"', 'auth_user', 'events']);
    const inspection = await inspectDatabase(client, parseDatabaseUrl(cluster.url('app')), {
      expectedRowCounts: { auth_user: 7, 'audit."Log"': 2, events: 3, '"we.ird"."ta.ble ""q"""': 4 },
      checks: [],
      freshness: [
        { name: 'newest audit entry', sql: 'SELECT max(at) FROM audit."Log"' },
        { name: 'no rows', sql: 'SELECT max(at) FROM audit."Log" WHERE false' },
        { name: 'not a time', sql: "SELECT 'secret value'" },
        { name: 'broken', sql: 'SELECT max(at) FROM nowhere' },
        { name: 'writes', sql: 'DELETE FROM auth_user RETURNING now()' },
      ],
    });
    expect(inspection.countMismatches).toEqual(['"we.ird"."ta.ble ""q""": expected 4 rows, found 3']);
    expect(inspection.freshness).toEqual({ 'newest audit entry': '2026-11-02T11:30:00.000Z', 'no rows': null, 'not a time': null, broken: null, writes: null });
    expect(inspection.freshnessErrors).toEqual({
      'not a time': 'expected one row with a timestamp, got a string',
      broken: expect.stringMatching(/relation "nowhere" does not exist/),
      writes: expect.stringMatching(/read-only transaction/),
    });
    // Reports hold no data: the value a query returned is never in them.
    expect(JSON.stringify(inspection)).not.toContain('secret value');
    expect(Number((await client.query('SELECT count(*) AS n FROM auth_user')).rows[0].n)).toBe(7);
  } finally {
    await client.end();
  }
});
