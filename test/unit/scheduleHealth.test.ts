// Our schedules as the monitor and status judge them (engine/scheduleHealth.ts): paused, missed
// (the last action older than the cadence the server's next action times show, plus a grace),
// absent though the configuration implies it; from plain descriptions, no Temporal.
import { validateConfig } from '../../common/config.js';
import { scheduleIssues, scheduleView, type DescribedSchedule, type ScheduleView } from '../../engine/scheduleHealth.js';

const NOW = Date.parse('2026-11-29T12:00:00Z');
const H = 3_600_000;
const iso = (t: number) => new Date(t).toISOString();
const config = (patch: Record<string, unknown> = {}) =>
  validateConfig(
    {
      host: 'db-1',
      temporal: { address: '127.0.0.1:7233', namespace: 'default' },
      database: { url: 'postgres://app@127.0.0.1:5432/app' },
      repositories: { local: { type: 'filesystem', path: '/tmp/backupctl-unit-local' } },
      encryption: { publicKeyFile: '/tmp/backupctl-unit-public.asc' },
      ...patch,
    },
    'test',
  );
/** Acting every `every` ms: its next times from the next round one on, its last one `lastAgo` before now. */
const view = (every: number, lastAgo: number | undefined, over: Partial<ScheduleView> = {}): ScheduleView => {
  const next = Math.ceil(NOW / every) * every;
  return {
    paused: false,
    createdAt: iso(NOW - 400 * 24 * H),
    ...(lastAgo === undefined ? {} : { lastActionAt: iso(NOW - lastAgo) }),
    nextActionTimes: Array.from({ length: 10 }, (_, i) => iso(next + i * every)),
    ...over,
  };
};
/** The three schedules a plain configuration implies, each acting daily and on time. */
const healthy = (): Record<string, DescribedSchedule> => ({
  'backup-database-nightly': view(24 * H, 10 * H),
  'verify-backup-weekly': view(7 * 24 * H, 3 * 24 * H),
  'apply-retention-daily': view(24 * H, 6 * H),
});
const keys = (described: Record<string, DescribedSchedule>, c = config()) => scheduleIssues(c, described, NOW).map((p) => p.key);

test('the implied schedules there, acting at their cadence: no problem; the drill and base ones are not implied here', () => {
  expect(keys(healthy())).toEqual([]);
});

test('a paused schedule is a problem with its note, and is not called missed too', () => {
  const described = { ...healthy(), 'backup-database-nightly': view(24 * H, 30 * 24 * H, { paused: true, note: 'disk swap, back Monday' }) };
  const problems = scheduleIssues(config(), described, NOW);
  expect(problems.map((p) => p.key)).toEqual(['schedule.paused:backup-database-nightly']);
  expect(problems[0].message).toContain('disk swap, back Monday');
});

// Paused by the configuration (schedules.<name>.paused: true) is the operator's statement, made
// where every change is reviewed: not a problem to remind of every few hours. What it costs
// (a stale database backup, say) is still told by the component's own check.
test('paused as the configuration says: no problem; paused by hand while the configuration says run: a problem', () => {
  const described = { ...healthy(), 'backup-database-nightly': view(24 * H, 30 * 24 * H, { paused: true, note: 'paused by backupctl: schedules.database.paused' }) };
  expect(keys(described, config({ schedules: { database: { paused: true } } }))).toEqual([]);
  expect(keys(described)).toEqual(['schedule.paused:backup-database-nightly']);
});

test('missed: the last action older than the cadence plus the larger of an hour and a tenth of it', () => {
  // Daily: a grace of 2.4 hours.
  expect(keys({ ...healthy(), 'backup-database-nightly': view(24 * H, 26.3 * H) })).toEqual([]);
  const late = { ...healthy(), 'backup-database-nightly': view(24 * H, 26.5 * H) };
  const [problem] = scheduleIssues(config(), late, NOW);
  expect(problem.key).toBe('schedule.missed:backup-database-nightly');
  // It names the last action and when the next was expected.
  expect(problem.message).toContain(iso(NOW - 26.5 * H));
  expect(problem.message).toContain(iso(NOW - 2.5 * H));
  // Hourly: the grace is an hour, not six minutes.
  expect(keys({ ...healthy(), 'apply-retention-daily': view(H, 1.9 * H) })).toEqual([]);
  expect(keys({ ...healthy(), 'apply-retention-daily': view(H, 2.1 * H) })).toEqual(['schedule.missed:apply-retention-daily']);
});

