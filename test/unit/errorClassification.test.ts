// How engine/errors.ts classifies what goes wrong: each rule for database and tool messages,
// the order they are tried in, what an unknown message becomes, the message an operator reads
// (context first, a few lines, secrets hidden), and the filesystem error codes that no retry
// can change. (test/unit/databaseErrors.test.ts holds the lost-connection messages the chaos
// suite found.)
import { EngineError, classifyDatabaseError, classifyFilesystemError, errorText, isEngineError, permanent } from '../../engine/errors.js';
import { ErrorType } from '../../common/types.js';

const classified = (message: string) => {
  const e = classifyDatabaseError(new Error(message), 'dumping app');
  return { type: e.type, retryable: e.retryable };
};

describe('database and tool messages', () => {
  test.each([
    // UnknownDatabase
    ['pg_dump: error: connection to server at "db" (10.0.0.5), port 5432 failed: FATAL:  database "thesis_grey_db" does not exist', ErrorType.UnknownDatabase],
    // AuthenticationFailed: each wording libpq uses
    ['FATAL:  password authentication failed for user "thesis_grey_user"', ErrorType.AuthenticationFailed],
    ['fe_sendauth: no password supplied', ErrorType.AuthenticationFailed],
    ['FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "backup", database "app", no encryption', ErrorType.AuthenticationFailed],
    ['FATAL:  role "backup" does not exist', ErrorType.AuthenticationFailed],
    // PermissionDenied
    ['pg_dump: error: query failed: ERROR:  permission denied for table auth_user', ErrorType.PermissionDenied],
    ['ERROR:  must be superuser to create a base backup', ErrorType.PermissionDenied],
    ['pg_restore: error: could not execute query: ERROR:  must be owner of table auth_user', ErrorType.PermissionDenied],
    // DiskFull
    ['ENOSPC: no space left on device, write', ErrorType.DiskFull],
    ['pg_basebackup: error: could not write to file "base.tar": No space left on device', ErrorType.DiskFull],
  ])('%s: %s, permanent', (message, type) => {
    expect(classified(message)).toEqual({ type, retryable: false });
  });

  test.each([
    'connect ECONNREFUSED 127.0.0.1:5432',
    'connection to server at "127.0.0.1", port 5432 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?',
    'psql: error: could not connect to server: No such file or directory',
    'connect ETIMEDOUT 10.0.0.5:5432',
    'read ECONNRESET',
    'connect EHOSTUNREACH 10.0.0.5:5432',
    'FATAL:  the database system is starting up',
    'FATAL:  the database system is shutting down',
    'pg_dump: error: connection to server at "db" failed: timeout expired',
  ])('%s: DatabaseUnreachable, retried', (message) => {
    expect(classified(message)).toEqual({ type: ErrorType.DatabaseUnreachable, retryable: true });
  });

  test('the rules match whatever the case', () => {
    expect(classified('CONNECTION REFUSED').type).toBe(ErrorType.DatabaseUnreachable);
    expect(classified('Password Authentication Failed for user "x"').type).toBe(ErrorType.AuthenticationFailed);
  });

  test('the first matching rule wins: what no retry can change comes before an unreachable server', () => {
    // A message naming two causes (a tool's stderr and its exit) is classified by the earlier rule.
    expect(classified('FATAL:  database "gone" does not exist\nConnection refused')).toEqual({ type: ErrorType.UnknownDatabase, retryable: false });
    expect(classified('FATAL:  role "backup" does not exist\nserver closed the connection unexpectedly')).toEqual({ type: ErrorType.AuthenticationFailed, retryable: false });
    expect(classified('ERROR:  permission denied for table t\ncould not write: No space left on device')).toEqual({ type: ErrorType.PermissionDenied, retryable: false });
    expect(classified('could not write: No space left on device\nserver closed the connection unexpectedly')).toEqual({ type: ErrorType.DiskFull, retryable: false });
    // "database" before "role": a missing database is named as such even beside a role.
    expect(classified('role "app" does not exist; database "app" does not exist').type).toBe(ErrorType.UnknownDatabase);
  });

  test('an unknown message is a DumpFailed that may be retried, keeping the original error as its cause', () => {
    const original = new Error('pg_dump: error: query failed: ERROR:  could not serialize access due to concurrent update');
    const e = classifyDatabaseError(original, 'dumping app');
    expect(e).toMatchObject({ type: ErrorType.DumpFailed, retryable: true, nonRetryable: false });
    expect(e.cause).toBe(original);
  });

  test('the message names the context, then the first six non-empty lines, joined', () => {
    const lines = ['line 1', '', 'line 2', 'line 3', 'line 4', 'line 5', 'line 6', 'line 7 is cut'];
    const e = classifyDatabaseError(new Error(lines.join('\n')), 'restoring into app_restore');
    expect(e.message).toBe('restoring into app_restore: line 1 | line 2 | line 3 | line 4 | line 5 | line 6');
  });

  test("a tool's stderr is read before its exit message, and is what is classified", () => {
    // The shape execa gives: the tool's words in stderr, the exit in shortMessage (preferred over message).
    const failed = Object.assign(new Error('Command failed with exit code 1: pg_dump --format=custom app\n\nlong output'), {
      shortMessage: 'Command failed with exit code 1: pg_dump --format=custom app',
      stderr: 'pg_dump: error: connection to server at "db" (10.0.0.5), port 5432 failed: FATAL:  password authentication failed for user "backup"\n',
    });
    const e = classifyDatabaseError(failed, 'dumping app');
    expect(e.type).toBe(ErrorType.AuthenticationFailed);
    expect(e.message).toBe(
      'dumping app: pg_dump: error: connection to server at "db" (10.0.0.5), port 5432 failed: FATAL:  password authentication failed for user "backup" | Command failed with exit code 1: pg_dump --format=custom app',
    );
    expect(errorText({ stderr: '   ', message: 'only the message' })).toBe('only the message');
    expect(errorText('a plain string')).toBe('a plain string');
  });

  test('secrets in the message, the stderr or a connection string never reach the classified message', () => {
    const fromUrl = classifyDatabaseError(new Error('connection to postgresql://backup:hunter2@db.internal:5432/app failed: Connection refused'), 'checking the server');
    expect(fromUrl.type).toBe(ErrorType.DatabaseUnreachable);
    expect(fromUrl.message).toBe('checking the server: connection to postgresql://backup:***@db.internal:5432/app failed: Connection refused');
    const fromStderr = classifyDatabaseError(Object.assign(new Error('Command failed'), { stderr: 'PGPASSWORD=hunter2 pg_dump: FATAL:  password authentication failed' }), 'dumping');
    expect(fromStderr.type).toBe(ErrorType.AuthenticationFailed);
    expect(fromStderr.message).not.toContain('hunter2');
    const unknown = classifyDatabaseError(new Error('odd failure, password=hunter2'), 'dumping');
    expect(unknown.type).toBe(ErrorType.DumpFailed);
    expect(unknown.message).toBe('dumping: odd failure, password=***');
    // errorText is also used on its own (a skipped copy's reason): it hides them itself.
    expect(errorText(Object.assign(new Error('Command failed'), { stderr: 'aws: error, secretAccessKey=AKIA/s3cret' }))).toBe('aws: error, secretAccessKey=***\nCommand failed');
  });

  test('an error already classified passes through unchanged, whatever its words', () => {
    const already = permanent(ErrorType.BackupNotFound, 'backup x not found: connection refused');
    expect(classifyDatabaseError(already, 'again')).toBe(already);
    // One made by another copy of the module is recognised by its name and type.
    const foreign = Object.assign(new Error('from elsewhere'), { name: 'EngineError', type: ErrorType.WalMissing, retryable: false });
    expect(isEngineError(foreign)).toBe(true);
    expect(classifyDatabaseError(foreign, 'again')).toBe(foreign);
    expect(isEngineError(Object.assign(new Error('x'), { name: 'EngineError' }))).toBe(false);
  });
});

