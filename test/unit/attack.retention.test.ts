// Attack on retention (engine/retention*.ts, engine/prune.ts, activities/retention.ts): a hostile
// operator with write access to one repository (a NAS share, S3 credentials that may put) tries
// to make pruning delete what a recovery needs. Real folders (FilesystemRepository on temp
// directories) and the real activities in a MockActivityEnvironment (no server: every attempt
// stands); manifests unsigned, as signing.required false admits them.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRetentionActivities, type RetentionPlan } from '../../activities/retention.js';
import type { RepositoryRetention } from '../../common/retentionTypes.js';
import { validateConfig, type Config } from '../../common/config.js';
import { retentionReportKey } from '../../engine/prune.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';
import type { Repository } from '../../engine/storage/repository.js';

const DAY = 86_400_000;
const root = mkdtempSync(path.join(os.tmpdir(), 'attack-retention-'));
let n = 0;

afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Setup {
  dir: string;
  config: Config;
  repositories: Repository[];
  folder: (name: string) => string;
}

function setup(retention: Record<string, unknown>): Setup {
  const dir = path.join(root, `case-${++n}`);
  const folder = (name: string) => path.join(dir, name);
  mkdirSync(folder('local'), { recursive: true });
  mkdirSync(folder('nas'), { recursive: true });
  const config = validateConfig(
    {
      host: 'db1',
      database: { url: 'postgres://backup@127.0.0.1:5432/app' },
      repositories: { local: { type: 'filesystem', path: folder('local') }, nas: { type: 'filesystem', path: folder('nas') } },
      encryption: { publicKeyFile: path.join(dir, 'unused.asc') },
      signing: { required: false },
      retention: { timezone: 'UTC', ...retention },
    },
    'attack config',
  );
  const repositories = ['local', 'nas'].map((name) => new FilesystemRepository(name, folder(name)));
  return { dir, config, repositories, folder };
}

/** A complete database backup, as the pipeline leaves it: the dump's object, then the manifest. */
function plantDump(folder: string, backupId: string, finishedAt: number): void {
  const at = path.join(folder, 'database', backupId);
  mkdirSync(at, { recursive: true });
  const dump = `dump of ${backupId}`;
  writeFileSync(path.join(at, 'dump.pgcustom.zst.gpg'), dump);
  const objects = [{ role: 'dump', key: `database/${backupId}/dump.pgcustom.zst.gpg`, bytes: dump.length, sha256: '0'.repeat(64) }];
  writeFileSync(path.join(at, 'manifest.json'), JSON.stringify({ formatVersion: 1, backupId, component: 'database', finishedAt: new Date(finishedAt).toISOString(), objects, copies: ['local', 'nas'] }, null, 2) + '\n');
}

const idOf = (at: number, tag: string) => `${new Date(at).toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15)}-${tag}`;

function activitiesOf(s: Setup) {
  return createRetentionActivities({ config: s.config, repositories: s.repositories });
}

async function plan(s: Setup, now: number, reportId = `${idOf(now, 'r')}0000000`) {
  const activities = activitiesOf(s);
  const result = (await new MockActivityEnvironment().run(activities.planRetention, { reportId, workflowId: 'apply-retention-attack', runId: 'run-attack', now, dryRun: false })) as RetentionPlan;
  return { reportId, result, activities };
}

