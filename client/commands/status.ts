// `backupctl status`: is Temporal reachable, are workers polling, what is running, and how old
// is the newest complete, signed backup (the recovery point we could offer right now).
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import proto from '@temporalio/proto';
import { progressQuery } from '../../workflows/messages.js';
import type { Repository } from '../../engine/storage/repository.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../../common/types.js';
import { databaseHost, type Config } from '../../common/config.js';
import { workflowRunLink } from '../../common/webUiLink.js';
import { assessHealth, walQueueIssues, type HealthReport, type Problem } from '../../engine/health.js';
import type { Printer } from '../output.js';
import { monitorState } from './monitor.js';
import { storageLines } from './storageStats.js';
import { scheduleProblems } from '../scheduleProblems.js';

export type { WalArchiveStatus } from '../../engine/health.js';

const { temporal } = proto;

export interface RunningWork {
  workflowId: string;
  type: string;
  startTime: string;
  /** The workflow's own account (progress query), when it has one. */
  phase?: string;
  /** The last heartbeat of each running activity: bytes done, attempt, last failure. */
  activities: { activity: string; attempt: number; progress?: unknown; lastFailure?: string }[];
}

export interface StatusReport extends Omit<HealthReport, 'problems'> {
  ok: boolean;
  /** What needs attention now, for people. */
  problems: string[];
  /** The same problems, each with the key that names it while it lasts (engine/health.ts). */
  keyedProblems: Problem[];
  temporal: { address: string; namespace: string; reachable: boolean; error?: string };
  taskQueues: { name: string; pollers: number }[];
  running: RunningWork[];
  /** Runs failed in the last 24 hours; link: the run in the Temporal Web UI (config temporal.webUiUrl). */
  recentFailures: { workflowId: string; runId: string; type: string; closeTime: string | null; link?: string }[];
  /** The monitor (backupctl monitor show has it all): running, its open problems, its channels' last outcome. */
  monitor: { workflowId: string; running: boolean; lastLookAt?: string | null; lastLookError?: string; openProblems?: number; channels?: Record<string, { ok: boolean; at: string; error?: string }>; undelivered?: number } | null;
}