describe('filesystem errors', () => {
  const fsError = (code: string, path?: string) => Object.assign(new Error(`${code}: something, open '${path}'`), { code, ...(path ? { path } : {}) });

  test.each([
    ['ENOSPC', ErrorType.DiskFull, 'no space left on the device'],
    ['EDQUOT', ErrorType.DiskFull, 'the disk quota is exhausted'],
    ['EROFS', ErrorType.StorageAccessDenied, 'the file system is read-only'],
    ['EACCES', ErrorType.StorageAccessDenied, 'permission denied'],
    ['EPERM', ErrorType.StorageAccessDenied, 'operation not permitted'],
    ['ENOTDIR', ErrorType.InvalidConfig, 'a part of the path is a file, not a directory'],
    ['EEXIST', ErrorType.InvalidConfig, 'something that is not a directory is in the way'],
    ['EISDIR', ErrorType.InvalidConfig, 'it is a directory, where a file belongs'],
    ['ELOOP', ErrorType.InvalidConfig, 'too many levels of symbolic links'],
    ['ENAMETOOLONG', ErrorType.InvalidConfig, 'the path is too long'],
  ])('%s is %s, permanent, naming the path and the code', (code, type, reason) => {
    const e = classifyFilesystemError(fsError(code, '/var/backups/tg/database/x/dump.pgcustom.zst.gpg'), 'repository local: writing database/x');
    expect(e).toBeInstanceOf(EngineError);
    expect({ type: e.type, retryable: e.retryable }).toEqual({ type, retryable: false });
    expect(e.message).toBe(`repository local: writing database/x: /var/backups/tg/database/x/dump.pgcustom.zst.gpg: ${reason} (${code})`);
  });

  test('without a path the message names the context and the reason', () => {
    expect(classifyFilesystemError(fsError('EROFS'), 'repository nas: checking').message).toBe('repository nas: checking: the file system is read-only (EROFS)');
  });

  test('any other error may pass with a retry: StorageUnreachable, its words kept (and redacted), the cause kept', () => {
    const eio = fsError('EIO', '/mnt/nas/x');
    const e = classifyFilesystemError(eio, 'repository nas: reading x');
    expect(e).toMatchObject({ type: ErrorType.StorageUnreachable, retryable: true });
    expect(e.message).toBe("repository nas: reading x: EIO: something, open '/mnt/nas/x'");
    expect(e.cause).toBe(eio);
    expect(classifyFilesystemError(new Error('mount of https://nas:s3cret@nas.local/share went away'), 'repository nas').message).toBe('repository nas: mount of https://nas:***@nas.local/share went away');
    expect(classifyFilesystemError(undefined, 'repository nas')).toMatchObject({ type: ErrorType.StorageUnreachable, message: 'repository nas: undefined' });
  });

  test('an error already classified passes through unchanged', () => {
    const already = permanent(ErrorType.DiskFull, 'already said');
    expect(classifyFilesystemError(already, 'again')).toBe(already);
  });
});
