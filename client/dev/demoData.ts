// The demo database of the dev stack: the shape of Thesis Grey's Django tables, with the
// things a backup tool must carry intact (uuid keys, jsonb, timestamps, bytea, a large object,
// non-ASCII text, roles that own and are granted the objects).
import type pg from 'pg';

export const DEMO_OWNER = 'thesis_grey_user';
export const DEMO_READER = 'thesis_grey_readonly';

/**
 * The demo application's specifics, configured as its operator would (the same as in
 * deploy/backupctl.example.yaml): the tables whose row counts every restore must match, and when
 * the application was last used.
 */
export const DEMO_KEY_TABLES = ['auth_user', 'review_manager_searchsession', 'review_manager_sessionactivity'];
export const DEMO_FRESHNESS = [{ name: 'newest search session', sql: 'SELECT max(created_at) FROM review_manager_searchsession' }];

export interface DemoSize {
  users: number;
  sessionsPerUser: number;
  activitiesPerSession: number;
}

/** Creates the application's roles on the cluster; harmless when they exist. */
export async function createDemoRoles(admin: pg.Client): Promise<void> {
  for (const [role, login] of [
    [DEMO_OWNER, true],
    [DEMO_READER, false],
  ] as const) {
    const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (!exists.rowCount) await admin.query(`CREATE ROLE ${role} ${login ? 'LOGIN' : 'NOLOGIN'}`);
  }
}

/** Creates the tables in the connected (empty) database and fills them. Returns the row counts. */
export async function seedDemoData(db: pg.Client, size: DemoSize): Promise<Record<string, number>> {
  await db.query(`
    CREATE TABLE auth_user (
      id serial PRIMARY KEY,
      username varchar(150) NOT NULL UNIQUE,
      email varchar(254) NOT NULL,
      first_name varchar(150) NOT NULL DEFAULT '',
      password varchar(128) NOT NULL,
      is_active boolean NOT NULL DEFAULT true,
      date_joined timestamptz NOT NULL,
      last_login timestamptz
    );
    CREATE TABLE review_manager_searchsession (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      title varchar(255) NOT NULL,
      description text NOT NULL,
      status varchar(32) NOT NULL,
      created_by_id integer NOT NULL REFERENCES auth_user(id),
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      search_config jsonb NOT NULL DEFAULT '{}'
    );
    CREATE INDEX ON review_manager_searchsession (created_by_id, created_at);
    CREATE TABLE review_manager_sessionactivity (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      session_id uuid NOT NULL REFERENCES review_manager_searchsession(id) ON DELETE CASCADE,
      action varchar(64) NOT NULL,
      description text NOT NULL,
      "timestamp" timestamptz NOT NULL,
      details jsonb
    );
    CREATE INDEX ON review_manager_sessionactivity (session_id, "timestamp");
    CREATE TABLE review_manager_attachment (
      id serial PRIMARY KEY,
      session_id uuid NOT NULL REFERENCES review_manager_searchsession(id) ON DELETE CASCADE,
      filename text NOT NULL,
      content bytea NOT NULL,
      document oid
    );
  `);
  await db.query(
    `INSERT INTO auth_user (username, email, first_name, password, date_joined, last_login)
     SELECT 'user' || g, 'user' || g || '@example.org',
            (ARRAY['Zoë', 'Ångström', '論文', 'Łukasz', 'Émile 🎓'])[1 + g % 5],
            'pbkdf2_sha256$600000$' || md5(g::text),
            timestamptz '2024-01-01' + g * interval '37 minutes',
            CASE WHEN g % 3 = 0 THEN NULL ELSE timestamptz '2025-06-01' + g * interval '5 minutes' END
     FROM generate_series(1, $1) g`,
    [size.users],
  );
  await db.query(
    `INSERT INTO review_manager_searchsession (title, description, status, created_by_id, created_at, updated_at, search_config)
     SELECT 'Grey literature review ' || u.id || '.' || s,
            repeat('Systematic search of théses, rapports et 灰色文献; ', 1 + s % 4),
            (ARRAY['draft', 'defining_search', 'executing', 'completed'])[1 + s % 4],
            u.id,
            u.date_joined + s * interval '1 day',
            u.date_joined + s * interval '1 day' + interval '2 hours',
            jsonb_build_object('sources', jsonb_build_array('google', 'base'), 'max_results', 100 * s, 'note', 'naïve façade')
     FROM auth_user u, generate_series(1, $1) s`,
    [size.sessionsPerUser],
  );
  await db.query(
    `INSERT INTO review_manager_sessionactivity (session_id, action, description, "timestamp", details)
     SELECT ss.id, (ARRAY['created', 'search_run', 'result_reviewed', 'exported'])[1 + a % 4],
            'Activity ' || a || ' — résumé',
            ss.created_at + a * interval '3 minutes',
            jsonb_build_object('step', a, 'ok', a % 7 <> 0)
     FROM review_manager_searchsession ss, generate_series(1, $1) a`,
    [size.activitiesPerSession],
  );
  await db.query(
    `INSERT INTO review_manager_attachment (session_id, filename, content)
     SELECT id, 'notes-' || row_number() OVER () || '.bin', decode(md5(id::text) || md5(title), 'hex')
     FROM review_manager_searchsession LIMIT 50`,
  );
  // One large object, referenced by the first attachment: pg_dump carries these separately.
  await db.query(
    `UPDATE review_manager_attachment SET document = lo_from_bytea(0, convert_to(repeat('Large object: Zoë 論文 🎓 ', 2000), 'UTF8'))
     WHERE id = (SELECT min(id) FROM review_manager_attachment)`,
  );
  await db.query(`DO $$ DECLARE lo oid; BEGIN
      FOR lo IN SELECT oid FROM pg_largeobject_metadata LOOP EXECUTE format('ALTER LARGE OBJECT %s OWNER TO ${DEMO_OWNER}', lo); END LOOP;
    END $$`);
  await db.query(`
    ALTER TABLE auth_user OWNER TO ${DEMO_OWNER};
    ALTER TABLE review_manager_searchsession OWNER TO ${DEMO_OWNER};
    ALTER TABLE review_manager_sessionactivity OWNER TO ${DEMO_OWNER};
    ALTER TABLE review_manager_attachment OWNER TO ${DEMO_OWNER};
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${DEMO_READER};
    ANALYZE;
  `);
  const counts: Record<string, number> = {};
  for (const table of ['auth_user', 'review_manager_searchsession', 'review_manager_sessionactivity', 'review_manager_attachment']) {
    counts[table] = Number((await db.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
  }
  return counts;
}
