// Attack round 3 (README promise 6: nothing hangs). The progress probe of a restore's post-data
// and of an inspection now counts only sessions whose application_name is the attempt's tag
// (backupctl-<sha256 prefix>). That tag is no secret: pg_stat_activity shows every session's
// application_name to EVERY role that may log in (only query text and state are hidden from
// others). A stranger with no privilege at all reads the tag while the attempt runs, opens
// its own session on the database under that name (PUBLIC may connect to a new database) and
// sleeps: the probe takes the stranger's pg_sleep for the attempt's own work, and a stuck
// inspection heartbeats on for as long as the stranger likes (24 h start-to-close).
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
  stall = await startInspectionStall('attack3-probetag', async (c) => {
    // A role with nothing: not superuser, no pg_read_all_stats, no grant on anything.
    await c.query('postgres', 'CREATE ROLE stranger LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE');
  });
  ({ cluster, config, dir } = stall);
}, 60_000);

afterAll(async () => {
  await stall?.stop();
});

test("an unprivileged stranger reads the attempt's tag from pg_stat_activity and keeps a stuck inspection heartbeating", async () => {
  // The stall: a session holds the table (any long lock: a maintenance job, a forgotten
  // transaction). The inspection's count waits on it and makes no progress of its own.
  const blocker = new pg.Client({ connectionString: cluster.url('inspected') });
  blocker.on('error', () => undefined);
  await blocker.connect();
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');

  const env = new MockActivityEnvironment({ attempt: 1, activityId: '7', workflowExecution: { workflowId: 'attack3-probe', runId: '0e9f2c3a-1111-4222-8333-944445555666' } } as any);
  const beats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d));
  const restore = createRestoreActivities({ config, repositories: [new FilesystemRepository('local', path.join(dir, 'local'))], binDir: cluster.binDir });
  const inspecting = env.run(restore.inspectRestoredDatabase, { database: 'inspected', expectedRowCounts: { t: 1000 }, amcheck: false });
  inspecting.catch(() => undefined);

  const stranger = new pg.Client({ connectionString: cluster.url('postgres', 'stranger') });
  stranger.on('error', () => undefined);
  let imposter: pg.Client | undefined;
  let sleeping: Promise<unknown> = Promise.resolve();
  try {
    await stranger.connect();
    // What the stranger sees of the other sessions on that database: the tag, in the clear.
    let tag: string | undefined;
    const deadline = Date.now() + 20_000;
    while (!tag) {
      const { rows } = await stranger.query<{ application_name: string }>("SELECT application_name FROM pg_stat_activity WHERE datname = 'inspected' AND application_name LIKE 'backupctl-%'");
      tag = rows[0]?.application_name;
      if (Date.now() > deadline) throw new Error('the tag never showed in pg_stat_activity');
      if (!tag) await new Promise((r) => setTimeout(r, 100));
    }
    const isSuperuser = (await stranger.query<{ s: string }>("SELECT current_setting('is_superuser') AS s")).rows[0].s;
    expect({ isSuperuser, tag }).toEqual({ isSuperuser: 'off', tag: expect.stringMatching(/^backupctl-[0-9a-f]{16}$/) });

    // The imposter: the stranger's own session on the database, under the stolen name.
    imposter = new pg.Client({ connectionString: cluster.url('inspected', 'stranger'), application_name: tag });
    imposter.on('error', () => undefined);
    await imposter.connect();
    sleeping = imposter.query('SELECT pg_sleep(600)').catch(() => undefined);

    // Make sure the inspection is really stuck on the lock.
    for (;;) {
      const { rows } = await cluster.query('postgres', "SELECT 1 FROM pg_stat_activity WHERE datname = 'inspected' AND wait_event_type = 'Lock'");
      if (rows.length) break;
      if (Date.now() > deadline) throw new Error('the inspection never waited on the lock');
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1500));
    beats.length = 0;
    await new Promise((r) => setTimeout(r, 6000));
    // Stuck: it must send nothing, so the 15 s heartbeat timeout ends it.
    expect({ heartbeatsWhileStuck: beats.length }).toEqual({ heartbeatsWhileStuck: 0 });
  } finally {
    env.cancel();
    await cluster.query('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'inspected' AND pid <> pg_backend_pid()");
    await sleeping;
    await imposter?.end().catch(() => undefined);
    await stranger.end().catch(() => undefined);
    await blocker.end().catch(() => undefined);
    await inspecting.catch(() => undefined);
  }
}, 60_000);
