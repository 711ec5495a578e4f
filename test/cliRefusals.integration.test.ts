// Bad input is refused by the CLI before any workflow starts, by the same checks the workflows
// run: exit code 2, a message naming the input and what is allowed, and, on a real Temporal
// dev server, no workflow under the id it would have used. And a repository that can never
// work fails a real backup workflow at once, instead of being retried as unreachable.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import pino from 'pino';
import YAML from 'yaml';
import { stopAgent } from '../engine/encryption.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';
import { validateConfig } from '../common/config.js';
import { startWorker } from '../workers/worker.js';
import { backupDatabase } from '../workflows/index.js';
import { hostTaskQueue, SHARED_TASK_QUEUE } from '../common/types.js';
import { startCluster, type PgCluster } from './fixtures/postgres.js';
import { startTemporal } from './fixtures/temporal.js';

const CLI = path.resolve('bin/backupctl.js');
let dir: string;
let temporal: TestWorkflowEnvironment;
let configFile: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-cli-refusals-'));
  temporal = await startTemporal();
  configFile = path.join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    YAML.stringify({
      host: 'cli-refusals',
      temporal: { address: temporal.address, namespace: 'default' },
      database: { url: 'postgres://app@127.0.0.1:1/app_db' },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') }, nas: { type: 'filesystem', path: path.join(dir, 'nas') } },
      encryption: { publicKeyFile: path.join(dir, 'public.asc') },
      drill: { host: 'dr-1', repository: 'nas' },
      logLevel: 'warn',
    }),
  );
});

afterAll(async () => {
  await temporal?.teardown();
  rmSync(dir, { recursive: true, force: true });
});

const run = (args: string[]) => execa('node', [CLI, '--config', configFile, ...args], { reject: false });

