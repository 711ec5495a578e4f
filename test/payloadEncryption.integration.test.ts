// Payload encryption on real components: a Temporal dev server, PostgreSQL, an in-process
// worker and the CLI's client with temporal.payloadEncryption on, and `backupctl codec-server`
// as its own process. What the Temporal service stores (the raw history, the heartbeat
// details of a running activity, failure messages) holds none of the backup's catalog facts;
// the codec server, over HTTP, gives them back. Without the keys, nothing starts.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Payload } from '@temporalio/common';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import pg from 'pg';
import pino from 'pino';
import { projectTool } from '../client/dev/tools.js';
import { connectClient } from '../client/temporalClient.js';
import type { Config } from '../common/config.js';
import { PAYLOAD_KEYS_ENV, PAYLOAD_KEYS_FILE_ENV } from '../workers/payloadKeys.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupDatabase } from '../workflows/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type DatabaseBackupResult } from '../common/types.js';
import { APP_PASSWORD, APP_USER, SOURCE_DB, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { workerProcesses } from './fixtures/workerProcess.js';

const CLI = path.resolve('bin/backupctl.js');
/** A repository name: it travels in the workflow's input and result, and nowhere else. */
const MARKER = 'vaultzq7marker';
const MISSING_DB = 'zq7_missing_db';
const LOCKABLE = 'review_manager_lockable';
const KEYS = `k-2026:${Buffer.alloc(32, 7).toString('base64')}`;
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });

let env: BackupEnv;
let config: Config;
let missingDbConfig: Config;
let configFile: string;
let worker: RunningWorker | undefined;
/** The failing run's worker is a real `backupctl worker` process: it bundles in a child process, as in production. */
const processes = workerProcesses();
let connection: Awaited<ReturnType<typeof connectClient>>;
let client: Client;
let codecServer: { url: string; process: ResultPromise };

beforeAll(async () => {
  env = await startBackupEnv({ users: 20, sessionsPerUser: 2, activitiesPerSession: 2 }, async (db) => {
    await db.query(`CREATE TABLE ${LOCKABLE} (id int)`);
    await db.query(`ALTER TABLE ${LOCKABLE} OWNER TO ${APP_USER}`);
  });
  const encrypted = (raw: any) => {
    raw.temporal.payloadEncryption = { enabled: true };
    raw.repositories = { [MARKER]: raw.repositories.local, nas: raw.repositories.nas };
  };
  config = env.config('enc-1', encrypted);
  missingDbConfig = env.config('enc-2', (raw) => {
    encrypted(raw);
    raw.database.url = raw.database.url.replace(`/${SOURCE_DB}`, `/${MISSING_DB}`);
  });
  configFile = path.join(env.dir, 'config.json');
  writeFileSync(configFile, JSON.stringify(config));
  const missingDbConfigFile = path.join(env.dir, 'config-missing-db.json');
  writeFileSync(missingDbConfigFile, JSON.stringify(missingDbConfig));
  process.env[PAYLOAD_KEYS_ENV] = KEYS;
  void processes.spawn(missingDbConfigFile);
  codecServer = await startCodecServerProcess();
  worker = await startWorker(config, logger, { bundleInProcess: true });
  connection = await connectClient(config);
  client = connection.client;
});

afterAll(async () => {
  await connection?.close();
  await worker?.shutdown();
  processes.killAll();
  codecServer?.process.kill('SIGTERM');
  await codecServer?.process.catch(() => undefined);
  delete process.env[PAYLOAD_KEYS_ENV];
  await env?.stop();
});

/** The real `backupctl codec-server`, as an operator starts it for the Web UI. */
async function startCodecServerProcess(): Promise<{ url: string; process: ResultPromise }> {
  const child = execa('node', [CLI, '--config', configFile, 'codec-server', '--port', '0', '--origin', 'http://localhost:8233'], {
    env: { [PAYLOAD_KEYS_ENV]: KEYS },
    reject: false,
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match) resolve(match[1]);
    });
    void child.then((result) => reject(new Error(`codec-server exited ${result.exitCode}: ${result.stderr}`)));
  });
  return { url, process: child };
}

/** The history as the Temporal service holds it: read without any codec. */
async function rawHistory(workflowId: string): Promise<unknown[]> {
  const events: unknown[] = [];
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await env.temporal.client.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId }, nextPageToken });
    events.push(...(page.history?.events ?? []));
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return events;
}

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;
const utf8 = (bytes?: Uint8Array | null) => Buffer.from(bytes ?? []).toString('utf8');

