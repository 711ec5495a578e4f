// A configuration asking for point-in-time recovery without what it needs is named, field by
// field; one that asks for nothing, or for all of it, has no problem.
import { validateConfig } from '../../common/config.js';
import { pitrPreconditionProblems, walArchivingWanted } from '../../common/pitrPreconditions.js';

const base = {
  host: 'db-1',
  database: { url: 'postgres://app@localhost:5432/app_db' },
  repositories: { local: { type: 'filesystem', path: '/var/backups/app' }, s3: { type: 's3', bucket: 'app-backups' } },
  encryption: { publicKeyFile: '/etc/backupctl/public.asc' },
};
const replication = { url: 'postgres://replicator@localhost:5432/app_db' };
const config = (extra: object) => validateConfig({ ...base, ...extra }, 'test');

test('dumps only (no base backups, no spool, no pitr settings): no problem, and WAL archiving is not wanted', () => {
  expect(pitrPreconditionProblems(config({}))).toEqual([]);
  // A filesystem repository alone (the spool's fallback) does not ask for archiving.
  expect(walArchivingWanted(config({}))).toBe(false);
});

test('base backups and an archive shipped elsewhere: no problem', () => {
  expect(pitrPreconditionProblems(config({ baseBackup: replication, wal: { spool: 'local' } }))).toEqual([]);
  expect(walArchivingWanted(config({ wal: { spool: 'local' } }))).toBe(true);
});

test('base backups without WAL archiving', () => {
  const problems = pitrPreconditionProblems(config({ baseBackup: replication }));
  expect(problems).toEqual([expect.stringContaining('baseBackup.url is set')]);
  expect(problems[0]).toContain('wal.spool is not set');
});

test('WAL archiving without a base backup source', () => {
  const problems = pitrPreconditionProblems(config({ wal: { spool: 'local' } }));
  expect(problems).toEqual([expect.stringContaining('wal.spool is set (WAL is archived into local)')]);
  expect(problems[0]).toContain('baseBackup.url is not set');
});

test('a spool that is the only repository: WAL would never leave the host', () => {
  const problems = pitrPreconditionProblems(
    validateConfig({ ...base, repositories: { local: base.repositories.local }, baseBackup: replication, wal: { spool: 'local' } }, 'test'),
  );
  expect(problems).toEqual([expect.stringContaining('wal.spool local is the only repository')]);
});

test('a host that recovers (pitr.*) without the private key', () => {
  const restoreCommand = 'backupctl wal-fetch %f %p';
  expect(pitrPreconditionProblems(config({ pitr: { restoreCommand } }))).toEqual([expect.stringContaining('pitr.restoreCommand is set')]);
  expect(pitrPreconditionProblems(config({ pitr: { restoreCommand, cutoverCommand: ['true'] } }))).toEqual([
    expect.stringContaining('pitr.restoreCommand and pitr.cutoverCommand are set'),
  ]);
  expect(pitrPreconditionProblems(config({ pitr: { restoreCommand }, encryption: { ...base.encryption, privateKeyHome: '/var/lib/backupctl/gnupg' } }))).toEqual([]);
});

test('every problem at once is every problem', () => {
  const problems = pitrPreconditionProblems(
    validateConfig({ ...base, repositories: { local: base.repositories.local }, wal: { spool: 'local' }, pitr: { cutoverCommand: ['true'] } }, 'test'),
  );
  expect(problems).toHaveLength(3);
});
