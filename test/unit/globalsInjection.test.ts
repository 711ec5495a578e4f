// Found by the unit tests of issue 10 (a security defect, now fixed): parseGlobals read
// pg_dumpall -g output line by line, so the continuation of a quoted value was taken for a
// statement. An ordinary role (no CREATEROLE) may set its own session defaults; a quoted
// search_path or temp_tablespaces value holding a newline is written by pg_dumpall across
// lines, and the second line, "ALTER ROLE app WITH SUPERUSER --"';" or "GRANT
// pg_execute_server_program TO app --"';", matched a role statement. createMissingRoles ran it
// when the backup was restored on a server that lacked the role (a new host, a drill host):
// app became a superuser there. Seen on PostgreSQL 15: ALTER ROLE app SET search_path =
// E'"x\nGRANT ..."' run AS app, then pg_dumpall -g, then parseGlobals + createMissingRoles on
// a fresh cluster gave app rolsuper and pg_execute_server_program. A role name with a newline
// (made by a CREATEROLE holder) did the same. The output below is pg_dumpall 15's, verbatim.
// The globals are now read statement by statement (splitStatements).
import { parseGlobals, splitStatements } from '../../engine/roles.js';

const DUMP = `CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE "z
ALTER ROLE app WITH SUPERUSER --";
ALTER ROLE "z
ALTER ROLE app WITH SUPERUSER --" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
ALTER ROLE app SET search_path TO '"x
GRANT pg_execute_server_program TO app --"';
ALTER ROLE app SET temp_tablespaces TO '"y
ALTER ROLE app WITH SUPERUSER --"';
`;

test('the continuation of a quoted value is never taken for a role statement', () => {
  const plan = parseGlobals(DUMP);
  const app = plan.roles.find((r) => r.role === 'app');
  expect(app?.statements).toEqual(['CREATE ROLE app;', 'ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;']);
  expect(plan.memberships).toEqual([]);
});

test('statements end only at a semicolon outside quotes and comments', () => {
  const sql = [
    "-- a comment with a quote ' and a semicolon ;",
    "SET standard_conforming_strings = on;",
    "ALTER ROLE a SET x TO 'it''s; fine';",
    "ALTER ROLE \"we\"\"ird;\" SET y TO E'back\\'slash; still\nin';",
    '/* block; \' */ SELECT $tag$ dollar; \' $tag$;',
    'GRANT b TO c;',
  ].join('\n');
  expect(splitStatements(sql)).toEqual([
    'SET standard_conforming_strings = on;',
    "ALTER ROLE a SET x TO 'it''s; fine';",
    "ALTER ROLE \"we\"\"ird;\" SET y TO E'back\\'slash; still\nin';",
    "SELECT $tag$ dollar; ' $tag$;",
    'GRANT b TO c;',
  ]);
});