/** Every payload in a proto object, with where it was found. */
function payloadsIn(value: unknown, where = ''): { where: string; payload: Payload }[] {
  if (!value || typeof value !== 'object' || isBytes(value)) return [];
  if (Array.isArray(value)) return value.flatMap((v, i) => payloadsIn(v, `${where}[${i}]`));
  const record = value as Record<string, unknown>;
  const metadata = record.metadata as Record<string, unknown> | undefined;
  if (metadata && typeof metadata === 'object' && Object.keys(metadata).length > 0 && Object.values(metadata).every(isBytes)) {
    return [{ where, payload: record as Payload }];
  }
  return Object.entries(record).flatMap(([key, v]) => payloadsIn(v, `${where}.${key}`));
}

/** Every byte of the object as text, bytes fields included as they are stored (not base64). */
function asStoredText(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (isBytes(v) || (v && v.type === 'Buffer' && Array.isArray(v.data)) ? Buffer.from(isBytes(v) ? v : v.data).toString('latin1') : v));
}

/**
 * The only payloads the SDK writes past the codec: patch markers and the search attribute
 * listing them (the service indexes it), which hold the ids of our patched() calls.
 */
const isPatchRecord = (found: { where: string }) => /markerRecordedEventAttributes\.details\.patch-data|searchAttributes/i.test(found.where);
const mustBeEncrypted = (found: { where: string }) => !isPatchRecord(found);

