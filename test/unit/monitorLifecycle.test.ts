// The life of a problem as the monitor tells it (workflows/monitorLifecycle.ts): opened once,
// reminded at the interval while it lasts, resolved once; a failed run told once; a channel
// that failed retryably gets the alert again, alone.
import { deliveriesDone, failedRunsSeen, initialState, lookedAt } from '../../workflows/monitorLifecycle.js';

const T0 = Date.parse('2026-11-29T12:00:00Z');
const MIN = 60_000;
const stale = { key: 'database.stale', message: 'the newest database backup is 26.0 hours old (at most 25 expected)' };

test('opened once, reminded every interval while it lasts (not at every look), resolved once when two looks in a row miss it', () => {
  const state = initialState(T0);
  const events = (found: { key: string; message: string }[], at: number) => lookedAt(state, found, at, 60 * MIN, 'db-1').map((a) => `${a.event} ${a.key}`);
  expect(events([stale], T0)).toEqual(['opened database.stale']);
  for (let t = 15; t < 60; t += 15) expect(events([{ ...stale, message: 'the newest database backup is 27.0 hours old' }], T0 + t * MIN)).toEqual([]);
  expect(events([stale], T0 + 60 * MIN)).toEqual(['reminder database.stale']);
  expect(events([stale], T0 + 75 * MIN)).toEqual([]);
  // Gone from one look: still open; from two in a row: resolved, once.
  expect(events([], T0 + 90 * MIN)).toEqual([]);
  expect(events([], T0 + 105 * MIN)).toEqual(['resolved database.stale']);
  expect(events([], T0 + 120 * MIN)).toEqual([]);
  expect(state.open).toEqual({});
  expect(state.looks).toBe(9);
});

test('an alert says what, where, since when; critical for what can lose data', () => {
  const state = initialState(T0);
  const [opened] = lookedAt(state, [stale, { key: 'source.warning', message: 'w' }], T0, 60 * MIN, 'db-1');
  expect(opened).toMatchObject({ key: 'database.stale', event: 'opened', severity: 'critical', title: stale.message, host: 'db-1', at: '2026-11-29T12:00:00.000Z' });
  expect(state.open['source.warning'].severity).toBe('warning');
  expect(lookedAt(state, [{ key: 'source.warning', message: 'w' }], T0 + MIN, 60 * MIN, 'db-1')).toEqual([]);
  const [resolved] = lookedAt(state, [{ key: 'source.warning', message: 'w' }], T0 + 2 * MIN, 60 * MIN, 'db-1');
  expect(resolved).toMatchObject({ event: 'resolved', key: 'database.stale', openedAt: '2026-11-29T12:00:00.000Z', title: `resolved: ${stale.message}` });
});

test('a failed run is told once, however often it is listed again', () => {
  const state = initialState(T0);
  const run = { workflowId: 'backup-db-2026-11-29', runId: 'r-1', type: 'backupDatabase', closeTime: '2026-11-29T11:59:00Z', failureType: 'DumpFailed', failureMessage: 'pg_dump exited 1', link: 'http://127.0.0.1:8233/namespaces/default/workflows/backup-db-2026-11-29/r-1/history' };
  const first = failedRunsSeen(state, [run], T0, 'db-1');
  expect(first).toEqual([expect.objectContaining({ event: 'failed-run', key: 'run.failed:backup-db-2026-11-29', link: run.link, title: 'backupDatabase backup-db-2026-11-29 failed: DumpFailed: pg_dump exited 1' })]);
  expect(failedRunsSeen(state, [run], T0 + MIN, 'db-1')).toEqual([]);
  expect(state.failedRunsSince).toBe(new Date(T0 + MIN - 10 * MIN).toISOString());
});

test('a channel that failed retryably gets the alert again, alone; one that refused for good does not', () => {
  const state = initialState(T0);
  const [alert] = lookedAt(state, [stale], T0, 60 * MIN, 'db-1');
  deliveriesDone(state, [{ alert, results: [
    { channel: 'email (smtp.example.com:587)', ok: false, error: 'connect ECONNREFUSED', retryable: true },
    { channel: 'webhook ops (hooks.example.com)', ok: true, retryable: false },
    { channel: 'webhook chat (chat.example.com)', ok: false, error: 'HTTP 403', retryable: false },
  ] }], T0);
  expect(state.undelivered).toEqual([{ alert, only: ['email (smtp.example.com:587)'] }]);
  expect(state.channels['email (smtp.example.com:587)']).toMatchObject({ ok: false, error: 'connect ECONNREFUSED' });
  expect(state.channels['webhook ops (hooks.example.com)']).toMatchObject({ ok: true });
});

test('a problem that comes and goes at every look is told once, not opened and resolved again and again', () => {
  const state = initialState(T0);
  const told: string[] = [];
  for (let i = 0; i < 12; i++) told.push(...lookedAt(state, i % 2 === 0 ? [stale] : [], T0 + i * 15 * MIN, 240 * MIN, 'db-1').map((a) => a.event));
  expect(told).toEqual(['opened']);
  expect(state.open['database.stale']).toBeDefined();
});
