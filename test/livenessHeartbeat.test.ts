// A worker frozen (SIGSTOP: a paused VM, a stuck host) in a bounded activity that sends no
// progress of its own: here, starting the application's services after a swap. Found by the
// chaos suite: the retry waited for the activity's 5-minute start-to-close timeout, the
// application down all that time. Bounded activities now carry a heartbeat timeout and the
// worker heartbeats for them (workers/livenessHeartbeat.ts): another worker takes over within
// seconds.
import { chmodSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { startWorkerProcess, type WorkerProcess } from '../bench/workerProcess.js';
import { backupDatabase, restoreDatabase } from '../workflows/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

let env: BackupEnv;
let configFile: string;
const workers: WorkerProcess[] = [];
let dir: string;

beforeAll(async () => {
  env = await startBackupEnv({ users: 20, sessionsPerUser: 2, activitiesPerSession: 2 });
  dir = env.dir;
  const script = path.join(dir, 'systemctl');
  // `start` hangs while the block file exists: the first attempt is caught in it.
  writeFileSync(
    script,
    `#!/bin/bash\nif [ "$1" = start ]; then touch ${dir}/start-began; while [ -e ${dir}/block ]; do sleep 0.2; done; echo running > ${dir}/services; else echo stopped > ${dir}/services; fi\n`,
  );
  chmodSync(script, 0o755);
  const config = env.config('db', (raw) => {
    raw.encryption.privateKeyHome = env.keys.privateHome;
    raw.restore = { serverUrl: env.source.url('postgres'), jobs: 1, services: { units: ['app'], stopCommand: [script, 'stop'], startCommand: [script, 'start'] } };
    raw.logLevel = 'info';
  });
  configFile = path.join(dir, 'worker.yaml');
  writeFileSync(configFile, YAML.stringify(JSON.parse(JSON.stringify(config))), { mode: 0o600 });
  workers.push(await startWorkerProcess(configFile));
  await env.temporal.client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'liveness-backup', args: [{ hostTaskQueue: hostTaskQueue('db') }] });
}, 240_000);

afterAll(async () => {
  for (const w of workers) {
    w.signal('SIGCONT');
    await w.stop().catch(() => undefined);
  }
  await env?.stop();
});

test('a worker frozen while starting the services after a swap: another worker starts them within seconds, not minutes', async () => {
  writeFileSync(path.join(dir, 'block'), '');
  const handle = await env.temporal.client.workflow.start(restoreDatabase, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId: 'liveness-restore',
    args: [{ hostTaskQueue: hostTaskQueue('db'), backup: 'latest', replace: true }],
  });
  const deadline = Date.now() + 120_000;
  while (!existsSync(path.join(dir, 'start-began'))) {
    if (Date.now() > deadline) throw new Error('the services were never started');
    await new Promise((r) => setTimeout(r, 100));
  }
  workers[0].signal('SIGSTOP');
  const frozenAt = Date.now();
  workers.push(await startWorkerProcess(configFile));
  rmSync(path.join(dir, 'block'));
  const result = await handle.result();
  const seconds = (Date.now() - frozenAt) / 1000;
  expect(result.swap?.servicesStarted).toBeDefined();
  // The bound is the heartbeat timeout plus a retry and a worker's start, far below the
  // serviceControl start-to-close timeout (5 minutes) that bounded it before.
  expect({ closedWithinSeconds: seconds < 90 }).toEqual({ closedWithinSeconds: true });
}, 400_000);
