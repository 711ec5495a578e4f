// Found in review (issue 9): a restore's wait for a database name's lock (up to 15 s, before
// its progress beats start) sent no heartbeat, and a long restore's heartbeat timeout is 15 s:
// held by a stranger, the attempt timed out just as it was about to say who held the lock
// (TargetDatabaseBusy, naming the session). The wait now says the attempt lives, and what it
// waits for.
import pg from 'pg';
import { MockActivityEnvironment } from '@temporalio/testing';
import '../activities/attemptContext.js';
import { withNameLock } from '../engine/restoreTarget.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';

let cluster: PgCluster;

beforeAll(async () => {
  cluster = await startCluster();
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

test("waiting for a name's lock held by another session heartbeats, saying what it waits for", async () => {
  const stranger = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres' });
  const waiter = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres' });
  await Promise.all([stranger.connect(), waiter.connect()]);
  try {
    await stranger.query("SELECT pg_advisory_lock(hashtext('backupctl-database:shop_restore_1'))");
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (details: unknown) => beats.push(details));
    setTimeout(() => void stranger.query("SELECT pg_advisory_unlock(hashtext('backupctl-database:shop_restore_1'))"), 5_000);
    const got = await env.run(() => withNameLock(waiter, 'shop_restore_1', async () => 'locked'));
    expect(got).toBe('locked');
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(beats[0]).toEqual({ phase: 'waiting-for-name-lock', database: 'shop_restore_1', waiting: true });
  } finally {
    await Promise.all([stranger.end(), waiter.end()]);
  }
}, 60_000);
