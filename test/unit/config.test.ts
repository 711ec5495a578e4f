// Configuration: every bad value is reported with its field, the value and what is allowed;
// the conventional environment variables override the file.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../common/config.js';
import { redact } from '../../common/redact.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-config-'));
const valid = {
  host: 'db-1',
  database: { url: 'postgres://thesis_grey_user@localhost:5432/thesis_grey_db' },
  repositories: {
    local: { type: 'filesystem', path: '/var/backups/tg' },
    s3: { type: 's3', bucket: 'thesis-grey-backups', storageClass: 'STANDARD_IA' },
  },
  encryption: { publicKeyFile: '/etc/backupctl/public.asc' },
};

function write(name: string, content: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

test('a valid file gets defaults for what it leaves out', () => {
  const config = loadConfig(write('ok.json', valid), {});
  expect(config.temporal.address).toBe('127.0.0.1:7233');
  expect(config.compression).toEqual({ algorithm: 'zstd', level: 3, threads: 0 });
  // No application's specifics in the defaults: every table is counted, no service is stopped.
  expect(config.database.keyTables).toBe('all');
  expect(config.restore.services.units).toEqual([]);
  expect(config.restore.freshness).toEqual([]);
  expect(Object.keys(config.repositories)).toEqual(['local', 's3']);
});

test('YAML works as well as JSON, and BACKUPCTL_CONFIG names the file', () => {
  const file = write('ok.yaml', `host: db-2\ndatabase:\n  url: postgres://u@h/db\nrepositories:\n  local: { type: filesystem, path: /srv/b }\nencryption:\n  publicKeyFile: /k.asc\n`);
  expect(loadConfig(undefined, { BACKUPCTL_CONFIG: file }).host).toBe('db-2');
});

test('the conventional environment variables override the file', () => {
  const config = loadConfig(write('env.json', valid), {
    DATABASE_URL: 'postgresql://other@db.internal:6432/prod',
    TEMPORAL_ADDRESS: 'temporal.internal:7233',
    TEMPORAL_NAMESPACE: 'backups',
  });
  expect(config.database.url).toBe('postgresql://other@db.internal:6432/prod');
  expect(config.temporal).toMatchObject({ address: 'temporal.internal:7233', namespace: 'backups' });
});

test.each([
  [{ compression: { algorithm: 'lz4' } }, 'compression.algorithm', '"lz4"'],
  [{ compression: { level: 42 } }, 'compression.level', '42'],
  [{ repositories: { s3: { type: 's3', bucket: 'Bad_Bucket' } } }, 'repositories.s3.bucket', '"Bad_Bucket"'],
  [{ repositories: { s3: { type: 's3', bucket: 'b-1', storageClass: 'COLD' } } }, 'repositories.s3.storageClass', '"COLD"'],
  [{ repositories: { local: { type: 'filesystem', path: 'relative/dir' } } }, 'repositories.local.path', 'relative/dir'],
  [{ repositories: {} }, 'repositories', 'at least one repository'],
  [{ database: { url: 'mysql://x/y' } }, 'database.url', '"mysql://x/y"'],
  [{ temporal: { address: 'no-port' } }, 'temporal.address', '"no-port"'],
  [{ database: { url: 'postgres://u@h/db', keyTables: ['auth_user; DROP TABLE x'] } }, 'database.keyTables.0', 'DROP TABLE'],
  [{ surprise: true }, 'surprise', 'Unrecognized key'],
  [{ restore: { jobs: 0 } }, 'restore.jobs', '0'],
  [{ restore: { workDir: 'tmp/restore' } }, 'restore.workDir', 'absolute path'],
  [{ restore: { serverUrl: 'http://db/postgres' } }, 'restore.serverUrl', 'postgres://'],
  [{ restore: { checks: [{ name: 'x' }] } }, 'restore.checks.0.sql', 'expected string'],
  [{ restore: { services: { units: ['web; rm -rf /'] } } }, 'restore.services.units.0', 'unit name'],
  [{ encryption: { publicKeyFile: '/k.asc', privateKeyHome: 'gnupg' } }, 'encryption.privateKeyHome', 'absolute path'],
  [{ encryption: { publicKeyFile: '/k.asc', passphraseFile: 'passphrase.txt' } }, 'encryption.passphraseFile', 'absolute path'],
  [{ drill: { healthUrl: 'not a url' } }, 'drill.healthUrl', 'not a url'],
  [{ drill: { healthUrl: 'http://probe:hunter2@h/health' } }, 'drill.healthUrl', 'must not hold credentials (user:password@): the URL is recorded in the drill\'s history and report; got "http://***@h/health"'],
  [{ schedules: { verification: { cron: 'weekly' } } }, 'schedules.verification.cron', 'five-field'],
])('rejects %j naming the field and the value', (override, field, shown) => {
  const err = errorOf(() => loadConfig(write('bad.json', { ...valid, ...override }), {}));
  expect(err).toBeInstanceOf(ConfigError);
  expect(err.type).toBe('InvalidConfig');
  expect(err.message).toContain(field);
  expect(err.message).toContain(shown);
});

test('a password in a bad value is not repeated in the error', () => {
  const err = errorOf(() => loadConfig(write('pw.json', { ...valid, database: { url: 'mysql://u:hunter2@h/db' } }), {}));
  expect(err.message).not.toContain('hunter2');
});

test('an unreadable or malformed file says so', () => {
  expect(errorOf(() => loadConfig(path.join(dir, 'missing.yaml'), {})).message).toMatch(/cannot be read \(ENOENT\)/);
  expect(errorOf(() => loadConfig(write('broken.yaml', 'host: [unclosed'), {})).message).toMatch(/not valid YAML/);
  expect(errorOf(() => loadConfig(write('list.json', [1, 2]), {})).message).toMatch(/must be a mapping/);
});

test('redact hides passwords in URLs and key=value text', () => {
  expect(redact('postgres://app:s3cr%40t@db:5432/x failed')).toBe('postgres://app:***@db:5432/x failed');
  expect(redact('PGPASSWORD=abc password: "x y"')).toBe('PGPASSWORD=*** password: ***');
});
