// The worker process: one per host. It polls the shared queue (workflows, and activities any
// host may run) and its own host queue (activities that need this host's database or disks).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode, NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Logger } from 'pino';
import { createActivities } from '../activities/index.js';
import { runCommand } from '../engine/exec.js';
import { resolveBinDir } from '../engine/postgres.js';
import { openRepositories } from '../engine/storage/index.js';
import { ownedTempPrefix, sweepDeadOwners, tempRoots } from '../engine/tempDirs.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import type { Config } from '../common/config.js';
import { temporalDataConverter } from './dataConverter.js';
import { connectionOptions } from './temporalConnection.js';
import { WORKFLOWS_PATH, quietBundlerLogger } from './bundleWorkflows.js';
import { livenessHeartbeats } from './livenessHeartbeat.js';
import { HealthObserver, startMetricsServer } from './metrics.js';
import { COMPILED, codeFile } from '../common/runtime.js';

const bundles = new Map<string, Promise<WorkflowBundleWithSourceMap>>();

/**
 * Bundles the workflow code once per process (tests, replay); bundling takes seconds. Workflow
 * code converts its failures in the sandbox, so a custom failure converter (payload
 * encryption's) is built into the bundle: one bundle per converter.
 */
export function workflowBundle(failureConverterPath?: string): Promise<WorkflowBundleWithSourceMap> {
  const key = failureConverterPath ?? '';
  let bundle = bundles.get(key);
  if (!bundle) {
    bundle = bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, failureConverterPath, logger: quietBundlerLogger });
    bundles.set(key, bundle);
  }
  return bundle;
}

/**
 * The long-running worker's bundle, built by a child process (see bundleWorkflows.ts) into a
 * private temporary file, so the bundler's memory leaves with that process.
 */
async function bundleInChildProcess(failureConverterPath?: string): Promise<{ codePath: string; dispose(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), ownedTempPrefix('bundle')));
  const codePath = path.join(dir, 'workflows.js');
  const args = [codeFile('workers/bundleWorkflows.ts'), codePath, ...(failureConverterPath ? [failureConverterPath] : [])];
  // The sources run through tsx (resolved from here, not from the operator's working directory).
  await runCommand(process.execPath, [...(COMPILED ? [] : ['--import', import.meta.resolve('tsx')]), ...args]);
  return { codePath, dispose: () => rm(dir, { recursive: true, force: true }) };
}

export interface RunningWorker {
  taskQueues: string[];
  /** Resolves when both workers have stopped. */
  done: Promise<void>;
  /** Where the metrics are served (config metrics.port). */
  metricsUrl?: string;
  shutdown(): Promise<void>;
}

export interface WorkerOptions {
  /** Bundle in this process (faster when a process starts several workers, as tests do). */
  bundleInProcess?: boolean;
  /** The configuration file this worker was started with (recovered clusters' wal-fetch uses it). */
  configFile?: string;
}

/**
 * What a worker that died (SIGKILL, power loss) left behind: gpg homes, bundles and restore
 * staging folders (which hold plaintext) of processes that no longer exist. Never another
 * live worker's.
 */
export async function sweepDeadWorkersFolders(config: Config, logger: Logger): Promise<string[]> {
  const removed = await sweepDeadOwners(tempRoots(config.restore.workDir));
  if (removed.length) logger.warn({ removed }, 'removed temporary folders of workers that died');
  return removed;
}

export async function startWorker(config: Config, logger: Logger, options: WorkerOptions = {}): Promise<RunningWorker> {
  // First: a worker without its payload keys refuses to start before it touches anything.
  const dataConverter = temporalDataConverter(config);
  await sweepDeadWorkersFolders(config, logger);
  const failureConverterPath = dataConverter?.failureConverterPath;
  const built = options.bundleInProcess ? undefined : await bundleInChildProcess(failureConverterPath);
  const workflowCode = built ? { codePath: built.codePath } : await workflowBundle(failureConverterPath);
  const connection = await NativeConnection.connect(connectionOptions(config));
  // Metrics: the backups as of the monitor's last look here (and the SDK's, when exported).
  const observer = new HealthObserver();
  const metrics = config.metrics.port
    ? await startMetricsServer({ host: config.metrics.host, port: config.metrics.port, ...(config.metrics.sdkPort ? { sdkMetricsUrl: `http://127.0.0.1:${config.metrics.sdkPort}/metrics` } : {}) }, observer)
    : undefined;
  if (metrics) logger.info({ url: metrics.url }, 'metrics served');
  const activities = createActivities({
    config,
    repositories: openRepositories(config),
    binDir: resolveBinDir(config.database.binDir),
    configFile: options.configFile,
    observeHealth: (health, at) => observer.observe(health, at),
  });
  const hostQueue = hostTaskQueue(config.host);
  const common = { connection, namespace: config.temporal.namespace, activities, dataConverter, interceptors: { activity: [livenessHeartbeats] } };
  const workers = [
    await Worker.create({ ...common, taskQueue: SHARED_TASK_QUEUE, workflowBundle: workflowCode }),
    await Worker.create({ ...common, taskQueue: hostQueue }),
  ];
  // Worker.create has read the bundle: the file goes now, so a worker killed later leaves none.
  await built?.dispose();
  logger.info({ taskQueues: [SHARED_TASK_QUEUE, hostQueue], address: config.temporal.address, payloadEncryption: Boolean(dataConverter) }, 'worker polling');
  const done = Promise.all(workers.map((w) => w.run()))
    .then(
      () => connection.close(),
      async (err) => {
        workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown());
        await connection.close().catch(() => undefined);
        throw err;
      },
    )
    .finally(async () => {
      await built?.dispose();
      await metrics?.close();
    });
  return {
    taskQueues: [SHARED_TASK_QUEUE, hostQueue],
    ...(metrics ? { metricsUrl: metrics.url } : {}),
    done,
    async shutdown() {
      workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown());
      await done;
    },
  };
}
