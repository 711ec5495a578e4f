// Reading a backup's globals (pg_dumpall --globals-only) into the roles a restore creates on a
// server that lacks them (engine/roles.ts): which lines are role statements, how role names
// are folded and unquoted, and what a membership keeps.
import { parseGlobals } from '../../engine/roles.js';

// What pg_dumpall 15 and 16 write, abridged: settings, comments and blank lines around the
// role statements; 16 adds WITH INHERIT / SET options and quotes the grantor.
const PG15 = `--
-- PostgreSQL database cluster dump
--

SET default_transaction_read_only = off;

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

--
-- Roles
--

CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;
CREATE ROLE thesis_grey_user;
ALTER ROLE thesis_grey_user WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2VydmVy';
CREATE ROLE readers;
ALTER ROLE readers WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;

--
-- Role memberships
--

GRANT readers TO thesis_grey_user GRANTED BY postgres;

--
-- PostgreSQL database cluster dump complete
--
`;

const PG16 = `CREATE ROLE "Reporting";
ALTER ROLE "Reporting" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
GRANT "Reporting" TO app WITH INHERIT TRUE GRANTED BY postgres;
GRANT pg_read_all_data TO app WITH ADMIN OPTION, INHERIT FALSE, SET FALSE GRANTED BY postgres;
`;

test('pg_dumpall 15: each role with its CREATE and ALTER statements, in order; the membership without its grantor', () => {
  expect(parseGlobals(PG15)).toEqual({
    roles: [
      { role: 'postgres', statements: ['CREATE ROLE postgres;', 'ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;'] },
      {
        role: 'thesis_grey_user',
        statements: [
          'CREATE ROLE thesis_grey_user;',
          "ALTER ROLE thesis_grey_user WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2VydmVy';",
        ],
      },
      { role: 'readers', statements: ['CREATE ROLE readers;', 'ALTER ROLE readers WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;'] },
    ],
    memberships: [{ role: 'readers', member: 'thesis_grey_user', statement: 'GRANT readers TO thesis_grey_user;' }],
  });
});

test("pg_dumpall 16: quoted names, membership options kept, the grantor (who may not exist here) dropped", () => {
  const plan = parseGlobals(PG16);
  expect(plan.roles.map((r) => [r.role, r.statements.length])).toEqual([
    ['Reporting', 2],
    ['app', 2],
  ]);
  expect(plan.memberships).toEqual([
    { role: 'Reporting', member: 'app', statement: 'GRANT "Reporting" TO app WITH INHERIT TRUE;' },
    { role: 'pg_read_all_data', member: 'app', statement: 'GRANT pg_read_all_data TO app WITH ADMIN OPTION, INHERIT FALSE, SET FALSE;' },
  ]);
});

test('names fold as PostgreSQL folds them: unquoted to lower case, quoted kept, doubled quotes undone', () => {
  const plan = parseGlobals(
    [
      'CREATE ROLE Admin;',
      'ALTER ROLE ADMIN WITH LOGIN;',
      'CREATE ROLE "Admin";',
      'ALTER ROLE "Admin" WITH NOLOGIN;',
      'CREATE ROLE "say ""cheese""";',
      'ALTER ROLE "say ""cheese""" WITH LOGIN;',
      'CREATE ROLE "semi;colon";',
      'GRANT "say ""cheese""" TO Admin;',
    ].join('\n'),
  );
  expect(plan.roles).toEqual([
    { role: 'admin', statements: ['CREATE ROLE Admin;', 'ALTER ROLE ADMIN WITH LOGIN;'] },
    { role: 'Admin', statements: ['CREATE ROLE "Admin";', 'ALTER ROLE "Admin" WITH NOLOGIN;'] },
    { role: 'say "cheese"', statements: ['CREATE ROLE "say ""cheese""";', 'ALTER ROLE "say ""cheese""" WITH LOGIN;'] },
    { role: 'semi;colon', statements: ['CREATE ROLE "semi;colon";'] },
  ]);
  expect(plan.memberships).toEqual([{ role: 'say "cheese"', member: 'admin', statement: 'GRANT "say ""cheese""" TO Admin;' }]);
});

test('an ALTER ROLE of a role the file does not create is not taken: only created roles get attributes', () => {
  const plan = parseGlobals('ALTER ROLE elsewhere WITH SUPERUSER;\nCREATE ROLE app;\nALTER ROLE app WITH LOGIN;\n');
  expect(plan.roles).toEqual([{ role: 'app', statements: ['CREATE ROLE app;', 'ALTER ROLE app WITH LOGIN;'] }]);
});

test('object privileges, comments, settings and other statements are not role statements', () => {
  const plan = parseGlobals(
    [
      'GRANT SELECT ON TABLE auth_user TO app;',
      'GRANT ALL ON SCHEMA public TO app;',
      'GRANT CONNECT ON DATABASE app TO readers;',
      "COMMENT ON ROLE app IS 'the application';",
      'CREATE TABLESPACE fast OWNER postgres LOCATION \'/ssd\';',
      '-- CREATE ROLE commented_out;',
      'CREATE ROLE app',
      'CREATE ROLE app; DROP TABLE auth_user;',
      'CREATE ROLE two words;',
    ].join('\n'),
  );
  expect(plan).toEqual({ roles: [], memberships: [] });
});

test('empty globals: nothing to create', () => {
  expect(parseGlobals('')).toEqual({ roles: [], memberships: [] });
});

test("a role's own settings (pg_dumpall's \"User Config\" section) go with it: a restore onto a server without the role keeps its search_path", () => {
  const plan = parseGlobals(`CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;

--
-- User Config "app"
--

ALTER ROLE app SET search_path TO 'app', 'public';
ALTER ROLE app SET work_mem TO '64MB';
ALTER ROLE ghost SET work_mem TO '1MB';
`);
  expect(plan.roles).toEqual([
    {
      role: 'app',
      statements: [
        'CREATE ROLE app;',
        'ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;',
        "ALTER ROLE app SET search_path TO 'app', 'public';",
        "ALTER ROLE app SET work_mem TO '64MB';",
      ],
    },
  ]);
});
