// Hostile and careless input, tried the way an operator (or an attacker) would: secrets never
// reach an error message, the redactor hides secrets and nothing else, a repository that can
// never work fails at once and says why, the configuration refuses what cannot work, and a
// public key file holds exactly one public key.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { EngineError } from '../engine/errors.js';
import { ConfigError, loadConfig, validateConfig } from '../common/config.js';
import { redact } from '../common/redact.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import { loadRecipient, stopAgent } from '../engine/encryption.js';
import { runCommand } from '../engine/exec.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { execa } from 'execa';
import YAML from 'yaml';
import { backupDatabaseInput } from '../client/commands/backupDatabase.js';
import { backupBaseInput } from '../client/commands/backupBase.js';
import { restoreDatabaseInput } from '../client/commands/restore.js';
import { verifyBackupInput } from '../client/commands/verify.js';
import { drillInput } from '../client/commands/drill.js';
import { pitrStartInput } from '../client/commands/pitr.js';
import { InputRefused } from '../client/workflowRun.js';
import { checkTarget } from '../workflows/recoveryTargets.js';
import { validatePointInTimeRecoveryInput, validateRecoveryDrillInput, validateRestoreDatabaseInput, validateVerifyBackupInput } from '../workflows/inputValidation.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-hostile-'));
const valid = {
  host: 'db-1',
  database: { url: 'postgres://app@localhost:5432/app_db' },
  repositories: {
    local: { type: 'filesystem', path: '/var/backups/app' },
    s3: { type: 's3', bucket: 'app-backups' },
  },
  encryption: { publicKeyFile: '/etc/backupctl/public.asc' },
};

afterAll(async () => {
  for (const home of keyHomes) await stopAgent(home);
  for (const mount of mounts) execFileSync('umount', [mount]);
  rmSync(dir, { recursive: true, force: true });
});

const keyHomes: string[] = [];
const mounts: string[] = [];

async function failureOf(promise: Promise<unknown>): Promise<EngineError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(EngineError);
    return err as EngineError;
  }
  throw new Error('expected a failure');
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('a database URL password never reaches a config error', () => {
  // Each password is written the careless way (unencoded space or @), and the URL is wrong in
  // another way (port 99999), so the error must show the URL without the password.
  test.each([
    ['a space', 'postgres://app:s3cr3t w0rd@db.internal:99999/app_db', ['s3cr3t', 'w0rd']],
    ['an unencoded @', 'postgres://app:p@ssw0rd@db.internal:99999/app_db', ['p@ss', 'ssw0rd']],
    ['an @ and a space', 'postgresql://app:hunter 2@x@db.internal:99999/app_db', ['hunter', '2@x']],
    ['a colon and a slash', 'postgres://app:pa:ss/w0rd@db.internal:99999/app_db', ['pa:ss', 'w0rd']],
  ])('with %s in the password', (_, url, fragments) => {
    const fromFile = configError(() => validateConfig({ ...valid, database: { url } }, 'test'));
    const fromEnv = configError(() => loadConfig(undefined, { DATABASE_URL: url, BACKUPCTL_CONFIG: writeConfig('env.json', valid) }));
    const nested = configError(() => validateConfig({ ...valid, database: { url, surprise: 1 } }, 'test'));
    for (const err of [fromFile, fromEnv, nested]) {
      expect(err.message).toContain('database');
      expect(err.message).toContain('db.internal');
      for (const fragment of fragments) expect(err.message).not.toContain(fragment);
    }
  });

  test('nor does a YAML syntax error quoting the line with the URL', () => {
    const file = writeConfig('broken.yaml', 'database:\n  url: postgres://app:s3cr3t w0rd@db/x\n  bad: [unclosed\n');
    const err = configError(() => loadConfig(file, {}));
    expect(err.message).toMatch(/not valid YAML/);
    expect(err.message).not.toContain('s3cr3t');
    expect(err.message).not.toContain('w0rd');
  });
});

