// Found by the chaos suite (restore --replace + "PostgreSQL restarted (fast)" mid-swap): the
// swap set ALLOW_CONNECTIONS false on the live database, then lost its connection to the
// restart. The lost connection was taken for a permanent SwapFailed ("terminating connection
// due to administrator command"), and the re-enabling ALTER ran on the same dead connection,
// its failure swallowed: the live database was left refusing every connection, an outage made
// by the backup tool. A lost connection is now retryable, ALLOW_CONNECTIONS is given back on a
// fresh connection (while the server restarts) and at the start of every attempt, and a retry
// completes the swap or recognises it as done, even when its COMMIT went through unanswered.
import net from 'node:net';
import pg from 'pg';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRestoreActivities } from '../activities/restore.js';
import { createLiveAccessActivities } from '../activities/liveAccess.js';
import { markerFor } from '../engine/restoreTarget.js';
import { validateConfig, type Config } from '../common/config.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';

const LIVE = 'shop';
const REPLACEMENT = 'shop_restore_20261128_151553';
const KEEP_AS = 'shop_pre_restore_20261128_151553';
const WORKFLOW_ID = 'swap-connection-loss';
let cluster: PgCluster;
let runCount = 0;

beforeAll(async () => {
  cluster = await startCluster();
  // The fixture commits asynchronously, so an immediate restart (a crash) would lose the swap's
  // ALLOW_CONNECTIONS false, as a production server does not.
  await cluster.query('postgres', 'ALTER SYSTEM SET synchronous_commit = on');
  await cluster.query('postgres', 'SELECT pg_reload_conf()');
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

function configFor(serverPort: number): Config {
  return validateConfig(
    {
      host: 'swap-connection-loss',
      temporal: { address: '127.0.0.1:1', namespace: 'default' },
      database: { url: cluster.url(LIVE) },
      repositories: { local: { type: 'filesystem', path: '/nonexistent/swap-connection-loss' } },
      encryption: { publicKeyFile: '/nonexistent/swap-connection-loss.asc' },
      restore: { serverUrl: `postgres://postgres@127.0.0.1:${serverPort}/postgres` },
      logLevel: 'warn',
    },
    'test config',
  );
}

function attempt(runId: string, n: number): MockActivityEnvironment {
  return new MockActivityEnvironment({ attempt: n, activityId: '9', workflowNamespace: 'default', workflowExecution: { workflowId: WORKFLOW_ID, runId } } as Partial<Info>);
}

/** A live database and this run's restored replacement, each holding one row that names it. */
async function databases(): Promise<string> {
  const runId = `run-${++runCount}-0000`;
  for (const name of [LIVE, REPLACEMENT, KEEP_AS]) {
    await cluster.query('postgres', `ALTER DATABASE "${name}" WITH ALLOW_CONNECTIONS true`).catch(() => undefined);
    await cluster.query('postgres', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  }
  for (const [name, row] of [
    [LIVE, 'old live'],
    [REPLACEMENT, 'restored'],
  ]) {
    await cluster.createDatabase(name);
    await cluster.query(name, `CREATE TABLE t (v text); INSERT INTO t VALUES ('${row}')`);
  }
  await cluster.query('postgres', `COMMENT ON DATABASE "${REPLACEMENT}" IS '${markerFor({ workflowId: WORKFLOW_ID, runId, attempt: 1 }, 'restored from backup b1')}'`);
  return runId;
}

/** What each name holds, or why it cannot be read. */
async function readable(name: string): Promise<string> {
  return cluster.query<{ v: string }>(name, 'SELECT v FROM t').then(
    (r) => r.rows[0].v,
    (err: Error) => err.message,
  );
}

async function state() {
  const { rows } = await cluster.query<{ datname: string; datallowconn: boolean }>('postgres', 'SELECT datname, datallowconn FROM pg_database WHERE datname = ANY($1) ORDER BY datname', [[LIVE, REPLACEMENT, KEEP_AS]]);
  return { databases: Object.fromEntries(rows.map((r) => [r.datname, r.datallowconn ? 'accepts connections' : 'REFUSES connections'])), live: await readable(LIVE), kept: await readable(KEEP_AS) };
}

const swapped = {
  databases: { [LIVE]: 'accepts connections', [KEEP_AS]: 'accepts connections' },
  live: 'restored',
  kept: 'old live',
};

const input = { live: LIVE, replacement: REPLACEMENT, keepAs: KEEP_AS };

type Outcome = { type?: string; nonRetryable?: boolean; message?: string } | { done: unknown };
const outcome = (p: Promise<unknown>): Promise<Outcome> =>
  p.then(
    (done) => ({ done }),
    (err: { type?: string; nonRetryable?: boolean; message?: string }) => ({ type: err.type, nonRetryable: err.nonRetryable, message: err.message }),
  );

/**
 * Holds the replacement's database lock from another session (COMMENT ON DATABASE in an open
 * transaction), then starts the swap, so the swap stops inside its transaction, after
 * ALLOW_CONNECTIONS false and the first rename, waiting on the second; returns once the swap's
 * session waits there. The lock is taken before the swap starts: started first, a fast swap
 * could finish before the lock was held (seen once in CI). If the swap never waits, the lock is
 * given back, so the tests after this one are not left waiting on it.
 */
async function stopSwapMidTransaction(start: () => Promise<Outcome>): Promise<{ swapPid: number; blocker: pg.Client; first: Promise<Outcome> }> {
  const blocker = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres' });
  blocker.on('error', () => undefined);
  await blocker.connect();
  const { rows } = await blocker.query<{ c: string }>("SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = $1", [REPLACEMENT]);
  await blocker.query('BEGIN');
  await blocker.query(`COMMENT ON DATABASE "${REPLACEMENT}" IS '${rows[0].c}'`);
  const first = start();
  const deadline = Date.now() + 20_000;
  for (;;) {
    // pg_locks, not pg_stat_activity: a session waiting for the lock shows there at once.
    const { rows: waiting } = await blocker.query<{ pid: number }>(
      "SELECT pid FROM pg_locks WHERE locktype = 'object' AND classid = 'pg_database'::regclass AND objid = (SELECT oid FROM pg_database WHERE datname = $1) AND NOT granted",
      [REPLACEMENT],
    );
    if (waiting.length) {
      const { rows: allow } = await blocker.query<{ datallowconn: boolean }>('SELECT datallowconn FROM pg_database WHERE datname = $1', [LIVE]);
      // The moment the chaos run hit: the live database refuses connections.
      expect(allow[0].datallowconn).toBe(false);
      return { swapPid: waiting[0].pid, blocker, first };
    }
    if (Date.now() > deadline) {
      const { rows: all } = await blocker.query('SELECT l.pid, l.locktype, l.objid, l.mode, l.granted, a.application_name, a.query FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.pid <> pg_backend_pid()');
      await blocker.query('ROLLBACK');
      await blocker.end();
      throw new Error(`the swap never reached its renames: ${JSON.stringify({ sessions: all, swap: await first })}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("the swap's session terminated mid-swap: retryable, the live database accepts connections, and the retry swaps", async () => {
  const runId = await databases();
  const restore = createRestoreActivities({ config: configFor(cluster.port), repositories: [] });
  const { swapPid, blocker, first } = await stopSwapMidTransaction(() => outcome(attempt(runId, 1).run(restore.swapLiveDatabase, input)));
  await cluster.query('postgres', 'SELECT pg_terminate_backend($1)', [swapPid]);
  await blocker.query('ROLLBACK');
  await blocker.end();
  const failed = await first;
  expect({ failed, after: await state() }).toEqual({
    failed: expect.objectContaining({ type: 'DatabaseUnreachable', nonRetryable: false }),
    after: { databases: { [LIVE]: 'accepts connections', [REPLACEMENT]: 'accepts connections' }, live: 'old live', kept: expect.stringMatching(/does not exist/) },
  });
  const retried = await outcome(attempt(runId, 2).run(restore.swapLiveDatabase, input));
  expect({ retried, after: await state() }).toEqual({ retried: { done: expect.objectContaining({ live: LIVE, keptAs: KEEP_AS }) }, after: swapped });
}, 120_000);

test.each(['fast', 'immediate'] as const)('PostgreSQL restarted (%s) mid-swap: retryable, the live database accepts connections, and the retry swaps', async (mode) => {
  const runId = await databases();
  const restore = createRestoreActivities({ config: configFor(cluster.port), repositories: [] });
  const { blocker, first } = await stopSwapMidTransaction(() => outcome(attempt(runId, 1).run(restore.swapLiveDatabase, input)));
  await cluster.restart(mode);
  await blocker.end().catch(() => undefined);
  const failed = await first;
  expect({ failed, after: await state() }).toEqual({
    failed: expect.objectContaining({ type: 'DatabaseUnreachable', nonRetryable: false }),
    after: { databases: { [LIVE]: 'accepts connections', [REPLACEMENT]: 'accepts connections' }, live: 'old live', kept: expect.stringMatching(/does not exist/) },
  });
  const retried = await outcome(attempt(runId, 2).run(restore.swapLiveDatabase, input));
  expect({ retried, after: await state() }).toEqual({ retried: { done: expect.objectContaining({ live: LIVE, keptAs: KEEP_AS }) }, after: swapped });
}, 120_000);

/**
 * A TCP proxy to the cluster that, once armed, passes the first COMMIT on to the server and
 * cuts the connection before its answer comes back: the swap committed, unanswered.
 */
async function commitAnswerLost(): Promise<{ port: number; close(): Promise<void> }> {
  let armed = true;
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const server = net.connect(cluster.port, cluster.host);
    sockets.add(client).add(server);
    let cutOnAnswer = false;
    client.on('data', (chunk) => {
      if (armed && chunk[0] === 0x51 && chunk.includes(Buffer.from('COMMIT\0'))) {
        armed = false;
        cutOnAnswer = true;
      }
      server.write(chunk);
    });
    server.on('data', (chunk) => {
      if (cutOnAnswer) {
        client.destroy();
        server.destroy();
        return;
      }
      client.write(chunk);
    });
    for (const s of [client, server]) {
      s.on('error', () => undefined);
      s.on('close', () => (s === client ? server : client).destroy());
    }
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    port: (proxy.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}

test("the swap's COMMIT went through but its answer was lost: retryable, both databases accept connections, and the retry recognises the swap as done", async () => {
  const runId = await databases();
  const proxy = await commitAnswerLost();
  try {
    const restore = createRestoreActivities({ config: configFor(proxy.port), repositories: [] });
    const failed = await outcome(attempt(runId, 1).run(restore.swapLiveDatabase, input));
    expect({ failed, after: await state() }).toEqual({ failed: expect.objectContaining({ type: 'DatabaseUnreachable', nonRetryable: false }), after: swapped });
    const retried = await outcome(attempt(runId, 2).run(restore.swapLiveDatabase, input));
    expect({ retried, after: await state() }).toEqual({ retried: { done: { live: LIVE, keptAs: KEEP_AS, sessionsEnded: 0 } }, after: swapped });
  } finally {
    await proxy.close();
  }
}, 120_000);

test('a worker killed after the COMMIT, before re-enabling: the retry recognises the swap as done and lets the kept database accept connections', async () => {
  const runId = await databases();
  const restore = createRestoreActivities({ config: configFor(cluster.port), repositories: [] });
  await attempt(runId, 1).run(restore.swapLiveDatabase, input);
  // What the killed worker left: the old live database, renamed, still refusing connections.
  await cluster.query('postgres', `ALTER DATABASE "${KEEP_AS}" WITH ALLOW_CONNECTIONS false`);
  const retried = await outcome(attempt(runId, 2).run(restore.swapLiveDatabase, input));
  expect({ retried, after: await state() }).toEqual({ retried: { done: { live: LIVE, keptAs: KEEP_AS, sessionsEnded: 0 } }, after: swapped });
}, 60_000);

test('a worker killed between ALLOW_CONNECTIONS false and its re-enabling, then a refusal: the live database accepts connections again, the refusal stays permanent', async () => {
  const runId = await databases();
  const restore = createRestoreActivities({ config: configFor(cluster.port), repositories: [] });
  // What a killed attempt left; meanwhile the replacement is no longer this run's.
  await cluster.query('postgres', `ALTER DATABASE "${LIVE}" WITH ALLOW_CONNECTIONS false`);
  await cluster.query('postgres', `COMMENT ON DATABASE "${REPLACEMENT}" IS 'someone else''s'`);
  const failed = await outcome(attempt(runId, 2).run(restore.swapLiveDatabase, input));
  expect({ failed, after: await state() }).toEqual({
    failed: expect.objectContaining({ type: 'SwapFailed', nonRetryable: true, message: expect.stringMatching(/was not restored by this run/) }),
    after: { databases: { [LIVE]: 'accepts connections', [REPLACEMENT]: 'accepts connections' }, live: 'old live', kept: expect.stringMatching(/does not exist/) },
  });
}, 60_000);

test('a swap that looks done but was not done by this run is refused, permanently, and nothing is touched', async () => {
  const runId = await databases();
  const restore = createRestoreActivities({ config: configFor(cluster.port), repositories: [] });
  // Someone else's database under the name this run would keep the old live one as.
  await cluster.query('postgres', `ALTER DATABASE "${REPLACEMENT}" RENAME TO "${KEEP_AS}"`);
  await cluster.query('postgres', `ALTER DATABASE "${KEEP_AS}" WITH ALLOW_CONNECTIONS false`);
  const failed = await outcome(attempt(runId, 1).run(restore.swapLiveDatabase, input));
  expect({ failed, databases: (await state()).databases, live: await readable(LIVE) }).toEqual({
    failed: expect.objectContaining({ type: 'SwapFailed', nonRetryable: true, message: expect.stringMatching(/was not swapped in by this run/) }),
    databases: { [LIVE]: 'accepts connections', [KEEP_AS]: 'REFUSES connections' },
    live: 'old live',
  });
}, 60_000);

test("a swap whose server stayed away past all its retries: the workflow's compensation lets the live database in again, and nothing else", async () => {
  await databases();
  const access = createLiveAccessActivities({ config: configFor(cluster.port) });
  // What the swap left when every attempt's reopening found the server gone.
  await cluster.query('postgres', `ALTER DATABASE "${LIVE}" WITH ALLOW_CONNECTIONS false`);
  // A database of someone else's that refuses connections on purpose stays as it is.
  await cluster.query('postgres', 'DROP DATABASE IF EXISTS "closed_on_purpose"');
  await cluster.createDatabase('closed_on_purpose');
  await cluster.query('postgres', 'ALTER DATABASE "closed_on_purpose" WITH ALLOW_CONNECTIONS false');
  const reopened = await new MockActivityEnvironment().run(access.allowLiveDatabaseConnections, { live: LIVE, keepAs: KEEP_AS });
  const { rows } = await cluster.query<{ datallowconn: boolean }>('postgres', "SELECT datallowconn FROM pg_database WHERE datname = 'closed_on_purpose'");
  expect({ reopened, after: await state(), closedOnPurpose: rows[0].datallowconn }).toEqual({
    reopened: [LIVE],
    after: { databases: { [LIVE]: 'accepts connections', [REPLACEMENT]: 'accepts connections' }, live: 'old live', kept: expect.stringMatching(/does not exist/) },
    closedOnPurpose: false,
  });
  // Only the configured live database.
  const refused = await outcome(new MockActivityEnvironment().run(access.allowLiveDatabaseConnections, { live: 'closed_on_purpose', keepAs: KEEP_AS }));
  expect(refused).toEqual(expect.objectContaining({ type: 'SwapFailed', nonRetryable: true, message: expect.stringMatching(/is not the configured live database/) }));
  await cluster.query('postgres', 'ALTER DATABASE "closed_on_purpose" WITH ALLOW_CONNECTIONS true');
  await cluster.query('postgres', 'DROP DATABASE "closed_on_purpose"');
}, 60_000);

// Attack (hostile review of the compensation): the swap refuses, permanently, when the name it
// would keep the old live database as is taken by someone else's database; the workflow then
// runs its compensation, which let in the live database AND whatever held that name. A
// database its owner had closed on purpose (ALLOW_CONNECTIONS false) was opened to everyone
// by a restore that failed. The kept name is reopened only when this run's swap went through.
test("a swap refused because another's database, closed on purpose, holds the kept name: the compensation lets in the live database only", async () => {
  const runId = await databases();
  const restore = createRestoreActivities({ config: configFor(cluster.port), repositories: [] });
  const access = createLiveAccessActivities({ config: configFor(cluster.port) });
  await cluster.createDatabase(KEEP_AS);
  await cluster.query(KEEP_AS, "CREATE TABLE t (v text); INSERT INTO t VALUES ('another''s')");
  await cluster.query('postgres', `ALTER DATABASE "${KEEP_AS}" WITH ALLOW_CONNECTIONS false`);
  const refused = await outcome(attempt(runId, 1).run(restore.swapLiveDatabase, input));
  expect(refused).toEqual(expect.objectContaining({ type: 'SwapFailed', nonRetryable: true }));
  // What a swap whose server went away would have left on the live database.
  await cluster.query('postgres', `ALTER DATABASE "${LIVE}" WITH ALLOW_CONNECTIONS false`);
  const reopened = await attempt(runId, 1).run(access.allowLiveDatabaseConnections, { live: LIVE, keepAs: KEEP_AS });
  expect({ reopened, databases: (await state()).databases, live: await readable(LIVE) }).toEqual({
    reopened: [LIVE],
    databases: { [LIVE]: 'accepts connections', [REPLACEMENT]: 'accepts connections', [KEEP_AS]: 'REFUSES connections' },
    live: 'old live',
  });
}, 60_000);

test('a swap of this run that went through, its server away before it could reopen: the compensation lets in the live database and the kept one', async () => {
  const runId = await databases();
  const restore = createRestoreActivities({ config: configFor(cluster.port), repositories: [] });
  const access = createLiveAccessActivities({ config: configFor(cluster.port) });
  expect(await attempt(runId, 1).run(restore.swapLiveDatabase, input)).toEqual({ live: LIVE, keptAs: KEEP_AS, sessionsEnded: 0 });
  // What the swap left when the server went away after its COMMIT, past all its retries.
  await cluster.query('postgres', `ALTER DATABASE "${KEEP_AS}" WITH ALLOW_CONNECTIONS false`);
  await cluster.query('postgres', `ALTER DATABASE "${LIVE}" WITH ALLOW_CONNECTIONS false`);
  // Another run's compensation (the same names, a later run) reopens the live database only.
  expect(await attempt('run-other-0000', 1).run(access.allowLiveDatabaseConnections, { live: LIVE, keepAs: KEEP_AS })).toEqual([LIVE]);
  const reopened = await attempt(runId, 1).run(access.allowLiveDatabaseConnections, { live: LIVE, keepAs: KEEP_AS });
  expect({ reopened, after: await state() }).toEqual({ reopened: [KEEP_AS], after: swapped });
}, 60_000);
