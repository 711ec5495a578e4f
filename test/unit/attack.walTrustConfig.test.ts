// Hostile review of WAL authenticity, the careless operator: unsigned WAL entries elsewhere
// than the host's own spool are replayed only by a recovery started with --allow-unsigned
// (`pitr start --allow-unsigned`, which says so). A configured restore_command carrying the flag
// made every recovery of the host admit them, for ever and without a word.
import { ConfigError, validateConfig } from '../../common/config.js';

const valid = {
  host: 'db-1',
  database: { url: 'postgres://app@localhost:5432/app' },
  repositories: { local: { type: 'filesystem', path: '/var/backups/app' } },
  encryption: { publicKeyFile: '/etc/backupctl/public.asc' },
};

test.each([
  '/usr/bin/env backupctl --config /etc/backupctl/config.yaml wal-fetch --allow-unsigned %f %p',
  "sh -c 'backupctl wal-fetch --allow-unsigned \"$0\" \"$1\"' %f %p",
  'backupctl wal-fetch --allow-unsigned=yes %f %p',
])('pitr.restoreCommand may not carry --allow-unsigned: %s', (restoreCommand) => {
  let err: unknown;
  try {
    validateConfig({ ...valid, pitr: { restoreCommand } }, 'test');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as Error).message).toContain('pitr.restoreCommand');
  expect((err as Error).message).toContain('--allow-unsigned');
});

test('a restore_command without it is still taken', () => {
  expect(validateConfig({ ...valid, pitr: { restoreCommand: '/usr/bin/env backupctl --config /etc/backupctl/config.yaml wal-fetch %f %p' } }, 'test').pitr.restoreCommand).toContain('wal-fetch %f %p');
});
