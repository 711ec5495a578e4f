// The worker process: one per host. It polls the shared queue (workflows, and activities any
// host may run) and its own host queue (activities that need this host's database or disks).
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Logger } from 'pino';
import { createActivities } from '../activities/index.js';
import { resolveBinDir } from '../activities/postgres.js';
import { openRepositories } from '../activities/storage/index.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../workflows/types.js';
import type { Config } from './config.js';
import { connectionOptions } from './temporalConnection.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** Bundles the workflow code once per process; bundling takes seconds. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietBundlerLogger });
  return bundle;
}

export interface RunningWorker {
  taskQueues: string[];
  /** Resolves when both workers have stopped. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

export async function startWorker(config: Config, logger: Logger): Promise<RunningWorker> {
  const connection = await NativeConnection.connect(connectionOptions(config));
  const activities = createActivities({
    config,
    repositories: openRepositories(config),
    binDir: resolveBinDir(config.database.binDir),
  });
  const hostQueue = hostTaskQueue(config.host);
  const common = { connection, namespace: config.temporal.namespace, activities };
  const workers = [
    await Worker.create({ ...common, taskQueue: SHARED_TASK_QUEUE, workflowBundle: await workflowBundle() }),
    await Worker.create({ ...common, taskQueue: hostQueue }),
  ];
  logger.info({ taskQueues: [SHARED_TASK_QUEUE, hostQueue], address: config.temporal.address }, 'worker polling');
  const done = Promise.all(workers.map((w) => w.run())).then(
    () => connection.close(),
    async (err) => {
      workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown());
      await connection.close().catch(() => undefined);
      throw err;
    },
  );
  return {
    taskQueues: [SHARED_TASK_QUEUE, hostQueue],
    done,
    async shutdown() {
      workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown());
      await done;
    },
  };
}

const quietBundlerLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message: string, meta?: object) => console.warn(message, meta ?? ''),
  error: (message: string, meta?: object) => console.error(message, meta ?? ''),
};