/** The data of every payload in a proto3 JSON history (the temporal CLI's), as text. */
function payloadsInJson(value: unknown): string[] {
  if (!value || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap(payloadsInJson);
  const record = value as Record<string, unknown>;
  if (record.metadata && typeof record.metadata === 'object' && typeof record.data === 'string') return [Buffer.from(record.data, 'base64').toString('utf8')];
  return Object.values(record).flatMap(payloadsInJson);
}

async function decodeOverHttp(payloads: Payload[]): Promise<string[]> {
  const res = await fetch(`${codecServer.url}/decode`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default', Origin: 'http://localhost:8233' },
    body: JSON.stringify({
      payloads: payloads.map((p) => ({
        metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
        data: Buffer.from(p.data ?? []).toString('base64'),
      })),
    }),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('access-control-allow-origin')).toBe('http://localhost:8233');
  const body = (await res.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
  return body.payloads.map((p) => Buffer.from(p.data, 'base64').toString('utf8'));
}

describe('a database backup with payload encryption on', () => {
  const workflowId = 'backup-database-encrypted';
  let result: DatabaseBackupResult;
  let events: unknown[];
  let heartbeat: Payload[];

  beforeAll(async () => {
    // A table pg_dump must wait for: the dump activity stops right after its first heartbeat,
    // so the test can read the heartbeat details as the service holds them.
    const locker = new pg.Client({ connectionString: env.source.url(SOURCE_DB) });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${LOCKABLE} IN ACCESS EXCLUSIVE MODE`);
      const handle = await client.workflow.start(backupDatabase, {
        taskQueue: SHARED_TASK_QUEUE,
        workflowId,
        args: [{ hostTaskQueue: hostTaskQueue(config.host), repositories: [MARKER, 'nas'] }],
      });
      heartbeat = await firstHeartbeat(workflowId, 'dumpDatabaseToRepositories');
      await locker.query('ROLLBACK');
      result = await handle.result();
    } finally {
      await locker.end();
    }
    events = await rawHistory(workflowId);
  });

  async function firstHeartbeat(id: string, activity: string): Promise<Payload[]> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const described = await env.temporal.client.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId: id } });
      const pending = described.pendingActivities?.find((a) => a.activityType?.name === activity);
      if (pending?.heartbeatDetails?.payloads?.length) return pending.heartbeatDetails.payloads;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no heartbeat of ${activity} within 30 s`);
  }

  test('the client with the codec reads the result as ever', () => {
    expect(result.backupId).toBe(workflowId);
    expect(result.copies.map((c) => c.repository).sort()).toEqual(['nas', 'nas', MARKER, MARKER].sort());
    expect(result.copies.every((c) => c.verified)).toBe(true);
  });

  test('every payload the service stores is ciphertext under the named key', () => {
    const found = payloadsIn(events).filter(mustBeEncrypted);
    // Input, every activity's input and result, the result: dozens of them.
    expect(found.length).toBeGreaterThan(10);
    for (const { where, payload } of found) {
      expect({ where, encoding: utf8(payload.metadata!.encoding), key: utf8(payload.metadata!['encryption-key-id']) }).toEqual({ where, encoding: 'binary/encrypted', key: 'k-2026' });
    }
  });

  test('what the SDK writes past the codec is patch ids only', () => {
    const records = payloadsIn(events).filter(isPatchRecord);
    expect(records.length).toBeGreaterThan(0);
    const patchId = expect.stringMatching(/^[a-z][a-z0-9-]+$/);
    for (const { payload } of records) {
      const value = JSON.parse(utf8(payload.data));
      if (Array.isArray(value)) expect(value).toEqual(value.map(() => patchId));
      else expect(value).toEqual({ id: patchId, deprecated: false });
    }
  });

  test('no payload holds the marker, the database name or the backup id; nothing in the history holds the first two', () => {
    const payloadBytes = payloadsIn(events)
      .map(({ payload }) => Buffer.concat([Buffer.from(payload.data ?? []), ...Object.values(payload.metadata ?? {}).map((v) => Buffer.from(v))]).toString('latin1'))
      .join('\n');
    for (const secret of [MARKER, SOURCE_DB, workflowId]) expect(payloadBytes).not.toContain(secret);
    const stored = asStoredText(events);
    expect(stored).toContain('planDatabaseBackup');
    expect(stored).not.toContain(MARKER);
    expect(stored).not.toContain(SOURCE_DB);
    expect(stored).not.toContain(APP_PASSWORD);
  });

  test('heartbeat details are encrypted too, and the codec server reads them', async () => {
    expect(heartbeat).toHaveLength(1);
    expect(utf8(heartbeat[0].metadata!.encoding)).toBe('binary/encrypted');
    expect(utf8(heartbeat[0].data)).not.toContain('snapshot');
    const [details] = await decodeOverHttp(heartbeat);
    expect(JSON.parse(details)).toMatchObject({ phase: 'snapshot' });
  });

  test('the codec server, over HTTP, gives back the marker, the database and the backup id', async () => {
    const decoded = (await decodeOverHttp(payloadsIn(events).filter(mustBeEncrypted).map((f) => f.payload))).join('\n');
    expect(decoded).toContain(MARKER);
    expect(decoded).toContain(SOURCE_DB);
    expect(decoded).toContain(workflowId);
  });

  test('`temporal workflow show --codec-endpoint` decodes the history through it', async () => {
    const args = ['workflow', 'show', '--workflow-id', workflowId, '--output', 'json', '--address', env.temporal.address];
    // Its JSON shows every payload's data in base64.
    const shown = async (extra: string[]) => {
      const history = JSON.parse((await execa(projectTool('temporal'), [...args, ...extra])).stdout);
      return payloadsInJson(history).join('\n');
    };
    expect(await shown([])).not.toContain(MARKER);
    expect(await shown(['--codec-endpoint', codecServer.url])).toContain(MARKER);
  });
});

test('a failure message (naming a database) reaches the service encrypted; the client reads it', async () => {
  // Only the `backupctl worker` process polls now: its child-built bundle converts the workflow's failure.
  await worker?.shutdown();
  worker = undefined;
  const workflowId = 'backup-database-encrypted-failure';
  const handle = await client.workflow.start(backupDatabase, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId,
    args: [{ hostTaskQueue: hostTaskQueue(missingDbConfig.host) }],
  });
  const err = await handle.result().then(
    () => undefined,
    (e) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const messages: string[] = [];
  for (let cause = (err as WorkflowFailedError).cause as Error | undefined; cause; cause = (cause as { cause?: Error }).cause) messages.push(cause.message);
  expect(messages.join('\n')).toContain(MISSING_DB);

  const events = await rawHistory(workflowId);
  const stored = asStoredText(events);
  expect(stored).toContain('planDatabaseBackup');
  expect(stored).not.toContain(MISSING_DB);
  const failures = JSON.stringify(events, (_k, v) => (isBytes(v) ? undefined : v)).match(/"message":"[^"]*"/g) ?? [];
  expect(failures.length).toBeGreaterThan(0);
  expect(new Set(failures)).toEqual(new Set(['"message":"Encoded failure"']));
  const decoded = (await decodeOverHttp(payloadsIn(events).filter(mustBeEncrypted).map((f) => f.payload))).join('\n');
  expect(decoded).toContain(MISSING_DB);
});

test('with encryption on and no key, the worker and the CLI refuse to start, naming the variable', async () => {
  const run = (args: string[]) =>
    execa('node', [CLI, '--config', configFile, ...args], {
      env: { [PAYLOAD_KEYS_ENV]: undefined, [PAYLOAD_KEYS_FILE_ENV]: undefined },
      reject: false,
      timeout: 60_000,
    });
  const results = await Promise.all([run(['worker']), run(['backup', 'database', '--workflow-id', 'backup-database-no-key']), run(['codec-server', '--port', '0'])]);
  for (const result of results) {
    expect({ exitCode: result.exitCode, stderr: result.stderr }).toEqual({ exitCode: 1, stderr: expect.stringMatching(/InvalidConfig: .*BACKUPCTL_PAYLOAD_KEYS \(or BACKUPCTL_PAYLOAD_KEYS_FILE\) is not set/) });
  }
  await expect(env.temporal.client.workflow.getHandle('backup-database-no-key').describe()).rejects.toThrow(/not found/i);
});
