// Attacks on the monitor (a hostile operator, or anyone who can write into a repository).
import { slackBody } from '../../engine/alerts/webhookBody.js';
import { boundProblems } from '../../engine/problemBounds.js';
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createMonitorActivities, type MonitorDeps } from '../../activities/monitor.js';
import type { FailedRun } from '../../common/monitorTypes.js';
import { failedRunsSeen, initialState, lookedAt, runIsFull } from '../../workflows/monitorLifecycle.js';

const T0 = Date.parse('2026-11-29T12:00:00Z');
const MIN = 60_000;

// Anyone who can write into a repository can plant manifests: each damaged one is a problem of
// its own key (catalog.damaged:<repository>:<key>), as is each wrongly signed backup. Thousands of
// them used to become thousands of open problems in the monitor's state (carried over
// continue-as-new, past Temporal's 2 MB payload limit) and thousands of alerts (one delivery
// activity each per channel) in one tick, past the history's 50,000 events.
test('thousands of planted manifests: a bounded number of open problems and alerts', () => {
  const planted = Array.from({ length: 5000 }, (_, i) => ({ key: `catalog.damaged:s3:database/bogus-${i}/manifest.json`, message: `manifest database/bogus-${i}/manifest.json in s3 is not valid JSON (3 bytes; truncated or corrupt)` }));
  const badSignatures = Array.from({ length: 3000 }, (_, i) => ({ key: `database.bad-signature:2026-11-29T00-00-00Z-${i}`, message: `backup ${i} is wrongly signed and never used: manifest signature does not match` }));
  const stale = { key: 'database.stale', message: 'the newest database backup is 26.0 hours old (at most 25 expected)' };
  const found = boundProblems([stale, ...planted, ...badSignatures]);
  const state = initialState(T0);
  const alerts = lookedAt(state, found, T0, 60 * MIN, 'db-1');
  expect(alerts.length).toBeLessThanOrEqual(30);
  expect(Object.keys(state.open).length).toBeLessThanOrEqual(30);
  expect(JSON.stringify(state).length).toBeLessThan(20_000);
  // Nothing is hidden: the problem that matters is there, and the planted ones are counted.
  expect(state.open['database.stale']).toBeDefined();
  expect(found.map((p) => p.message).join('\n')).toMatch(/5000/);
  expect(found.map((p) => p.message).join('\n')).toMatch(/3000/);
  // More planted at the next look: no new alert, the count in the message moves.
  const more = boundProblems([stale, ...planted, { key: 'catalog.damaged:s3:database/bogus-x/manifest.json', message: 'm' }, ...badSignatures]);
  expect(lookedAt(state, more, T0 + 15 * MIN, 60 * MIN, 'db-1')).toEqual([]);
});

test('a few problems of a kind stay one alert each (a damaged manifest is still named)', () => {
  const few = [
    { key: 'catalog.damaged:s3:database/a/manifest.json', message: 'a' },
    { key: 'catalog.damaged:s3:database/b/manifest.json', message: 'b' },
    { key: 'storage.full:local', message: 'full' },
  ];
  expect(boundProblems(few)).toEqual(few);
});

test('one problem with an enormous message (a verification listing every damaged copy) is cut short', () => {
  const huge = { key: 'verification.copies-damaged', message: `the newest verification found: ${'object x is damaged; '.repeat(20_000)}` };
  const [bounded] = boundProblems([huge]);
  expect(bounded.key).toBe(huge.key);
  expect(bounded.message.length).toBeLessThanOrEqual(2_000);
});

// A problem's message quotes what a repository's writer chose (an object's key), a failed run's
// title its workflow id: Slack reads <!channel> and <url|text> in the notification's text as well
// as in the blocks, so a planted manifest could page the whole channel or show a link of its own.
test("Slack's control characters from a planted object key are escaped in the notification text too", () => {
  const [found] = lookedAt(initialState(T0), [{ key: 'catalog.damaged:s3:database/<!channel>/manifest.json', message: 'manifest database/<!channel> <https://evil.example/restore|Restore now> & more in s3 is not valid JSON' }], T0, 60 * MIN, 'db-1');
  const body = slackBody(found);
  expect(body.text).not.toMatch(/[<>]/);
  expect(body.text).toContain('&lt;!channel&gt;');
  expect(JSON.stringify(body.blocks)).not.toContain('<!channel>');
});

// A run continued as new only after 1440 ticks. The recorded history (test/histories/monitor.json)
// has 916 events in 49 ticks, ~19 a tick on a quiet day: ~27,000 a run. Every alert waiting for a
// channel that is down is one more delivery activity (3 events or more) at every tick, and up to
// 200 wait: with SMTP down and ten alerts waiting the run passes Temporal's 50,000 events (the
// server then terminates the monitor), with 200 in under two hours. A run ends (continues as
// new) when Temporal suggests it or its history is long, whatever the ticks.
test('the monitor continues as new when its history is long, not only after 1440 ticks', () => {
  expect(runIsFull({ historyLength: 900, historySize: 400_000, continueAsNewSuggested: false })).toBe(false);
  expect(runIsFull({ historyLength: 900, historySize: 400_000, continueAsNewSuggested: true })).toBe(true);
  expect(runIsFull({ historyLength: 20_000, historySize: 400_000, continueAsNewSuggested: false })).toBe(true);
  expect(runIsFull({ historyLength: 900, historySize: 20_000_000, continueAsNewSuggested: false })).toBe(true);
});

// More than 50 failed runs since the last look (a crash loop; the monitor's queue without a
// worker for an hour): the listing comes newest first, the activity kept the first 50, and the
// next look started 10 minutes before now: the older ones were never told.
test('more failed runs than one look tells: every one is told, over the next looks', async () => {
  const now = Date.now();
  const rows = Array.from({ length: 60 }, (_, i) => ({ workflowId: `backup-${i}`, runId: `run-${i}`, type: 'backupDatabase', status: { name: 'FAILED' }, closeTime: new Date(now - 50 * MIN + i * 30_000) }));
  const client = {
    withAbortSignal: <T>(_signal: AbortSignal, fn: () => T) => fn(),
    workflow: {
      list: ({ query }: { query: string }) => {
        const since = Date.parse(/CloseTime > '([^']+)'/.exec(query)![1]);
        const found = rows.filter((r) => r.closeTime.getTime() > since).sort((a, b) => b.closeTime.getTime() - a.closeTime.getTime());
        return (async function* () {
          yield* found;
        })();
      },
      getHandle: () => ({ fetchHistory: async () => ({ events: [] }) }),
    },
  };
  const activities = createMonitorActivities({ config: { temporal: { namespace: 'default' } } } as unknown as MonitorDeps);
  const env = new MockActivityEnvironment(undefined, { client: client as unknown as Client });
  const state = initialState(now - 60 * MIN);
  const told = new Set<string>();
  for (let look = 0; look < 3; look++) {
    const runs: FailedRun[] = await env.run(activities.failedRunsSince, { since: state.failedRunsSince });
    for (const alert of failedRunsSeen(state, runs, now + look * MIN, 'db-1')) told.add(alert.key);
  }
  expect(told.size).toBe(60);
});
