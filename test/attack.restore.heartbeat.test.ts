// Attack (issue 8, item 8 / README promise: nothing hangs): an activity that moves no bytes
// (the restore's post-data, the inspection) proves its progress by a probe: "is a backend on
// the database working?". Had the probe counted every session on the database, a stranger's
// long query there (any role that may connect, or a monitoring job) would keep a stuck
// inspection heartbeating for its whole 24-hour start-to-close timeout. The probe must count
// only this attempt's own sessions.
import path from 'node:path';
import pg from 'pg';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRestoreActivities } from '../activities/restore.js';
import { FilesystemRepository } from '../engine/storage/filesystem.js';
import type { Config } from '../common/config.js';
import type { PgCluster } from './fixtures/postgres.js';
import { startInspectionStall, type InspectionStall } from './fixtures/inspectionStall.js';

let stall: InspectionStall;
let cluster: PgCluster;
let config: Config;
let dir: string;

beforeAll(async () => {
  stall = await startInspectionStall('attack-heartbeat');
  ({ cluster, config, dir } = stall);
}, 60_000);

afterAll(async () => {
  await stall?.stop();
});

test("a stranger's long query on the database does not keep a stuck inspection heartbeating", async () => {
  // The stranger holds the table and then sleeps in the same transaction: one session, active
  // (pg_sleep waits on a timeout, not on its client or a lock), for as long as it likes.
  const stranger = new pg.Client({ connectionString: cluster.url('inspected') });
  stranger.on('error', () => undefined);
  await stranger.connect();
  await stranger.query('BEGIN');
  await stranger.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
  const sleeping = stranger.query('SELECT pg_sleep(600)').catch(() => undefined);

  const env = new MockActivityEnvironment({ attempt: 1, workflowExecution: { workflowId: 'attack-heartbeat', runId: '11111111-2222-3333-4444-555555555555' } });
  const beats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d));
  const restore = createRestoreActivities({ config, repositories: [new FilesystemRepository('local', path.join(dir, 'local'))], binDir: cluster.binDir });
  const inspecting = env.run(restore.inspectRestoredDatabase, { database: 'inspected', expectedRowCounts: { t: 1000 }, amcheck: false });
  inspecting.catch(() => undefined);
  try {
    // The inspection's count waits on the stranger's lock: no progress of its own.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const { rows } = await cluster.query('postgres', "SELECT 1 FROM pg_stat_activity WHERE datname = 'inspected' AND wait_event_type = 'Lock'");
      if (rows.length) break;
      if (Date.now() > deadline) throw new Error('the inspection never waited on the lock');
      await new Promise((r) => setTimeout(r, 100));
    }
    // The first tick always beats once (the start is news); after it, only progress counts.
    await new Promise((r) => setTimeout(r, 1500));
    beats.length = 0;
    await new Promise((r) => setTimeout(r, 6000));
    expect({ heartbeatsWhileStuck: beats.length }).toEqual({ heartbeatsWhileStuck: 0 });
  } finally {
    env.cancel();
    await cluster.query('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'inspected' AND pid <> pg_backend_pid()");
    await sleeping;
    await stranger.end().catch(() => undefined);
    await inspecting.catch(() => undefined);
  }
}, 60_000);

test("the inspection's own work still counts: a slow check of its own heartbeats", async () => {
  const slowConfig: Config = { ...config, restore: { ...config.restore, checks: [{ name: 'slow', sql: 'SELECT count(*) = 0 FROM pg_sleep(4)' } as any] } };
  const env = new MockActivityEnvironment({ attempt: 1, workflowExecution: { workflowId: 'attack-heartbeat', runId: '11111111-2222-3333-4444-555555555556' } });
  const beats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d));
  const restore = createRestoreActivities({ config: slowConfig, repositories: [], binDir: cluster.binDir });
  await env.run(restore.inspectRestoredDatabase, { database: 'inspected', expectedRowCounts: { t: 1000 }, amcheck: false });
  expect(beats.length).toBeGreaterThanOrEqual(2);
}, 60_000);