describe('the recorded report rewritten in a repository before it is pruned', () => {
  test('a report rewritten to delete the newest backup deletes nothing: the prune checks the report against the digest the decision returned', async () => {
    const s = setup({ database: { repositories: { nas: { daily: 1 }, local: { daily: 1 } } } });
    const now = Date.UTC(2026, 10, 20, 12);
    const ids = [3, 2, 1].map((d) => idOf(now - d * DAY, 'aaaaaaaa'));
    for (const id of ids) plantDump(s.folder('nas'), id, Date.parse(`${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T${id.slice(9, 11)}:00:00Z`));
    const { reportId, result, activities } = await plan(s, now);
    expect(result.recordedIn).toEqual(['local', 'nas']);
    // The honest decision: the two older ones go, the newest stays.
    const reportFile = path.join(s.folder('nas'), ...retentionReportKey(reportId).split('/'));
    const honest = JSON.parse(readFileSync(reportFile, 'utf8'));
    expect(honest.backups.filter((b: { action: string }) => b.action === 'delete').map((b: { backupId: string }) => b.backupId)).toEqual(ids.slice(0, 2));

    // Someone who can write to the NAS rewrites its copy of the report: every backup goes.
    const forged = { ...honest, backups: honest.backups.map((b: object) => ({ ...b, action: 'delete', reasons: ['complete, and kept by no rule of the policy'] })) };
    writeFileSync(reportFile, JSON.stringify(forged, null, 2) + '\n');

    const input = { reportId, repository: 'nas', reportSha256: result.reportSha256 };
    await expect(new MockActivityEnvironment().run(activities.pruneRepository, input)).rejects.toThrow(/retention report .* is not the one recorded .*nothing deleted/);
    for (const id of ids) expect(existsSync(path.join(s.folder('nas'), 'database', id, 'manifest.json'))).toBe(true);

    // The report as recorded is carried out.
    writeFileSync(reportFile, JSON.stringify(honest, null, 2) + '\n');
    const done = (await new MockActivityEnvironment().run(activities.pruneRepository, input)) as RepositoryRetention;
    expect(done.backups.deleted).toBe(2);
    expect(existsSync(path.join(s.folder('nas'), 'database', ids[2], 'manifest.json'))).toBe(true);
    expect(existsSync(path.join(s.folder('nas'), 'database', ids[0]))).toBe(false);
  });
});

describe('backupctl prune: input refused before any workflow starts', () => {
  test('--repository that is not configured is refused, naming the configured ones', async () => {
    const { pruneInput } = await import('../../client/commands/prune.js');
    const { InputRefused } = await import('../../client/workflowRun.js');
    const s = setup({});
    expect(() => pruneInput(s.config, { repository: ['nosuch'] })).toThrow(InputRefused);
    expect(() => pruneInput(s.config, { repository: ['nas', 'nosuch'] })).toThrow(/--repository nosuch: not configured; configured repositories: local, nas/);
    expect(pruneInput(s.config, { repository: ['nas'] }).repositories).toEqual(['nas']);
  });

  test('--component that retention does not judge is refused', async () => {
    const { pruneInput } = await import('../../client/commands/prune.js');
    const s = setup({});
    expect(() => pruneInput(s.config, { component: ['logs' as never] })).toThrow(/components/);
    expect(pruneInput(s.config, { component: ['wal'] }).components).toEqual(['wal']);
  });
});

describe('manifests planted in a repository', () => {
  test('manifests dated in the future (unsigned, admitted where signing is not required) fill no bucket and push no real backup out; they are kept and reported', async () => {
    const s = setup({ database: { repositories: { nas: { daily: 3 }, local: { daily: 3 } } } });
    const now = Date.UTC(2026, 10, 20, 12);
    const real = [3, 2, 1].map((d) => idOf(now - d * DAY, 'bbbbbbbb'));
    real.forEach((id, i) => plantDump(s.folder('nas'), id, now - (3 - i) * DAY));
    // Someone who can write to the NAS: three "backups" of 2099, whole but for their date.
    const planted = [1, 2, 3].map((d) => idOf(Date.UTC(2099, 0, d), 'cccccccc'));
    for (const [i, id] of planted.entries()) plantDump(s.folder('nas'), id, Date.UTC(2099, 0, i + 1));
    const { reportId } = await plan(s, now);
    const report = JSON.parse(readFileSync(path.join(s.folder('nas'), ...retentionReportKey(reportId).split('/')), 'utf8'));
    const fate = Object.fromEntries(report.backups.map((b: { backupId: string; action: string }) => [b.backupId, b.action]));
    for (const id of real) expect(fate[id]).toBe('keep');
    for (const id of planted) expect(fate[id] ?? 'keep').toBe('keep');
    const notes = report.notes.find((x: { repository: string }) => x.repository === 'nas')?.notes ?? [];
    for (const id of planted) expect(notes.join('\n')).toMatch(new RegExp(`database/${id}/manifest.json .*in the future.*kept`));
  });
});

