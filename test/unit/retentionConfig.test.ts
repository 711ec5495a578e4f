// The retention policy read from a configuration (engine/retentionPolicy.ts): the seed's defaults
// by kind of repository, overrides by kind and by repository name, and bad rules refused by name.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { validateConfig } from '../../common/config.js';
import { DEFAULT_RETENTION, retentionPolicyOf } from '../../engine/retentionPolicy.js';
import { decideRetention } from '../../engine/retention.js';

const base = {
  host: 'db1',
  database: { url: 'postgres://backup@127.0.0.1:5432/app' },
  repositories: { local: { type: 'filesystem', path: '/var/backups/local' }, nas: { type: 'filesystem', path: '/mnt/nas' }, s3: { type: 's3', bucket: 'backups-offsite' } },
  encryption: { publicKeyFile: '/etc/backupctl/public.asc' },
};

test('by default: the seed\'s rules, longer offsite (S3) than local', () => {
  const policy = retentionPolicyOf(validateConfig(base, 'test'));
  expect(policy.timezone).toBe('UTC');
  expect(policy.leftoverGraceMs).toBe(48 * 3_600_000);
  expect(policy.ruleFor('database', 'local')).toEqual(DEFAULT_RETENTION.database.local);
  expect(policy.ruleFor('database', 'nas')).toEqual(DEFAULT_RETENTION.database.local);
  expect(policy.ruleFor('database', 's3')).toEqual({ daily: 30, weekly: 12, monthly: 12, yearly: 7 });
  expect(policy.ruleFor('base', 's3')).toMatchObject({ pitrWindowDays: 30 });
  expect(policy.ruleFor('base', 'local')).toMatchObject({ pitrWindowDays: 7 });
});

test('a rule by kind of repository, and one for a repository by name, replace the defaults', () => {
  const config = validateConfig(
    { ...base, retention: { timezone: 'Europe/Berlin', leftoverGraceHours: 6, database: { local: { daily: 7 }, repositories: { nas: { weekly: 52 } } } } },
    'test',
  );
  const policy = retentionPolicyOf(config);
  expect(policy.timezone).toBe('Europe/Berlin');
  expect(policy.leftoverGraceMs).toBe(6 * 3_600_000);
  expect(policy.ruleFor('database', 'local')).toEqual({ daily: 7 });
  expect(policy.ruleFor('database', 'nas')).toEqual({ weekly: 52 });
  expect(policy.ruleFor('database', 's3')).toEqual(DEFAULT_RETENTION.database.offsite);
});

test('a rule for a repository that is not configured, a rule that keeps nothing, an unknown field or time zone: refused, naming it', () => {
  expect(() => validateConfig({ ...base, retention: { database: { repositories: { tape: { daily: 3 } } } } }, 'test')).toThrow(/retention\.database\.repositories\.tape.*must name a configured repository \(local, nas, s3\)/);
  expect(() => validateConfig({ ...base, retention: { base: { local: { daily: 0 } } } }, 'test')).toThrow(/retention\.base\.local.*must keep something/);
  expect(() => validateConfig({ ...base, retention: { database: { local: { dayly: 3 } } } }, 'test')).toThrow(/dayly/);
  expect(() => validateConfig({ ...base, retention: { timezone: 'Mars/Olympus' } }, 'test')).toThrow(/retention\.timezone/);
  expect(() => validateConfig({ ...base, retention: { database: { local: { daily: -1 } } } }, 'test')).toThrow(/retention\.database\.local\.daily/);
});

test('a component no rule speaks of: everything of it stays', () => {
  const policy = retentionPolicyOf(validateConfig(base, 'test'));
  const now = Date.parse('2026-11-29T00:00:00Z');
  const backups = Array.from({ length: 100 }, (_, i) => ({ repository: 'local', component: 'media', backupId: `m${i}`, complete: true, at: now - i * 86_400_000 }));
  const decision = decideRetention({ backups, wal: [] }, policy, now);
  expect(decision.backups.filter((d) => d.action === 'delete')).toEqual([]);
  expect(decision.backups[0].reasons).toEqual(['no retention rule for this component']);
});

test("deploy/backupctl.example.yaml's retention block, uncommented, is valid and says the defaults", () => {
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../deploy/backupctl.example.yaml');
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const from = lines.findIndex((l) => l.startsWith('# retention:'));
  expect(from).toBeGreaterThan(0);
  const block = lines.slice(from).filter((l) => l.startsWith('#')).map((l) => l.replace(/^# ?/, '')).join('\n');
  const config = validateConfig({ ...YAML.parse(text), ...YAML.parse(block) }, file);
  const policy = retentionPolicyOf(config);
  expect(config.retention.database.local).toEqual(DEFAULT_RETENTION.database.local);
  expect(config.retention.database.offsite).toEqual(DEFAULT_RETENTION.database.offsite);
  expect(config.retention.base.local).toEqual(DEFAULT_RETENTION.base.local);
  expect(config.retention.base.offsite).toEqual(DEFAULT_RETENTION.base.offsite);
  expect(policy.leftoverGraceMs).toBe(retentionPolicyOf(validateConfig(YAML.parse(text), file)).leftoverGraceMs);
});
