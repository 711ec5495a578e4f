// Found by the chaos suite (issue 9: verification + pg-restart-immediate, seed 1593147604): the
// server crashed between a restore's CREATE DATABASE and the COMMENT that marks it as the run's
// (CREATE DATABASE cannot run in a transaction with it). The next attempt found an unmarked
// database under its scratch name, took it for a stranger's, and the verification failed for
// good with TargetDatabaseExists, leaving the database behind. An unmarked database that holds
// nothing is now dropped and made again; one that holds anything is still refused and kept.
import pg from 'pg';
import { createRestoreDatabase, databaseComment, madeBy } from '../engine/restoreTarget.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';

let cluster: PgCluster;
const maker = { workflowId: 'verify-half', runId: '11111111-2222-3333-4444-555555555555', attempt: 2 };

beforeAll(async () => {
  cluster = await startCluster();
  await cluster.query('postgres', 'CREATE DATABASE live_app');
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

async function admin<T>(body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: cluster.url('postgres') });
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end();
  }
}

test('an empty, unmarked database under the target name (a crash between CREATE DATABASE and its mark) is made again under this run\'s mark', async () => {
  await cluster.query('postgres', 'CREATE DATABASE backupctl_verify_half');
  await admin((client) => createRestoreDatabase(client, 'backupctl_verify_half', undefined, maker, 'live_app'));
  const comment = await admin((client) => databaseComment(client, 'backupctl_verify_half'));
  expect(madeBy(comment.comment)).toEqual({ runId: maker.runId, attempt: 2 });
});

test('an unmarked database that holds anything is refused (TargetDatabaseExists) and kept as it was', async () => {
  await cluster.query('postgres', 'CREATE DATABASE someones_db');
  await cluster.query('someones_db', 'CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)');
  await expect(admin((client) => createRestoreDatabase(client, 'someones_db', undefined, maker, 'live_app'))).rejects.toMatchObject({ type: 'TargetDatabaseExists' });
  const { rows } = await cluster.query<{ n: number }>('someones_db', 'SELECT count(*)::int AS n FROM kept');
  expect(rows[0].n).toBe(1);
  // A large object alone counts too.
  await cluster.query('postgres', 'CREATE DATABASE someones_blob');
  await cluster.query('someones_blob', "SELECT lo_from_bytea(0, 'x')");
  await expect(admin((client) => createRestoreDatabase(client, 'someones_blob', undefined, maker, 'live_app'))).rejects.toMatchObject({ type: 'TargetDatabaseExists' });
  // And the live database, empty or not, never.
  await expect(admin((client) => createRestoreDatabase(client, 'live_app', undefined, maker, 'live_app'))).rejects.toMatchObject({ type: 'TargetDatabaseExists' });
});
