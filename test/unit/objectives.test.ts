// Objectives against measurements (engine/objectives.ts): the measured RPO is the better of the
// WAL (not yet archived + the best off-host repository's lag) and the newest dump's snapshot;
// the RTO is the last drill's; a breach is a problem, an RTO not measured yet is not.
import { assessObjectives, type ObjectiveMeasurements } from '../../engine/objectives.js';

const NOW = Date.parse('2026-11-29T12:00:00Z');
const objectives = { rpoMinutes: 60, rtoMinutes: 240, maxAgeHours: { database: 25, base: 192, verification: 192, drill: 768 } };
const base: ObjectiveMeasurements = { now: NOW, pitr: false, shippingLagSeconds: [] };

test('with point-in-time recovery: what waits in pg_wal plus the best readable off-host repository', () => {
  const { status, problems } = assessObjectives(
    { ...base, pitr: true, archiveQueueSeconds: 30, shippingLagSeconds: [{ repository: 'nas', seconds: 20 }, { repository: 's3', seconds: null }], newestDumpAt: '2026-11-29T02:00:00Z' },
    objectives,
  );
  expect(status.rpo).toMatchObject({ basis: 'wal', measuredMinutes: 0.8, met: true, detail: 'WAL: 30 s waiting to be archived, 20 s behind in nas' });
  expect(problems).toEqual([]);
});

test('nightly dumps only: the newest snapshot\'s age, and an RPO of an hour is not met by a dump of last night', () => {
  const { status, problems } = assessObjectives({ ...base, newestDumpAt: '2026-11-29T02:00:00Z' }, objectives);
  expect(status.rpo).toMatchObject({ basis: 'dump', measuredMinutes: 600, met: false });
  expect(problems).toEqual([{ key: 'objectives.rpo', message: 'RPO objective 60 min not met: a disaster now would lose 600 min of data (the newest dump\'s snapshot, 2026-11-29T02:00:00Z)' }]);
});

test('every off-host repository unreadable: the WAL proves nothing off the host, the dump counts', () => {
  const { status } = assessObjectives({ ...base, pitr: true, archiveQueueSeconds: 0, shippingLagSeconds: [{ repository: 's3', seconds: null }], newestDumpAt: '2026-11-29T11:30:00Z' }, objectives);
  expect(status.rpo).toMatchObject({ basis: 'dump', measuredMinutes: 30, met: true });
});

test('nothing at all: not met, and said so', () => {
  const { status, problems } = assessObjectives(base, objectives);
  expect(status.rpo).toMatchObject({ basis: 'none', measuredMinutes: null, met: false });
  expect(problems[0]).toMatchObject({ key: 'objectives.rpo', message: expect.stringMatching(/^RPO objective 60 min not met: no complete backup and no archived WAL/) });
});

test('RTO: not measured before the first drill (no problem); a failed, a slow or an old drill is one', () => {
  expect(assessObjectives({ ...base, newestDumpAt: '2026-11-29T11:59:00Z' }, objectives)).toMatchObject({ status: { rto: { measuredMinutes: null, met: true } }, problems: [] });
  const drill = (over: object) => assessObjectives({ ...base, newestDumpAt: '2026-11-29T11:59:00Z', lastDrill: { reportId: '20261101_040000-aaaaaaaa', finishedAt: '2026-11-28T04:30:00Z', ok: true, rtoSeconds: 1800, ...over } }, objectives);
  expect(drill({})).toMatchObject({ status: { rto: { measuredMinutes: 30, met: true } }, problems: [] });
  expect(drill({ ok: false, rtoSeconds: undefined }).problems).toEqual([{ key: 'objectives.rto', message: 'RTO objective 240 min not proved: the last drill (20261101_040000-aaaaaaaa) failed: no recovery time was measured' }]);
  expect(drill({ rtoSeconds: 5 * 3600 }).problems).toEqual([{ key: 'objectives.rto', message: 'RTO objective 240 min not met: the last drill (20261101_040000-aaaaaaaa) recovered in 300 min' }]);
  expect(drill({ finishedAt: '2026-10-01T04:30:00Z' }).problems).toEqual([{ key: 'drill.stale', message: 'the newest drill is 59.3 days old (at most 32.0 expected)' }]);
});