async function exists(workflowId: string): Promise<boolean> {
  try {
    await temporal.client.workflow.getHandle(workflowId).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

// One or two per command; the full matrix of checks runs in process in hostileInput.test.ts.
const REFUSED: [string, string[], string][] = [
  ['backup database, unknown repository', ['backup', 'database', '--repository', 'local', 'offsite'], '--repository offsite: not configured'],
  ['backup base, unknown compression', ['backup', 'base', '--compression', 'brotli'], '--compression brotli'],
  ['restore, a relative path', ['restore', 'database', 'dumps/app.backup'], 'input.backup is "dumps/app.backup"'],
  ['restore, jobs that are no number', ['restore', 'database', 'latest', '--jobs', 'lots'], 'input.jobs is "lots"'],
  ['verify, a path', ['verify', '/tmp/app.backup'], 'input.backup is "/tmp/app.backup"'],
  ['drill, a traversal', ['drill', '--backup', '../../etc/passwd'], 'input.backup is "../../etc/passwd"'],
  ['pitr start, port 99999', ['pitr', 'start', '--port', '99999'], 'input.port is 99999; expected a port from 1024 to 65535'],
  ['pitr start, a time without zone', ['pitr', 'start', '--target-time', '2026-11-26 14:30'], 'explicit zone'],
];

test('bad input is refused with exit code 2 and a clear message, and no workflow is started', async () => {
  const ids = REFUSED.map((_, i) => `refused-${i}`);
  const results = await Promise.all(REFUSED.map(([, args], i) => run([...args, '--workflow-id', ids[i]])));
  REFUSED.forEach(([name, , message], i) => {
    const result = results[i];
    expect({ name, exitCode: result.exitCode }).toEqual({ name, exitCode: 2 });
    expect(result.stderr).toContain('InvalidInput');
    expect(result.stderr).toContain(message);
  });
  for (const id of ids) expect({ id, exists: await exists(id) }).toEqual({ id, exists: false });
});

test('--json gives the refusal as one JSON object, exit code 2', async () => {
  const result = await run(['restore', 'database', 'latest', '--jobs', '65', '--workflow-id', 'refused-json', '--json']);
  expect(result.exitCode).toBe(2);
  expect(JSON.parse(result.stdout)).toEqual({ ok: false, error: { type: 'InvalidInput', message: expect.stringContaining('input.jobs is 65') } });
  expect(await exists('refused-json')).toBe(false);
});

test('pitr target refuses a malformed time before signalling anything', async () => {
  const result = await run(['pitr', 'target', 'pitr-that-does-not-exist', 'yesterday']);
  expect(result.exitCode).toBe(2);
  expect(result.stderr).toContain('InvalidInput');
  expect(result.stderr).toContain('"yesterday" is not an ISO 8601 time');
});

test('good input still starts its workflow (so the refusals above are not a broken start)', async () => {
  const result = await run(['backup', 'database', '--repository', 'nas', '--workflow-id', 'accepted-1']);
  expect(result.stderr).toBe('');
  expect(result.exitCode).toBe(0);
  expect(await exists('accepted-1')).toBe(true);
  const pitr = await run(['pitr', 'start', '--port', '6543', '--target-time', '2026-11-26T14:30:00+01:00', '--workflow-id', 'accepted-2']);
  expect(pitr.exitCode).toBe(0);
  expect(await exists('accepted-2')).toBe(true);
  // --allow-unsigned reaches the workflow's input.
  const unsigned = await run(['restore', 'database', 'latest', '--allow-unsigned', '--workflow-id', 'accepted-3']);
  expect(unsigned.exitCode).toBe(0);
  const started = (await temporal.client.workflow.getHandle('accepted-3').fetchHistory()).events![0].workflowExecutionStartedEventAttributes!;
  expect(defaultPayloadConverter.fromPayload(started.input!.payloads![0] as never)).toMatchObject({ backup: 'latest', allowUnsigned: true });
  // No worker polls here: end them so nothing waits for one.
  for (const id of ['accepted-1', 'accepted-2', 'accepted-3']) await temporal.client.workflow.getHandle(id).terminate('test done');
});

describe('a repository that can never work fails the backup workflow at once, naming its path', () => {
  let cluster: PgCluster;
  let keys: KeyPair;
  const mounts: string[] = [];

  beforeAll(async () => {
    [cluster, keys] = await Promise.all([startCluster(), ensureKeyPair(path.join(dir, 'keys'))]);
  });

  afterAll(async () => {
    for (const mount of mounts) execFileSync('umount', [mount]);
    await stopAgent(keys?.privateHome);
    await cluster?.stop();
  });

  test('a path that is a file (InvalidConfig) and a read-only mount (StorageAccessDenied): one attempt each, no 18 s of retries', async () => {
    const file = path.join(dir, 'repository-is-a-file');
    writeFileSync(file, 'x');
    const readOnly = path.join(dir, 'read-only');
    mkdirSync(readOnly);
    let canMount = true;
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', readOnly], { stdio: 'ignore' });
      mounts.push(readOnly);
    } catch {
      canMount = false; // not root here: only the file case runs
    }
    const config = validateConfig(
      {
        host: 'fs-faults',
        temporal: { address: temporal.address, namespace: 'default' },
        database: { url: cluster.url('postgres') },
        repositories: { local: { type: 'filesystem', path: file }, nas: { type: 'filesystem', path: readOnly } },
        encryption: { publicKeyFile: keys.publicKeyFile },
        signing: { privateKeyFile: keys.signing.privateKeyFile },
        logLevel: 'warn',
      },
      'fs-faults test',
    );
    const worker = await startWorker(config, pino({ level: 'silent' }), { bundleInProcess: true });
    try {
      const cases: [string, string, string][] = [['local', 'InvalidConfig', file], ...(canMount ? [['nas', 'StorageAccessDenied', readOnly] as [string, string, string]] : [])];
      for (const [repository, type, where] of cases) {
        const workflowId = `fs-fault-${repository}`;
        const handle = await temporal.client.workflow.start(backupDatabase, {
          taskQueue: SHARED_TASK_QUEUE,
          workflowId,
          args: [{ hostTaskQueue: hostTaskQueue(config.host), repositories: [repository] }],
        });
        const failure = await handle.result().then(
          () => undefined,
          (err: unknown) => (err as WorkflowFailedError).cause as ApplicationFailure,
        );
        expect(failure).toBeInstanceOf(ApplicationFailure);
        expect({ repository, type: failure!.type }).toEqual({ repository, type });
        expect(failure!.message).toContain(where);
        const { events } = await handle.fetchHistory();
        const attempts = (events ?? []).filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt);
        expect({ repository, attempts }).toEqual({ repository, attempts: [1] });
      }
    } finally {
      await worker.shutdown();
    }
  });
});
