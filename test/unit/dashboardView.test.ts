// What the dashboard shows of a status report (client/dashboard/view.ts): a component past its
// maximum age is red even before a problem names it, one with only warnings amber; the stored
// bytes accumulate every copy by date; no string leaves unredacted.
import { dashboardView } from '../../client/dashboard/view.js';
import type { StatusReport } from '../../client/commands/status.js';
import { validateConfig } from '../../common/config.js';
import type { TimelineEntry } from '../../engine/backupTimeline.js';

const NOW = Date.parse('2026-11-29T12:00:00Z');
const hoursAgo = (h: number) => new Date(NOW - h * 3600_000).toISOString();
const config = validateConfig(
  { database: { url: 'postgres://u@127.0.0.1/db' }, repositories: { local: { type: 'filesystem', path: '/tmp/r' } }, encryption: { publicKeyFile: '/tmp/k.asc' } },
  'test',
);

function report(patch: Partial<StatusReport>): StatusReport {
  return {
    ok: true,
    problems: [],
    keyedProblems: [],
    temporal: { address: '127.0.0.1:7233', namespace: 'default', reachable: true },
    taskQueues: [],
    running: [],
    recentFailures: [],
    monitor: null,
    recentBackups: [],
    latestBackup: null,
    latestVerification: null,
    walArchive: null,
    walQueue: null,
    latestBaseBackup: null,
    storage: [],
    configuration: [],
    latestRetention: null,
    objectives: {
      rpo: { objectiveMinutes: 60, measuredMinutes: 5, basis: 'dump', met: true, detail: 'd' },
      rto: { objectiveMinutes: 240, measuredMinutes: null, drill: null, met: true, detail: 'not measured' },
      maxAgeHours: { database: 25, base: 192, verification: 192, drill: 768 },
    },
    ...patch,
  };
}

test('past its maximum age is red; a warning alone is amber; never made is grey', () => {
  const view = dashboardView(
    report({
      latestBackup: { backupId: 'd1', finishedAt: hoursAgo(1), ageHours: 1, foundIn: ['local'] },
      latestBaseBackup: { backupId: 'b1', stoppedAt: hoursAgo(200), ageDays: 8.33, foundIn: ['local'] },
      keyedProblems: [{ key: 'verification.copies-unchecked', message: 'could not check' }],
      latestVerification: { backupId: 'd1', reportId: 'r', ok: true, finishedAt: hoursAgo(2), ageDays: 0.08 },
    }),
    [],
    config,
    NOW,
  );
  const state = Object.fromEntries(view.components.map((c) => [c.name, c.state]));
  expect(state).toMatchObject({ database: 'ok', base: 'failing', verification: 'warning', drill: 'none' });
});

test('stored bytes: each backup times its copies, accumulated in date order', () => {
  const timeline: TimelineEntry[] = [
    { component: 'database', backupId: 'd1', finishedAt: hoursAgo(48), bytes: 100, foundIn: ['local', 'nas'], signature: 'signed' },
    { component: 'base', backupId: 'b1', finishedAt: hoursAgo(24), bytes: 1000, foundIn: ['local'], signature: 'signed' },
    { component: 'database', backupId: 'd2', finishedAt: hoursAgo(1), bytes: 10, foundIn: ['local', 'nas', 's3'], signature: 'unsigned' },
  ];
  expect(dashboardView(report({}), timeline, config, NOW).storedBytes.points.map((p) => p.bytes)).toEqual([200, 1200, 1230]);
});

test('no password reaches the page, in a message or in a key', () => {
  const leak = 'postgres://app:hunter2-secret@db.example/app';
  const view = dashboardView(report({ keyedProblems: [{ key: `wal.queue-unreadable:${leak}`, message: `cannot connect to ${leak}` }] }), [], config, NOW);
  expect(JSON.stringify(view)).not.toContain('hunter2-secret');
});