export async function collectStatus(client: Client | undefined, clientError: string | undefined, config: Config, repositories: Repository[]): Promise<StatusReport> {
  const problems: Problem[] = [];
  const temporalPart: Pick<StatusReport, 'temporal' | 'taskQueues' | 'running' | 'recentFailures' | 'monitor'> = {
    temporal: { address: config.temporal.address, namespace: config.temporal.namespace, reachable: Boolean(client), error: clientError },
    taskQueues: [],
    running: [],
    recentFailures: [],
    monitor: null,
  };
  if (client) {
    for (const name of [SHARED_TASK_QUEUE, hostTaskQueue(databaseHost(config))]) {
      const response = await client.workflowService.describeTaskQueue({
        namespace: config.temporal.namespace,
        taskQueue: { name, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType:
          name === SHARED_TASK_QUEUE ? temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      });
      const pollers = response.pollers?.length ?? 0;
      temporalPart.taskQueues.push({ name, pollers });
      if (!pollers) problems.push({ key: `workers.none:${name}`, message: `no worker is polling task queue ${name}` });
    }
    for await (const wf of client.workflow.list({ query: 'ExecutionStatus = "Running"' })) {
      temporalPart.running.push(await describeRunning(client, wf.workflowId, wf.type, wf.startTime));
    }
    const dayAgo = new Date(Date.now() - 24 * 3600_000).toISOString();
    for await (const wf of client.workflow.list({ query: `ExecutionStatus = "Failed" AND CloseTime > "${dayAgo}"` })) {
      const link = workflowRunLink(config.temporal.webUiUrl, config.temporal.namespace, wf.workflowId, wf.runId);
      temporalPart.recentFailures.push({ workflowId: wf.workflowId, runId: wf.runId, type: wf.type, closeTime: wf.closeTime?.toISOString() ?? null, ...(link ? { link } : {}) });
    }
    if (temporalPart.recentFailures.length) problems.push({ key: 'runs.failed', message: `${temporalPart.recentFailures.length} workflow(s) failed in the last 24 hours` });
    // What the monitor tells of our schedules (paused, missed, absent), told here too.
    problems.push(...(await scheduleProblems(client, config)));
    const found = await monitorState(client, config);
    const state = found.state;
    temporalPart.monitor = {
      workflowId: found.workflowId,
      running: found.running,
      ...(state ? { lastLookAt: state.lastLookAt, ...(state.lastLookError ? { lastLookError: state.lastLookError } : {}), openProblems: Object.keys(state.open).length, channels: state.channels, undelivered: state.undelivered.length } : {}),
    };
    const channelsConfigured = Boolean(config.alerts.email) || config.alerts.webhooks.length > 0;
    if (!found.running && channelsConfigured) problems.push({ key: 'monitor.not-running', message: `no monitor is running (${found.workflowId}): nobody is told of problems; backupctl monitor start, or schedules apply, starts it` });
    for (const [name, channel] of Object.entries(state?.channels ?? {})) {
      if (!channel.ok) problems.push({ key: `alerts.channel-failing:${name}`, message: `alerts cannot reach ${name} since ${channel.at}: ${channel.error ?? 'failed'}` });
    }
  } else {
    problems.push({ key: 'temporal.unreachable', message: `Temporal at ${config.temporal.address} is not reachable: ${clientError}` });
  }
  const health = await assessHealth(config, repositories);
  problems.push(...health.problems);
  return { ...temporalPart, ...health, ok: problems.length === 0, problems: problems.map((p) => p.message), keyedProblems: problems };
}

/** The archive queue's problems, as messages (engine/health.ts walQueueIssues has them keyed). */
export function walQueueProblems(queue: StatusReport['walQueue'], maxSegments: number): string[] {
  return walQueueIssues(queue, maxSegments).map((p) => p.message);
}

const days = (hours: number) => Math.round((hours / 24) * 10) / 10;

export async function runStatus(report: StatusReport, out: Printer): Promise<number> {
  out.result(report, () => {
    const lines = [
      `${report.ok ? 'OK' : 'ATTENTION'}  temporal ${report.temporal.address} (${report.temporal.namespace}): ${report.temporal.reachable ? 'reachable' : 'UNREACHABLE'}`,
      ...report.taskQueues.map((q) => `  queue ${q.name}: ${q.pollers} poller(s)`),
      ...(report.monitor
        ? [
            report.monitor.running
              ? `  monitor ${report.monitor.workflowId}: last look ${report.monitor.lastLookAt ?? 'not yet'}${report.monitor.lastLookError ? ` (FAILED: ${report.monitor.lastLookError})` : ''}, ${report.monitor.openProblems ?? 0} open problem(s)${report.monitor.undelivered ? `, ${report.monitor.undelivered} alert(s) undelivered` : ''}`
              : `  monitor: not running (${report.monitor.workflowId})`,
          ]
        : []),
      report.latestBackup
        ? `  newest backup ${report.latestBackup.backupId}, finished ${report.latestBackup.finishedAt} (${report.latestBackup.ageHours} h ago; at most ${report.objectives.maxAgeHours.database} h), in ${report.latestBackup.foundIn.join(', ')}`
        : '  no complete backup',
      report.latestVerification
        ? `  newest verification: backup ${report.latestVerification.backupId} ${verificationWords(report.latestVerification)}${
            report.latestVerification.copies ? `, ${report.latestVerification.copies.summary}` : ''
          } ${report.latestVerification.finishedAt} (${report.latestVerification.ageDays} d ago; at most ${days(report.objectives.maxAgeHours.verification)} d)`
        : '  no backup has been verified yet',
      objectiveLine('RPO', report.objectives.rpo),
      objectiveLine('RTO', report.objectives.rto),
      ...(report.latestBaseBackup ? [`  newest base backup ${report.latestBaseBackup.backupId}, ${report.latestBaseBackup.ageDays} d old (at most ${days(report.objectives.maxAgeHours.base)} d), in ${report.latestBaseBackup.foundIn.join(', ')}`] : []),
      ...(report.walArchive
        ? [
            `  WAL archive: newest ${report.walArchive.newestSegment} at ${report.walArchive.newestArchivedAt} in ${report.walArchive.spool}`,
            ...report.walArchive.repositories.map((r) => `    ${r.name}: ${r.error ? `UNREACHABLE (${r.error})` : r.behind ? `${r.behind} segment(s) behind, ${r.lagSeconds} s` : 'up to date'}`),
          ]
        : []),
      ...(report.walQueue
        ? [
            report.walQueue.error !== undefined
              ? `  WAL queue: cannot be read (${report.walQueue.error})`
              : `  WAL queue: ${report.walQueue.ready} file(s) waiting to be archived${report.walQueue.ready ? `, oldest ${report.walQueue.oldestReadySeconds} s` : ''}; last archived ${report.walQueue.archiver.lastArchivedWal ?? 'none'}${report.walQueue.failing ? ', FAILING' : ''}`,
          ]
        : []),
      ...storageLines(report.storage, '  '),
      report.latestRetention
        ? `  retention: last decided ${report.latestRetention.decidedAt}${report.latestRetention.dryRun ? ' (dry run)' : ''}, ${report.latestRetention.deletedBackups} backup copies and ${report.latestRetention.deletedWal} WAL files ${report.latestRetention.dryRun ? 'to delete' : 'deleted'} (report ${report.latestRetention.reportId} in ${report.latestRetention.foundIn})`
        : '  retention: never run (backupctl prune --dry-run shows what it would do)',
      ...report.configuration.map((c) => `  configuration: ${c}`),
      ...report.running.flatMap((r) => [
        `  running ${r.type} ${r.workflowId} since ${r.startTime}${r.phase ? `: ${r.phase}` : ''}`,
        ...r.activities.map(
          (a) => `    ${a.activity} attempt ${a.attempt}${a.progress ? ` ${JSON.stringify(a.progress)}` : ''}${a.lastFailure ? ` (last failure: ${a.lastFailure})` : ''}`,
        ),
      ]),
      ...report.problems.map((p) => `  problem: ${p}`),
    ];
    return lines.join('\n');
  });
  return report.ok ? 0 : 1;
}

function objectiveLine(name: string, o: { objectiveMinutes: number; measuredMinutes: number | null; met: boolean; detail: string }): string {
  return `  ${name} ${o.measuredMinutes === null ? 'not measured' : `${o.measuredMinutes} min`} (objective ${o.objectiveMinutes} min${o.met ? '' : ', NOT MET'}): ${o.detail}`;
}

/** "restored and verified" only when every copy was read back whole too. */
function verificationWords(v: NonNullable<StatusReport['latestVerification']>): string {
  if (!v.ok) return 'FAILED';
  return v.copies?.damaged.length || v.copies?.notChecked ? 'restored' : 'restored and verified';
}

async function describeRunning(client: Client, workflowId: string, type: string, startTime: Date): Promise<RunningWork> {
  const handle = client.workflow.getHandle(workflowId);
  const work: RunningWork = { workflowId, type, startTime: startTime.toISOString(), activities: [] };
  if (type === 'backupDatabase') {
    work.phase = await handle.query(progressQuery).then((p) => p.phase, () => undefined);
  }
  const description = await handle.describe().catch(() => undefined);
  for (const pending of description?.raw.pendingActivities ?? []) {
    const payload = pending.heartbeatDetails?.payloads?.[0];
    work.activities.push({
      activity: pending.activityType?.name ?? 'unknown',
      attempt: pending.attempt ?? 1,
      progress: payload ? defaultPayloadConverter.fromPayload(payload as Payload) : undefined,
      lastFailure: pending.lastFailure?.message ?? undefined,
    });
  }
  return work;
}