test('a manifest whose objects this repository does not hold (planted alone, or copied from another repository) fills no bucket and is not the newest: the real backups stay', async () => {
  const s = setup({ database: { repositories: { nas: { daily: 1 }, local: { daily: 1 } } } });
  const now = Date.UTC(2026, 10, 20, 12);
  const real = [3, 2].map((d) => idOf(now - d * DAY, 'dddddddd'));
  real.forEach((id, i) => plantDump(s.folder('nas'), id, now - (3 - i) * DAY));
  // A "backup" an hour ago: its manifest, naming a dump that is not there (or is not its size).
  for (const [id, body] of [[idOf(now - 3_600_000, 'eeeeeeee'), undefined], [idOf(now - 1_800_000, 'ffffffff'), 'x']] as const) {
    mkdirSync(path.join(s.folder('nas'), 'database', id), { recursive: true });
    if (body) writeFileSync(path.join(s.folder('nas'), 'database', id, 'dump.pgcustom.zst.gpg'), body);
    const objects = [{ role: 'dump', key: `database/${id}/dump.pgcustom.zst.gpg`, bytes: 123456, sha256: '0'.repeat(64) }];
    writeFileSync(path.join(s.folder('nas'), 'database', id, 'manifest.json'), JSON.stringify({ formatVersion: 1, backupId: id, component: 'database', finishedAt: new Date(now - 60_000).toISOString(), objects }));
  }
  const { reportId } = await plan(s, now);
  const report = JSON.parse(readFileSync(path.join(s.folder('nas'), ...retentionReportKey(reportId).split('/')), 'utf8'));
  const fate = Object.fromEntries(report.backups.map((b: { backupId: string; action: string }) => [b.backupId, b.action]));
  // daily 1: the real newest stays; the older real one goes.
  expect(fate[real[1]]).toBe('keep');
  expect(fate[real[0]]).toBe('delete');
  expect(fate[idOf(now - 3_600_000, 'eeeeeeee')] ?? 'keep').toBe('keep');
  const notes = (report.notes.find((x: { repository: string }) => x.repository === 'nas')?.notes ?? []).join('\n');
  expect(notes).toMatch(/eeeeeeee\/manifest.json .*dump.pgcustom.zst.gpg.*not held here.*kept/);
  expect(notes).toMatch(/ffffffff\/manifest.json .*dump.pgcustom.zst.gpg.*not held here.*kept/);
});

test('links planted in a repository (a backup folder, a file in a doomed backup, a WAL file) are never followed: nothing outside the repository goes', async () => {
  const { symlinkSync } = await import('node:fs');
  const s = setup({ database: { repositories: { nas: { daily: 1 }, local: { daily: 1 } } } });
  const now = Date.UTC(2026, 10, 20, 12);
  const real = [3, 2, 1].map((d) => idOf(now - d * DAY, '11111111'));
  real.forEach((id, i) => plantDump(s.folder('nas'), id, now - (3 - i) * DAY));
  // Outside the repository: what the links lead to, a whole old "backup" among it.
  const outside = path.join(s.dir, 'outside');
  const lured = idOf(now - 10 * DAY, '22222222');
  plantDump(outside, lured, now - 10 * DAY);
  writeFileSync(path.join(outside, 'precious'), 'not the repository\'s');
  symlinkSync(path.join(outside, 'database', lured), path.join(s.folder('nas'), 'database', lured));
  symlinkSync(path.join(outside, 'precious'), path.join(s.folder('nas'), 'database', real[0], 'globals.sql.zst.gpg'));
  mkdirSync(path.join(s.folder('nas'), 'wal'), { recursive: true });
  symlinkSync(path.join(outside, 'precious'), path.join(s.folder('nas'), 'wal', '000000010000000000000001.zst.gpg'));
  writeFileSync(path.join(s.folder('nas'), 'wal', '000000010000000000000001.json'), '{}');

  const { reportId, result, activities } = await plan(s, now);
  const report = JSON.parse(readFileSync(path.join(s.folder('nas'), ...retentionReportKey(reportId).split('/')), 'utf8'));
  expect(report.backups.map((b: { backupId: string }) => b.backupId)).not.toContain(lured);
  const done = (await new MockActivityEnvironment().run(activities.pruneRepository, { reportId, repository: 'nas', reportSha256: result.reportSha256 })) as RepositoryRetention;
  expect(done.backups.deleted).toBe(2);
  expect(existsSync(path.join(outside, 'database', lured, 'manifest.json'))).toBe(true);
  expect(existsSync(path.join(outside, 'database', lured, 'dump.pgcustom.zst.gpg'))).toBe(true);
  expect(readFileSync(path.join(outside, 'precious'), 'utf8')).toBe('not the repository\'s');
  expect(existsSync(path.join(s.folder('nas'), 'database', real[0], 'manifest.json'))).toBe(false);
});