test('never acted: measured from its creation', () => {
  expect(keys({ ...healthy(), 'verify-backup-weekly': view(7 * 24 * H, undefined, { createdAt: iso(NOW - 3 * 24 * H) }) })).toEqual([]);
  expect(keys({ ...healthy(), 'verify-backup-weekly': view(7 * 24 * H, undefined, { createdAt: iso(NOW - 8 * 24 * H) }) })).toEqual(['schedule.missed:verify-backup-weekly']);
});

test('an irregular spec (weekdays): the longest gap between its next times is its cadence, so a weekend is no miss', () => {
  // Next: Monday to Friday at 02:00, then Monday again; the last run was Friday 02:00, 2.4 days ago.
  const monday = Date.parse('2026-11-30T02:00:00Z');
  const days = [0, 1, 2, 3, 4, 7, 8, 9, 10, 11].map((d) => iso(monday + d * 24 * H));
  const weekdays = { ...view(24 * H, 0), lastActionAt: iso(monday - 3 * 24 * H), nextActionTimes: days };
  expect(keys({ ...healthy(), 'backup-database-nightly': weekdays })).toEqual([]);
  expect(keys({ ...healthy(), 'backup-database-nightly': { ...weekdays, lastActionAt: iso(monday - 7 * 24 * H) } })).toEqual(['schedule.missed:backup-database-nightly']);
});

test('no cadence to judge by (one next time only): not called missed', () => {
  expect(keys({ ...healthy(), 'backup-database-nightly': view(24 * H, 90 * 24 * H, { nextActionTimes: [iso(NOW + H)] }) })).toEqual([]);
});

// Our specs never end: no next time at all is a schedule changed by hand (an end time set,
// its remaining actions used up) that will never start these runs again, paused in all but name.
test('not paused but with no next action time: it will never act again, a problem', () => {
  const problems = scheduleIssues(config(), { ...healthy(), 'backup-database-nightly': view(24 * H, 90 * 24 * H, { nextActionTimes: [] }) }, NOW);
  expect(problems.map((p) => p.key)).toEqual(['schedule.idle:backup-database-nightly']);
  expect(problems[0].message).toContain('no next action');
});

// `schedules apply` leaves alone a schedule of our id that it did not make (no managedBy memo):
// it starts someone else's workflow, at someone else's times; acting on time says nothing of ours.
test('a schedule of our id not made by backupctl: a problem, whatever its cadence', () => {
  const foreign = { ...view(24 * H, 10 * H), foreign: 'someoneElsesWorkflow' };
  const problems = scheduleIssues(config(), { ...healthy(), 'backup-database-nightly': foreign }, NOW);
  expect(problems.map((p) => p.key)).toEqual(['schedule.foreign:backup-database-nightly']);
  expect(problems[0].message).toContain('someoneElsesWorkflow');
  // One of ours from before the memo (it starts our workflow; apply adopts it): judged as ours.
  expect(keys({ ...healthy(), 'backup-database-nightly': { ...view(24 * H, 10 * H), foreign: 'backupDatabase' } })).toEqual([]);
});

test('scheduleView: a description without our memo is foreign, with the workflow it starts; ours is not', () => {
  const d = (memo?: Record<string, unknown>) => ({
    memo,
    action: { type: 'startWorkflow' as const, workflowType: 'backupDatabase' },
    state: { paused: false },
    info: { createdAt: new Date(NOW - H), recentActions: [], nextActionTimes: [new Date(NOW + H)] },
  });
  expect(scheduleView(d({ managedBy: 'backupctl' })).foreign).toBeUndefined();
  expect(scheduleView(d()).foreign).toBe('backupDatabase');
  expect(scheduleView(d({ managedBy: 'someone' })).foreign).toBe('backupDatabase');
});

test('absent though implied: a problem; the drill absent where it is not implied: none; implied once drill.host is set', () => {
  const rest = healthy();
  delete rest['verify-backup-weekly'];
  expect(keys(rest)).toEqual(['schedule.absent:verify-backup-weekly']);
  expect(keys({ ...healthy(), 'verify-backup-weekly': undefined })).toEqual(['schedule.absent:verify-backup-weekly']);
  const withDrill = config({ drill: { host: 'drill-1', repository: 'local' } });
  expect(keys(healthy(), withDrill)).toEqual(['schedule.absent:recovery-drill-monthly']);
});

test('a schedule that cannot be described: said so, under its own key', () => {
  const problems = scheduleIssues(config(), { ...healthy(), 'apply-retention-daily': { error: 'permission denied' } }, NOW);
  expect(problems.map((p) => p.key)).toEqual(['schedule.unreadable:apply-retention-daily']);
  expect(problems[0].message).toContain('permission denied');
});
