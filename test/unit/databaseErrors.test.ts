// Which database errors are worth a retry. Found by the chaos suite (restore --replace +
// pg-restart-immediate): pg_restore's "server closed the connection unexpectedly" during
// PostgreSQL's immediate restart failed the restore for good (RestoreFailed) instead of being
// retried once the server was back. The messages are those libpq, pg_restore, psql and
// node-postgres print.
import { classifyDatabaseError } from '../../engine/errors.js';

const lost = [
  'pg_restore: error: connection to server at "127.0.0.1", port 41273 failed: server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.',
  'pg_restore: error: could not execute query: FATAL:  terminating connection due to administrator command',
  'psql:/tmp/x.sql:12: FATAL:  terminating connection due to unexpected postmaster exit',
  'WARNING:  terminating connection due to crash of another server process',
  'pg_restore: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  the database system is in recovery mode',
  'pg_dump: error: query failed: no connection to the server',
  'could not receive data from server: Connection reset by peer',
  'SSL SYSCALL error: EOF detected',
  'Connection terminated unexpectedly',
  // node-postgres, on a query after the server ended the idle session (restore --replace's swap).
  'Client has encountered a connection error and is not queryable',
];

test.each(lost)('a lost connection is retried: %s', (message) => {
  const failure = classifyDatabaseError(new Error(message), 'restoring into app_restore');
  expect({ type: failure.type, nonRetryable: failure.nonRetryable }).toEqual({ type: 'DatabaseUnreachable', nonRetryable: false });
});

test.each([
  ['pg_restore: error: could not execute query: ERROR:  relation "users" already exists', 'DumpFailed'],
  ['FATAL:  password authentication failed for user "backup"', 'AuthenticationFailed'],
  ['FATAL:  database "nope" does not exist', 'UnknownDatabase'],
])('what a retry cannot change is not taken for a lost connection: %s', (message, type) => {
  expect(classifyDatabaseError(new Error(message), 'restoring').type).toBe(type);
});
