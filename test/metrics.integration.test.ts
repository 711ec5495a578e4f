// The worker's Prometheus endpoint on real components: `backupctl worker` as operators run it
// (its own process, metrics.port and metrics.sdkPort set), a real nightly backup, and the
// monitor's look on that worker. Scraped over HTTP and parsed: the backups' gauges (age, size,
// duration, copies, RPO against its objective, open problems) and the Temporal SDK's own.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { Config } from '../common/config.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { backupDatabase, monitor } from '../workflows/index.js';
import { monitorQuery } from '../workflows/messages.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { freePort } from './fixtures/ports.js';
import { workerProcesses } from './fixtures/workerProcess.js';

const HOST = 'metrics-db';
let env: BackupEnv;
let config: Config;
let port: number;
const workers = workerProcesses();

/** Prometheus text exposition, parsed: `name{labels}` -> value. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    samples.set(match[1], Number(match[2]));
  }
  return samples;
}

async function scrape(): Promise<Map<string, number>> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(response.status).toBe(200);
  return parse(await response.text());
}

beforeAll(async () => {
  env = await startBackupEnv({ users: 5, sessionsPerUser: 1, activitiesPerSession: 1 });
  port = await freePort();
  const sdkPort = await freePort();
  const file = path.join(env.dir, `${HOST}.yaml`);
  config = env.config(HOST, (raw) => {
    raw.metrics = { port, sdkPort };
  });
  writeFileSync(file, YAML.stringify(config));
  void workers.spawn(file);
}, 180_000);

afterAll(async () => {
  workers.killAll();
  await env?.stop();
});

test('before any look the endpoint answers, with no backup gauge; after a backup and a look, the gauges say what status says', async () => {
  const deadline = Date.now() + 60_000;
  let first: Map<string, number> | undefined;
  while (!first) {
    first = await scrape().catch(() => undefined);
    if (!first && Date.now() > deadline) throw new Error('the metrics endpoint never answered');
    if (!first) await new Promise((r) => setTimeout(r, 250));
  }
  expect([...first.keys()].filter((k) => k.startsWith('backupctl_backup_age_seconds'))).toEqual([]);

  const backup = await env.temporal.client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'metrics-nightly', args: [{ hostTaskQueue: hostTaskQueue(HOST) }] });
  const handle = await env.temporal.client.workflow.start(monitor, { taskQueue: SHARED_TASK_QUEUE, workflowId: `monitor-${HOST}`, args: [{ hostTaskQueue: hostTaskQueue(HOST), intervalSeconds: 3600, failedRunsSeconds: 5 }] });
  try {
    while ((await handle.query(monitorQuery)).looks < 1) await new Promise((r) => setTimeout(r, 200));
    const samples = await scrape();
    const age = samples.get('backupctl_backup_age_seconds{component="database"}')!;
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThan((Date.now() - Date.parse(backup.finishedAt)) / 1000 + 1);
    expect(samples.get('backupctl_backup_size_bytes{component="database"}')).toBe(backup.bytes);
    expect(samples.get('backupctl_backup_duration_seconds{component="database"}')).toBeCloseTo((Date.parse(backup.finishedAt) - Date.parse(backup.startedAt)) / 1000, 1);
    expect(samples.get('backupctl_backup_copies{component="database"}')).toBe(3);
    expect(samples.get('backupctl_rpo_seconds{kind="objective"}')).toBe(3600);
    expect(samples.get('backupctl_rpo_seconds{kind="measured"}')).toBeLessThan(3600);
    // What the monitor found open is what the gauge counts.
    const open = Object.keys((await handle.query(monitorQuery)).open);
    expect(samples.get('backupctl_open_problems{severity="critical",component="all"}')! + samples.get('backupctl_open_problems{severity="warning",component="all"}')!).toBe(open.length);
    expect(samples.get('backupctl_last_look_timestamp_seconds')).toBeGreaterThan(Date.parse(backup.finishedAt) / 1000);
    // The Temporal SDK's own metrics, served after ours.
    expect([...samples.keys()].some((k) => k.startsWith('temporal_'))).toBe(true);
  } finally {
    await handle.terminate('test over');
  }
}, 180_000);