test('a dry run\'s report is never carried out, even when a prune is asked for it: nothing deleted, no pruned marker', async () => {
  const s = setup({ database: { repositories: { nas: { daily: 1 }, local: { daily: 1 } } } });
  const now = Date.UTC(2026, 10, 20, 12);
  const ids = [3, 2, 1].map((d) => idOf(now - d * DAY, '33333333'));
  ids.forEach((id, i) => plantDump(s.folder('nas'), id, now - (3 - i) * DAY));
  const activities = activitiesOf(s);
  const reportId = `${idOf(now, 'd')}0000000`;
  const result = (await new MockActivityEnvironment().run(activities.planRetention, { reportId, workflowId: 'apply-retention-dry', runId: 'run-dry', now, dryRun: true })) as RetentionPlan;
  expect(result.planned.find((p) => p.repository === 'nas')!.backups.deleted).toBe(2);
  await expect(new MockActivityEnvironment().run(activities.pruneRepository, { reportId, repository: 'nas', reportSha256: result.reportSha256 })).rejects.toThrow(/dry run.*nothing deleted/);
  for (const id of ids) expect(existsSync(path.join(s.folder('nas'), 'database', id, 'manifest.json'))).toBe(true);
  expect(existsSync(path.join(s.folder('nas'), 'retention', 'pruned'))).toBe(false);
});