describe('the redactor hides secrets and nothing else', () => {
  test.each([
    ['unknown format'],
    ['token: unknown format'],
    ['tokenizer: unknown format'],
    ['error: password: unknown format'],
    ['Password: unknown format'],
    ['tokens: 3 unknown format'],
    ['max_tokens=5 secret_count=2'],
    ['password_file=/run/secrets/pg'],
    ['FATAL:  password authentication failed for user "app"'],
    ['fe_sendauth: no password supplied'],
    ['gpg: decryption failed: No secret key'],
    ['contact admin@example.com about postgres://app@db:5432/x'],
    ['see https://example.com:443 and user@example.org'],
    ['http://host:8080/path@v2?x=1#frag'],
    ['pg_restore: error: input file does not appear to be a valid archive (unknown format)'],
  ])('leaves %j as it is', (text) => {
    expect(redact(text)).toBe(text);
  });

  test.each([
    ['postgres://app:s3cr%40t@db:5432/x failed', 'postgres://app:***@db:5432/x failed'],
    ['postgres://app:p@ss@db:5432/x failed', 'postgres://app:***@db:5432/x failed'],
    ['postgres://app:two words@db/x failed', 'postgres://app:***@db/x failed'],
    ['url postgres://app:pw@db:5432, then mail admin@example.com', 'url postgres://app:***@db:5432, then mail admin@example.com'],
    ['PGPASSWORD=abc password: "x y"', 'PGPASSWORD=*** password: ***'],
    ['host=db password=\'a b\' user=app', 'host=db password=*** user=app'],
    ['?user=app&password=s3&sslmode=require', '?user=app&password=***&sslmode=require'],
    ['{"password":"a\\"b","user":"u"}', '{"password":***,"user":"u"}'],
    ['AWS_SECRET_ACCESS_KEY=abc/def+ghi', 'AWS_SECRET_ACCESS_KEY=***'],
    ['secretAccessKey: abc123', 'secretAccessKey: ***'],
    ['PGPASSWORD: hunter2 is set', 'PGPASSWORD: *** is set'],
    ['password: hunter2', 'password: ***'],
    ['Authorization: Bearer abcdefghijklmnop', 'Authorization: Bearer ***'],
    ['-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQdGBGN\n-----END PGP PRIVATE KEY BLOCK-----', '-----BEGIN PGP PRIVATE KEY BLOCK----- ***'],
  ])('hides the secret in %j', (text, expected) => {
    expect(redact(text)).toBe(expected);
    expect(redact(expected)).toBe(expected);
  });
});