describe('WAL', () => {
  const SEG = 16 * 1024 * 1024;
  const hex8 = (v: number) => v.toString(16).toUpperCase().padStart(8, '0');
  const seg = (tl: number, n: number) => `${hex8(tl)}${hex8(Math.floor(n / 256))}${hex8(n % 256)}`;
  const lsn = (n: number) => `${Math.floor(n / 256).toString(16).toUpperCase()}/${((n % 256) * SEG).toString(16).toUpperCase()}`;

  /** A base backup as the pipeline leaves it: its object, then the manifest. */
  function plantBase(folder: string, id: string, at: number, backup: Record<string, unknown>, server: Record<string, unknown> = { walSegmentBytes: SEG }): void {
    const dir = path.join(folder, 'base', id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'base.tar.zst.gpg'), `base ${id}`);
    const objects = [{ role: 'base', key: `base/${id}/base.tar.zst.gpg`, bytes: `base ${id}`.length, sha256: '0'.repeat(64) }];
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ formatVersion: 1, backupId: id, component: 'base', finishedAt: new Date(at).toISOString(), server, backup: { stopLsn: '0/0', stoppedAt: new Date(at).toISOString(), ...backup }, objects }));
  }

  function plantWal(folder: string, names: string[]): void {
    mkdirSync(path.join(folder, 'wal'), { recursive: true });
    for (const name of names) {
      writeFileSync(path.join(folder, 'wal', `${name}.zst.gpg`), name);
      writeFileSync(path.join(folder, 'wal', `${name}.json`), '{}');
    }
  }

  const now = Date.UTC(2026, 10, 20, 12);
  // The spool (local) holds nothing; nas keeps the newest base only (a timeline 2 one, after a
  // point-in-time recovery to a point BEFORE the end of timeline 1: timeline 2's numbers restart lower).
  const files = [
    ...Array.from({ length: 0x40 }, (_, i) => seg(1, i)),
    '00000002.history',
    `${seg(1, 0x20)}.partial`,
    ...Array.from({ length: 0x20 }, (_, i) => seg(2, 0x20 + i)),
    `${seg(2, 0x28)}.00000028.backup`,
  ];

  async function walDecision(plantBases: (folder: string) => void) {
    const s = setup({ base: { repositories: { nas: { daily: 1 }, local: { daily: 1 } } }, database: {} });
    plantBases(s.folder('nas'));
    plantWal(s.folder('nas'), files);
    const { reportId } = await plan(s, now);
    const report = JSON.parse(readFileSync(path.join(s.folder('nas'), ...retentionReportKey(reportId).split('/')), 'utf8'));
    return report.wal.find((w: { repository: string }) => w.repository === 'nas') as { keepFrom?: string; delete: string[]; why: string };
  }

  test('across a timeline switch to lower segment numbers: nothing at or after the kept base\'s start goes, on either timeline; history files stay', async () => {
    const wal = await walDecision((nas) => {
      plantBase(nas, idOf(now - 5 * DAY, 'b1b1b1b1'), now - 5 * DAY, { timeline: 1, startLsn: lsn(0x10) });
      plantBase(nas, idOf(now - DAY, 'b2b2b2b2'), now - DAY, { timeline: 2, startLsn: lsn(0x28) });
    });
    expect(wal.keepFrom).toBe(seg(2, 0x28));
    const number = (name: string) => parseInt(name.slice(8, 24), 16);
    expect(wal.delete.filter((name) => !/^[0-9A-F]{24}(\.partial)?$/.test(name) || number(name) >= 0x28)).toEqual([]);
    expect(wal.delete).toContain(seg(1, 0x27));
    expect(wal.delete).toContain(seg(2, 0x27));
    expect(wal.delete).not.toContain('00000002.history');
    expect(wal.delete).not.toContain(`${seg(2, 0x28)}.00000028.backup`);
  });

  test.each([
    ['without walSegmentBytes', { timeline: 2, startLsn: lsn(0x28) }, {}],
    ['with a start LSN that is not one', { timeline: 2, startLsn: 'not/an-lsn' }, { walSegmentBytes: SEG }],
    ['with a segment size PostgreSQL never makes', { timeline: 2, startLsn: lsn(0x28) }, { walSegmentBytes: 12345 }],
    ['with timeline 0', { timeline: 0, startLsn: lsn(0x28) }, { walSegmentBytes: SEG }],
  ])('the kept base backup %s: all WAL stays', async (_, backup, server) => {
    const wal = await walDecision((nas) => plantBase(nas, idOf(now - DAY, 'b3b3b3b3'), now - DAY, backup, server));
    expect(wal.keepFrom).toBeUndefined();
    expect(wal.delete).toEqual([]);
  });
});

test('keys no repository of ours writes (a space, "..") planted in S3 under our folders: left alone and reported; the rest of the repository is still judged and pruned', async () => {
  const { MemoryRepository } = await import('../fixtures/memoryRepository.js');
  const { readRetentionCatalog } = await import('../../engine/retentionCatalog.js');
  const { decideRetention } = await import('../../engine/retention.js');
  const { buildReport, applyReport } = await import('../../engine/prune.js');
  const { retentionPolicyOf } = await import('../../engine/retentionPolicy.js');
  const { loadVerifier } = await import('../../engine/manifestSignature.js');
  const s = setup({ database: { repositories: { nas: { daily: 1 }, local: { daily: 1 } } } });
  const nas = new MemoryRepository('nas');
  const now = Date.UTC(2026, 10, 20, 12);
  const ids = [3, 2, 1].map((d) => idOf(now - d * DAY, '44444444'));
  ids.forEach((id, i) => {
    const key = `database/${id}/dump.pgcustom.zst.gpg`;
    nas.set(key, `dump ${id}`);
    nas.set(`database/${id}/manifest.json`, { backupId: id, component: 'database', finishedAt: new Date(now - (3 - i) * DAY).toISOString(), objects: [{ key, bytes: `dump ${id}`.length }] });
  });
  // S3 keeps any key it is given: these are no key we write.
  nas.set('database/../manifest.json', { backupId: '..', component: 'database', finishedAt: new Date(now).toISOString(), objects: [] });
  nas.set(`database/${ids[0]}/odd name`, 'planted');
  const reading = await readRetentionCatalog([nas], { verifier: await loadVerifier(s.config), allowUnsigned: true, now });
  expect(reading.unreachable).toEqual([]);
  const decision = decideRetention(reading.catalog, retentionPolicyOf(s.config), now, ['nas']);
  const report = buildReport({ reportId: 'r1', workflowId: 'w', runId: 'r', dryRun: false, timezone: 'UTC', scope: {} }, reading, decision);
  expect(report.backups.filter((b) => b.action === 'delete').map((b) => b.backupId)).toEqual(ids.slice(0, 2));
  expect(report.notes.flatMap((n) => n.notes).join('\n')).toMatch(/database\/\.\.\/manifest.json: not under a backup's folder; left alone/);
  const result = await applyReport(nas, report);
  expect(result.backups.deleted).toBe(1);
  expect(result.backups.failed).toBe(1);
  expect(result.failures.join('\n')).toMatch(/database\/.*-44444444\/odd name: .*left alone/);
  expect(nas.objects.has(`database/${ids[0]}/odd name`)).toBe(true);
  expect(nas.objects.has(`database/${ids[0]}/manifest.json`)).toBe(false);
  expect([...nas.objects.keys()].filter((k) => k.startsWith(`database/${ids[1]}/`))).toEqual([]);
  expect(nas.objects.has(`database/${ids[2]}/manifest.json`)).toBe(true);
});

test('two prunes at once (decided at t1 and at a later t2, the second seeing backups made since): nothing the first deletes is something the second keeps, WAL included', async () => {
  const fc = (await import('fast-check')).default;
  const { decideRetention } = await import('../../engine/retention.js');
  const HOUR = 3_600_000;
  const rule = fc.record({ daily: fc.integer({ min: 0, max: 5 }), weekly: fc.integer({ min: 0, max: 3 }), monthly: fc.integer({ min: 0, max: 2 }), withinDays: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }), pitrWindowDays: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }) });
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 24 * 90 }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 24 * 20 }), fc.array(fc.integer({ min: 0, max: 24 * 20 }), { maxLength: 5 }), rule, rule, (hours, laterHours, newHours, dbRule, baseRule) => {
      const t0 = Date.UTC(2026, 0, 1);
      const t1 = t0 + 24 * 90 * HOUR;
      const t2 = t1 + laterHours * HOUR;
      const segAt = (at: number) => `00000001${(Math.floor((at - t0) / HOUR) + 1).toString(16).toUpperCase().padStart(16, '0')}`;
      const backup = (at: number, i: number, component: string) => ({ repository: 'r', component, backupId: `${component}-${at}-${i}`, complete: true, at, ...(component === 'base' ? { walStart: segAt(at) } : {}) });
      const old = hours.flatMap((h, i) => [backup(t0 + h * HOUR - 1, i, 'database'), backup(t0 + h * HOUR - 1, i, 'base')]);
      const made = newHours.filter((h) => t1 + h * HOUR <= t2 && h > 0).flatMap((h, i) => [backup(t1 + h * HOUR, 100 + i, 'database'), backup(t1 + h * HOUR, 100 + i, 'base')]);
      const wal = Array.from({ length: Math.ceil((t2 - t0) / HOUR) + 1 }, (_, i) => ({ repository: 'r', name: segAt(t0 + i * HOUR), verified: true }));
      const policy = { timezone: 'UTC', leftoverGraceMs: 48 * HOUR, ruleFor: (c: string) => (c === 'database' ? dbRule : baseRule) };
      const first = decideRetention({ backups: old, wal: wal.filter((w) => w.name <= segAt(t1)) }, policy, t1, ['r']);
      const second = decideRetention({ backups: [...old, ...made], wal }, policy, t2, ['r']);
      const keptLater = new Set(second.backups.filter((b) => b.action === 'keep').map((b) => b.backupId));
      expect(first.backups.filter((b) => b.action === 'delete' && keptLater.has(b.backupId))).toEqual([]);
      const needFrom = second.wal[0]?.keepFrom;
      const deletedFirst = first.wal[0]?.delete ?? [];
      if (needFrom === undefined) expect(deletedFirst).toEqual([]);
      else expect(deletedFirst.filter((name) => name.slice(8) >= needFrom.slice(8))).toEqual([]);
    }),
    { numRuns: 80 },
  );
});