describe('the configuration refuses values that cannot work, naming the field and what is allowed', () => {
  const repos = valid.repositories;
  test.each([
    ['temporal.address', { temporal: { address: '127.0.0.1:99999' } }, 'from 1 to 65535'],
    ['temporal.address', { temporal: { address: 'temporal:0' } }, 'from 1 to 65535'],
    ['database.url', { database: { url: 'postgres://app@db.internal:0/app_db' } }, 'port 1-65535'],
    ['drill.healthUrl', { drill: { healthUrl: 'http://app.internal:0/health' } }, 'port 1-65535'],
    ['temporal.namespace', { temporal: { namespace: 'bad namespace' } }, 'letters, digits'],
    ['temporal.apiKeyFile', { temporal: { apiKeyFile: 'keys/api' } }, 'absolute path'],
    ['repositories.local.path', { repositories: { local: { type: 'filesystem', path: '/var/backups\0/../../etc' } } }, 'NUL byte'],
    ['encryption.publicKeyFile', { encryption: { publicKeyFile: '/etc/backupctl/pub\0.asc' } }, 'NUL byte'],
    ['encryption.publicKeyFile', { encryption: { publicKeyFile: 'public.asc' } }, 'absolute path'],
    ['database.passwordFile', { database: { url: 'postgres://app@db/app_db', passwordFile: 'secret.txt' } }, 'absolute path'],
    ['database.binDir', { database: { url: 'postgres://app@db/app_db', binDir: '/usr/lib/postgresql/16/bin\0' } }, 'NUL byte'],
    ['restore.workDir', { restore: { workDir: '/srv/restore\0' } }, 'NUL byte'],
    ['restore.services.stopCommand.1', { restore: { services: { stopCommand: ['systemctl', 'st\0op'] } } }, 'NUL byte'],
    ['pitr.restoreCommand', { pitr: { restoreCommand: 'backupctl wal-fetch %f %p\nrecovery_target_action = promote' } }, 'one line'],
    ['schedules.database.timezone', { schedules: { database: { timezone: 'Mars/Olympus_Mons' } } }, 'IANA time zone'],
    ['drill.healthUrl', { drill: { healthUrl: 'ftp://app.internal/health' } }, 'http:// or https://'],
    ['drill.repository', { drill: { repository: 'offsite' } }, 'configured repository (local, s3)'],
    ['wal.spool', { wal: { spool: 's3' } }, 'configured filesystem repository (local)'],
    ['repositories.s3.endpoint', { repositories: { ...repos, s3: { type: 's3', bucket: 'app-backups', endpoint: 'file:///etc/passwd' } } }, 'http:// or https://'],
    ['repositories.s3.region', { repositories: { ...repos, s3: { type: 's3', bucket: 'app-backups', region: 'eu central' } } }, 'region name'],
  ])('refuses a bad %s', (field, override, allowed) => {
    const err = configError(() => validateConfig({ ...valid, ...override }, 'test'));
    expect(err.type).toBe('InvalidConfig');
    expect(err.message).toContain(`${field}: `);
    expect(err.message).toContain(allowed);
  });

  test('and still takes what is right', () => {
    const config = validateConfig(
      {
        ...valid,
        temporal: { address: '[::1]:7233', namespace: 'backups.prod' },
        wal: { spool: 'local' },
        drill: { host: 'dr-1', repository: 's3', healthUrl: 'https://app.internal:8443/health' },
        schedules: { database: { timezone: 'Europe/Berlin' } },
      },
      'test',
    );
    expect(config.temporal.address).toBe('[::1]:7233');
    expect(config.drill.repository).toBe('s3');
  });
});

function writeConfig(name: string, content: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

describe('a repository that can never work fails at once, naming its path', () => {
  // A read-only mount is the honest test: tests run as root, and chmod does not stop root.
  const readOnly = path.join(dir, 'read-only');
  const canMount = (() => {
    try {
      mkdirSync(readOnly);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', readOnly], { stdio: 'ignore' });
      mounts.push(readOnly);
      return true;
    } catch {
      return false;
    }
  })();

  test('a repository path that is a file: check and put are InvalidConfig, not retried', async () => {
    const file = path.join(dir, 'not-a-folder');
    writeFileSync(file, 'x');
    const repository = new FilesystemRepository('local', file);
    const started = Date.now();
    const checked = await failureOf(repository.check());
    expect(checked).toMatchObject({ type: 'InvalidConfig', nonRetryable: true });
    expect(checked.message).toContain(file);
    expect(checked.message).toContain('not a directory');
    const put = await failureOf(repository.put('database/b-1/dump.zst.gpg', Readable.from([Buffer.from('data')])));
    expect(put).toMatchObject({ type: 'InvalidConfig', nonRetryable: true });
    expect(put.message).toContain(file);
    const listed = await failureOf(repository.list('database/'));
    expect(listed).toMatchObject({ type: 'InvalidConfig', nonRetryable: true });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(readFileSync(file, 'utf8')).toBe('x');
  });

  test('a repository below a file (a parent of the path is a file) is InvalidConfig too', async () => {
    const file = path.join(dir, 'parent-file');
    writeFileSync(file, 'x');
    const checked = await failureOf(new FilesystemRepository('nas', path.join(file, 'repo')).check());
    expect(checked).toMatchObject({ type: 'InvalidConfig', nonRetryable: true });
    expect(checked.message).toContain(path.join(file, 'repo'));
  });

  (canMount ? test : test.skip)('a read-only repository: check and put are StorageAccessDenied, not retried', async () => {
    const repository = new FilesystemRepository('nas', readOnly);
    const checked = await failureOf(repository.check());
    expect(checked).toMatchObject({ type: 'StorageAccessDenied', nonRetryable: true });
    expect(checked.message).toContain(readOnly);
    expect(checked.message).toContain('read-only');
    const put = await failureOf(repository.put('database/b-1/dump.zst.gpg', Readable.from([Buffer.from('data')])));
    expect(put).toMatchObject({ type: 'StorageAccessDenied', nonRetryable: true });
    expect(put.message).toContain(readOnly);
    // Reading still works: a read-only repository can be restored from.
    expect(await repository.list('database/')).toEqual([]);
  });

  (canMount ? test : test.skip)('a repository inside a read-only mount that does not exist yet cannot be created: StorageAccessDenied', async () => {
    const checked = await failureOf(new FilesystemRepository('nas', path.join(readOnly, 'backups')).check());
    expect(checked).toMatchObject({ type: 'StorageAccessDenied', nonRetryable: true });
  });
});

describe('the public key file holds exactly one public key', () => {
  let first: KeyPair;
  let second: KeyPair;

  beforeAll(async () => {
    first = await ensureKeyPair(path.join(dir, 'key-1'), 'first <first@backupctl.invalid>');
    second = await ensureKeyPair(path.join(dir, 'key-2'), 'second <second@backupctl.invalid>');
    keyHomes.push(first.privateHome, second.privateHome);
  });

  async function exportKey(keys: KeyPair, armor: boolean, secret = false): Promise<Buffer> {
    const file = path.join(dir, `export-${Math.random().toString(36).slice(2)}`);
    const what = secret ? ['--pinentry-mode', 'loopback', '--passphrase', '', '--export-secret-keys'] : ['--export'];
    await runCommand('gpg', ['--homedir', keys.privateHome, '--batch', ...(armor ? ['--armor'] : []), '--output', file, ...what, keys.fingerprint]);
    return readFileSync(file);
  }

  test.each([
    ['armored', true],
    ['binary', false],
  ])('two %s public keys are refused, naming both fingerprints', async (_, armor) => {
    const file = path.join(dir, `two-keys-${armor}`);
    writeFileSync(file, Buffer.concat([await exportKey(first, armor), await exportKey(second, armor)]));
    const err = await failureOf(loadRecipient(file));
    expect(err).toMatchObject({ type: 'InvalidPublicKey', nonRetryable: true });
    expect(err.message).toContain(first.fingerprint);
    expect(err.message).toContain(second.fingerprint);
  });

  test('a public key followed by a secret key is refused, naming the secret one', async () => {
    const file = path.join(dir, 'public-and-secret.asc');
    writeFileSync(file, Buffer.concat([await exportKey(second, true), await exportKey(first, true, true)]));
    const err = await failureOf(loadRecipient(file));
    expect(err).toMatchObject({ type: 'InvalidPublicKey', nonRetryable: true });
    expect(err.message).toContain('PRIVATE');
    expect(err.message).toContain(first.fingerprint);
    expect(err.message).not.toMatch(/BEGIN PGP/);
  });

  test('one public key is still taken', async () => {
    const file = path.join(dir, 'one-key.gpg');
    writeFileSync(file, await exportKey(second, false));
    const recipient = await loadRecipient(file);
    expect(recipient.fingerprint).toBe(second.fingerprint);
    await recipient.dispose();
  });
});

describe('backups list reports a repository it cannot read, never "no backups yet"', () => {
  const CLI = path.resolve('bin/backupctl.js');
  const file = path.join(dir, 'list-repo-is-a-file');
  const listWith = (name: string, repositories: Record<string, unknown>, args: string[] = []) => {
    writeFileSync(file, 'not a repository');
    const config = path.join(dir, `${name}.yaml`);
    writeFileSync(config, YAML.stringify({ ...valid, repositories, logLevel: 'warn' }));
    return execa('node', [CLI, '--config', config, 'backups', 'list', ...args], { reject: false });
  };

  test('no repository readable: each one reported, exit non-zero', async () => {
    const repositories = { local: { type: 'filesystem', path: file }, nas: { type: 'filesystem', path: path.join(file, 'nas') } };
    const human = await listWith('none-readable', repositories);
    expect(human.exitCode).not.toBe(0);
    expect(human.stdout).not.toContain('no backups yet');
    expect(human.stdout).toContain('no repository could be read');
    expect(human.stdout).toMatch(/error reading local: .*list-repo-is-a-file/);
    expect(human.stdout).toContain('error reading nas: ');
    const json = await listWith('none-readable', repositories, ['--json']);
    expect(json.exitCode).not.toBe(0);
    const parsed = JSON.parse(json.stdout) as { backups: unknown[]; errors: { repository: string }[] };
    expect(parsed.errors.map((e) => e.repository).sort()).toEqual(['local', 'nas']);
  });

  test('one readable and empty, one not: the empty one is not taken for the whole catalog', async () => {
    const good = path.join(dir, 'list-good');
    mkdirSync(good, { recursive: true });
    const human = await listWith('one-readable', { local: { type: 'filesystem', path: good }, nas: { type: 'filesystem', path: file } });
    expect(human.exitCode).not.toBe(0);
    expect(human.stdout).not.toContain('no backups yet');
    expect(human.stdout).toContain('1 could not be read');
    expect(human.stdout).toContain('error reading nas: ');
  });
});

describe('the CLI builds each workflow input with the workflow’s own check, and refuses bad input', () => {
  // The CLI's own processes and the dev server are in cliRefusals.integration.test.ts; here the
  // whole matrix runs in process, through the very functions the CLI calls before it connects.
  const config = validateConfig({ ...valid, drill: { host: 'dr-1', repository: 's3' } }, 'test');
  const cases: [string, () => unknown, string][] = [
    ['backup database: compression', () => backupDatabaseInput(config, { compression: 'lz4' }), '--compression lz4'],
    ['backup database: repository', () => backupDatabaseInput(config, { repository: ['nowhere'] }), 'configured repositories: local, s3'],
    ['backup base: compression', () => backupBaseInput(config, { compression: 'xz' }), '--compression xz'],
    ['backup base: repository', () => backupBaseInput(config, { repository: ['local', 'tape'] }), '--repository tape'],
    ['restore: relative path', () => restoreDatabaseInput(config, 'dumps/app.backup', {}), 'input.backup is "dumps/app.backup"'],
    ['restore: empty reference', () => restoreDatabaseInput(config, '', {}), 'input.backup is ""'],
    ['restore: --into to quote', () => restoreDatabaseInput(config, 'latest', { into: 'Prod DB' }), 'input.into is "Prod DB"'],
    ['restore: --into too long', () => restoreDatabaseInput(config, 'latest', { into: 'a'.repeat(64) }), 'at most 63'],
    ['restore: --jobs 65', () => restoreDatabaseInput(config, 'latest', { jobs: '65' }), 'input.jobs is 65; expected a whole number from 1 to 64'],
    ['restore: --jobs 1.5', () => restoreDatabaseInput(config, 'latest', { jobs: '1.5' }), 'input.jobs is 1.5'],
    ['restore: --jobs 2x', () => restoreDatabaseInput(config, 'latest', { jobs: '2x' }), 'input.jobs is "2x"'],
    ['restore: --host', () => restoreDatabaseInput(config, 'latest', { host: 'db;rm' }), 'input.hostTaskQueue is "backup@db;rm"'],
    ['verify: a path', () => verifyBackupInput(config, '/srv/dump.backup'), 'expected a backup id or "latest"'],
    ['verify: id with a slash', () => verifyBackupInput(config, 'a/b'), 'input.backup is "a/b"'],
    ['drill: a path', () => drillInput(config, '/srv/dump.backup'), 'input.backup'],
    ['pitr: port 99999', () => pitrStartInput(config, { port: '99999' }), 'input.port is 99999'],
    ['pitr: port 22', () => pitrStartInput(config, { port: '22' }), 'from 1024 to 65535'],
    ['pitr: relative data dir', () => pitrStartInput(config, { dataDir: 'data' }), 'input.dataDir is "data"'],
    ['pitr: approval hours 0', () => pitrStartInput(config, { awaitCutoverApproval: '0' }), 'input.awaitCutoverApprovalHours is 0'],
    ['pitr: approval hours NaN', () => pitrStartInput(config, { awaitCutoverApproval: 'soon' }), 'input.awaitCutoverApprovalHours is "soon"'],
    ['pitr: time without zone', () => pitrStartInput(config, { targetTime: '2026-11-26T14:30:00' }), 'explicit zone'],
    ['pitr: Feb 30', () => pitrStartInput(config, { targetTime: '2026-02-30T14:30:00Z' }), 'not a valid time'],
    ['pitr: xid', () => pitrStartInput(config, { targetXid: '-1' }), 'not a transaction id'],
    ['pitr: name too long', () => pitrStartInput(config, { targetName: 'n'.repeat(64) }), '1 to 63 characters'],
    ['pitr: two targets', () => pitrStartInput(config, { targetLsn: '0/3000060', targetName: 'x' }), 'at most one'],
  ];
  test.each(cases)('%s', (_, build, message) => {
    let refused: unknown;
    try {
      build();
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(InputRefused);
    expect((refused as InputRefused).type).toBe('InvalidInput');
    expect((refused as InputRefused).message).toContain(message);
  });

  test('good input passes unchanged', () => {
    expect(restoreDatabaseInput(config, 'latest', { jobs: '4', into: 'app_restore_1' })).toEqual({ hostTaskQueue: 'backup@db-1', backup: 'latest', into: 'app_restore_1', replace: false, jobs: 4 });
    expect(pitrStartInput(config, { port: '6543', targetTime: '2026-11-26T14:30:00+0100' })).toMatchObject({ port: 6543, target: { kind: 'time', value: '2026-11-26T14:30:00+0100' } });
    expect(backupDatabaseInput(config, { repository: ['s3'], compression: 'gzip' })).toEqual({ hostTaskQueue: 'backup@db-1', repositories: ['s3'], compression: 'gzip' });
    expect(drillInput(config)).toMatchObject({ hostTaskQueue: 'backup@dr-1', repository: 's3', backup: 'latest' });
  });

  test('--allow-unsigned reaches the input of restore, verify, drill and pitr only when given; the workflows refuse anything but a boolean', () => {
    const given = { allowUnsigned: true };
    for (const input of [restoreDatabaseInput(config, 'latest', given), verifyBackupInput(config, 'latest', given), drillInput(config, 'latest', given), pitrStartInput(config, given)]) {
      expect(input).toMatchObject(given);
    }
    for (const input of [restoreDatabaseInput(config, 'latest', {}), verifyBackupInput(config, 'latest'), drillInput(config), pitrStartInput(config, {})]) {
      expect(input).not.toHaveProperty('allowUnsigned');
    }
    const checks = [validateRestoreDatabaseInput, validateVerifyBackupInput, validateRecoveryDrillInput, validatePointInTimeRecoveryInput] as ((input: any) => void)[];
    const base = { hostTaskQueue: 'backup@db-1', backup: 'latest', repository: 's3', allowUnsigned: 'yes' };
    for (const check of checks) expect(() => check(base)).toThrow(/input\.allowUnsigned is "yes"; expected true or false/);
  });
});

test('a recovery target time must exist: the workflow no longer reads 2026-02-30 as March 2', () => {
  const base = { backupId: 'base-1', timeline: 1, startLsn: '0/2000028', stopLsn: '0/2000100', stoppedAt: '2026-02-01T00:00:00Z' };
  const window = { baseBackups: [base], earliest: base.stoppedAt, latest: '2026-03-31T00:00:00Z', newestSegment: null, latestLsn: '0/9000000' };
  expect(checkTarget({ kind: 'time', value: '2026-02-30T10:00:00Z' }, window)).toEqual({ ok: false, reason: '"2026-02-30T10:00:00Z" is not a valid time' });
  expect(checkTarget({ kind: 'time', value: '2026-02-10T24:30:00Z' }, window)).toMatchObject({ ok: false });
  expect(checkTarget({ kind: 'time', value: '2026-02-28T10:00:00Z' }, window)).toMatchObject({ ok: true });
});
