// `backupctl status`: is Temporal reachable, are workers polling, what is running, and how old
// is the newest complete, signed backup (the recovery point we could offer right now).
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { progressQuery } from '../../workflows/messages.js';
import proto from '@temporalio/proto';
import type { Repository } from '../../engine/storage/repository.js';

const { temporal } = proto;
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../../common/types.js';
import { databaseHost, type Config } from '../../common/config.js';
import type { Printer } from '../output.js';
import { readCatalog, type LastVerification } from './listBackups.js';
import { latestDrillReport, scanCatalog } from '../../engine/catalog.js';
import { assessObjectives, type ObjectivesStatus } from '../../engine/objectives.js';
import type { DrillReport } from '../../common/restoreTypes.js';
import { loadVerifier, type Verifier } from '../../engine/manifestSignature.js';
import { expectedSource, pickLatest, sourceVerdict, type ExpectedSource } from '../../engine/sourceMatch.js';
import { archiveQueue, type ArchiveQueue } from '../../engine/archiveCheck.js';
import { errorText } from '../../engine/errors.js';
import { archiveLag, listWalEntries, newestSegmentOf, readWalEntry, spoolRepository } from '../../engine/walArchive.js';
import { repositoryStats, type RepositoryStats } from '../../engine/repositoryStats.js';
import { storageLines, storageProblems } from './storageStats.js';
import { pitrPreconditionProblems } from '../../common/pitrPreconditions.js';
import { readReport, RETENTION_REPORT_PREFIX } from '../../engine/prune.js';


export interface RunningWork {
  workflowId: string;
  type: string;
  startTime: string;
  /** The workflow's own account (progress query), when it has one. */
  phase?: string;
  /** The last heartbeat of each running activity: bytes done, attempt, last failure. */
  activities: { activity: string; attempt: number; progress?: unknown; lastFailure?: string }[];
}

export interface StatusReport {
  ok: boolean;
  problems: string[];
  temporal: { address: string; namespace: string; reachable: boolean; error?: string };
  taskQueues: { name: string; pollers: number }[];
  running: RunningWork[];
  recentFailures: { workflowId: string; type: string; closeTime: string | null }[];
  latestBackup: { backupId: string; finishedAt: string; ageHours: number; foundIn: string[] } | null;
  /** The newest verification of any backup: the last time a backup was proved to restore. */
  latestVerification: { backupId: string; reportId: string; ok: boolean; finishedAt: string; ageDays: number; copies?: LastVerification['copies'] } | null;
  /** The WAL archive: newest segment in the spool, and how far each other repository lags. */
  walArchive: WalArchiveStatus | null;
  /** PostgreSQL's archive queue (WAL files finished but not archived yet): back-pressure on pg_wal. */
  walQueue: (ArchiveQueue & { error?: undefined }) | { error: string } | null;
  /** The newest base backup: where every point-in-time recovery starts. */
  latestBaseBackup: { backupId: string; stoppedAt: string; ageDays: number; foundIn: string[] } | null;
  /**
   * Per repository and component: count, bytes, oldest, newest; free space, growth and days
   * until full (filesystem repositories); the window that repository alone supports. One that
   * cannot be listed is there as unreachable, with the reason.
   */
  storage: RepositoryStats[];
  /**
   * What the configuration asks for and cannot have (point-in-time recovery without a base
   * backup source or without archiving): shown, and failed by `backupctl check`.
   */
  configuration: string[];
  /** The newest retention run recorded in the repositories (backupctl prune, the daily schedule). */
  latestRetention: { reportId: string; decidedAt: string; dryRun: boolean; deletedBackups: number; deletedWal: number; foundIn: string } | null;
  /** RPO and RTO measured now against config `objectives` (engine/objectives.ts). */
  objectives: ObjectivesStatus;
}


async function latestBaseBackup(repositories: Repository[], expected: ExpectedSource, verifier: Verifier, problems: string[]): Promise<StatusReport['latestBaseBackup']> {
  const { copiesById, damaged } = await scanCatalog(repositories, 'base', verifier);
  // A base backup of another cluster cannot start a recovery of ours; an unsigned or wrongly signed one starts none by default.
  const ours = (c: { manifest: { server: { systemIdentifier: string } } }) => ['match', 'unchecked'].includes(sourceVerdict({ systemIdentifier: c.manifest.server.systemIdentifier }, expected).kind);
  // Repository by repository, in their order: its damaged manifests, then its wrongly signed base
  // backups of ours, oldest first. A repository that cannot be listed is reported elsewhere.
  for (const repository of repositories) {
    damaged.filter((d) => d.repository === repository.name).forEach((d) => problems.push(d.reason));
    [...copiesById.values()]
      .flatMap((copies) => copies.filter((c) => c.repository === repository.name))
      .sort((a, b) => a.manifest.startedAt.localeCompare(b.manifest.startedAt))
      .filter((c) => ours(c) && c.signature.state === 'bad-signature')
      .forEach((c) => problems.push(`base backup ${c.manifest.backupId} in ${c.repository}: manifest ${(c.signature as { reason: string }).reason}`));
  }
  let newest: { backupId: string; stoppedAt: string; foundIn: string[] } | undefined;
  for (const copies of copiesById.values()) {
    const signed = copies.filter((c) => ours(c) && c.signature.state === 'signed');
    if (signed.length && (!newest || signed[0].manifest.backup.stoppedAt > newest.stoppedAt)) {
      newest = { backupId: signed[0].manifest.backupId, stoppedAt: signed[0].manifest.backup.stoppedAt, foundIn: signed.map((c) => c.repository) };
    }
  }
  if (!newest) return null;
  return { ...newest, ageDays: Math.round(((Date.now() - Date.parse(newest.stoppedAt)) / 86_400_000) * 100) / 100 };
}

export interface WalArchiveStatus {
  spool: string;
  newestSegment: string;
  newestArchivedAt: string;
  repositories: { name: string; newestSegment: string | null; behind: number | null; lagSeconds: number | null; error?: string }[];
}

/** WAL must reach every repository within this (DESIGN: archive within 5 minutes at most). */
const WAL_MAX_LAG_SECONDS = 300;

async function walArchiveStatus(config: Config, repositories: Repository[]): Promise<WalArchiveStatus | null> {
  let spool: Repository;
  try {
    spool = spoolRepository(config, repositories);
  } catch {
    return null; // no filesystem repository here: this host keeps no WAL archive
  }
  const newest = newestSegmentOf(await listWalEntries(spool));
  if (!newest) return null;
  const newestEntry = await readWalEntry(spool, newest);
  const status: WalArchiveStatus = { spool: spool.name, newestSegment: newest, newestArchivedAt: newestEntry?.archivedAt ?? '', repositories: [] };
  for (const target of repositories.filter((r) => r !== spool)) {
    try {
      const lag = await archiveLag(spool, target);
      const oldestMissing = lag.behind[0] ? await readWalEntry(spool, lag.behind[0]) : undefined;
      const lagSeconds = oldestMissing ? Math.round((Date.now() - Date.parse(oldestMissing.archivedAt)) / 1000) : 0;
      status.repositories.push({ name: target.name, newestSegment: lag.newestSegment, behind: lag.behind.length, lagSeconds });
    } catch (err) {
      // Unreachable now: the spool keeps the segments, and shipping catches up when it returns.
      status.repositories.push({ name: target.name, newestSegment: null, behind: null, lagSeconds: null, error: (err as Error).message });
    }
  }
  return status;
}

export async function collectStatus(client: Client | undefined, clientError: string | undefined, config: Config, repositories: Repository[]): Promise<StatusReport> {
  const problems: string[] = [];
  const report: StatusReport = {
    ok: true,
    problems,
    temporal: { address: config.temporal.address, namespace: config.temporal.namespace, reachable: Boolean(client), error: clientError },
    taskQueues: [],
    running: [],
    recentFailures: [],
    latestBackup: null,
    latestVerification: null,
    walArchive: null,
    walQueue: null,
    latestBaseBackup: null,
    storage: [],
    configuration: [],
    latestRetention: null,
    objectives: null as unknown as ObjectivesStatus,
  };
  const { maxAgeHours } = config.objectives;
  if (client) {
    for (const name of [SHARED_TASK_QUEUE, hostTaskQueue(databaseHost(config))]) {
      const response = await client.workflowService.describeTaskQueue({
        namespace: config.temporal.namespace,
        taskQueue: { name, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType:
          name === SHARED_TASK_QUEUE ? temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      });
      const pollers = response.pollers?.length ?? 0;
      report.taskQueues.push({ name, pollers });
      if (!pollers) problems.push(`no worker is polling task queue ${name}`);
    }
    for await (const wf of client.workflow.list({ query: 'ExecutionStatus = "Running"' })) {
      report.running.push(await describeRunning(client, wf.workflowId, wf.type, wf.startTime));
    }
    const dayAgo = new Date(Date.now() - 24 * 3600_000).toISOString();
    for await (const wf of client.workflow.list({ query: `ExecutionStatus = "Failed" AND CloseTime > "${dayAgo}"` })) {
      report.recentFailures.push({ workflowId: wf.workflowId, type: wf.type, closeTime: wf.closeTime?.toISOString() ?? null });
    }
    if (report.recentFailures.length) problems.push(`${report.recentFailures.length} workflow(s) failed in the last 24 hours`);
  } else {
    problems.push(`Temporal at ${config.temporal.address} is not reachable: ${clientError}`);
  }
  const expected = await expectedSource(config);
  let verifier: Verifier = { keys: [], host: config.host };
  try {
    verifier = await loadVerifier(config);
  } catch (err) {
    problems.push(`signatures cannot be checked: ${(err as Error).message}`);
  }
  const { entries: listed, errors, damaged } = await readCatalog(repositories, verifier, expected);
  errors.forEach((e) => problems.push(`repository ${e.repository} cannot be read: ${e.error}`));
  damaged.forEach((d) => problems.push(d.reason));
  // Only backups of the configured database and cluster are ours (a shared repository holds
  // others), and only signed ones count: an unsigned one is never `latest`.
  const signed = listed.filter((e) => e.signature === 'signed');
  const choice = pickLatest(signed, (e) => ({ database: e.database, systemIdentifier: e.systemIdentifier ?? undefined }), (e) => e.startedAt, expected);
  for (const e of listed.filter((e) => e.signature !== 'signed' && e.sourceMatch === 'match')) {
    if (e.signature === 'bad-signature') problems.push(`backup ${e.backupId} is wrongly signed and never used: manifest ${e.signatureProblem}`);
    else if (!choice.chosen || e.startedAt > choice.chosen.startedAt) {
      problems.push(`backup ${e.backupId} is newer than the newest signed backup${choice.chosen ? ` (${choice.chosen.backupId})` : ''} but UNSIGNED: not counted (planted, or made by a host without signing.privateKeyFile)`);
    }
  }
  if (choice.refusal) problems.push(choice.refusal);
  if (choice.warning) problems.push(choice.warning);
  const latest = choice.chosen;
  const entries = listed.filter((e) => e.sourceMatch === 'match' || (latest && e.systemIdentifier === latest.systemIdentifier));
  if (latest) {
    const ageHours = (Date.now() - Date.parse(latest.finishedAt)) / 3600_000;
    report.latestBackup = { backupId: latest.backupId, finishedAt: latest.finishedAt, ageHours: Math.round(ageHours * 100) / 100, foundIn: latest.foundIn };
    if (ageHours > maxAgeHours.database) problems.push(`the newest database backup is ${ageHours.toFixed(1)} hours old (at most ${maxAgeHours.database} expected)`);
    const missing = repositories.map((r) => r.name).filter((name) => !latest.foundIn.includes(name));
    if (missing.length) problems.push(`the newest backup is missing from: ${missing.join(', ')}`);
  } else {
    problems.push('there is no complete database backup');
  }
  const verified = entries
    .filter((e) => e.lastVerification)
    .sort((a, b) => a.lastVerification!.finishedAt.localeCompare(b.lastVerification!.finishedAt))
    .at(-1);
  if (verified) {
    const v = verified.lastVerification!;
    const ageDays = (Date.now() - Date.parse(v.finishedAt)) / 86_400_000;
    report.latestVerification = { backupId: verified.backupId, reportId: v.reportId, ok: v.ok, finishedAt: v.finishedAt, ageDays: Math.round(ageDays * 100) / 100, copies: v.copies };
    if (!v.ok) problems.push(`the newest verification (backup ${verified.backupId}) FAILED: ${v.failure ?? 'see its report'}`);
    // A restorable backup with a damaged copy has lost a copy the 3-2-1 rule counts on.
    if (v.copies?.damaged.length) problems.push(`the newest verification (backup ${verified.backupId}) found ${v.copies.summary}: ${v.copies.problems.join('; ')}`);
    if (v.copies?.notChecked) problems.push(`the newest verification (backup ${verified.backupId}) could not check its copies: ${v.copies.notChecked}`);
    if (ageDays * 24 > maxAgeHours.verification) problems.push(`the newest verification is ${ageDays.toFixed(1)} days old (at most ${(maxAgeHours.verification / 24).toFixed(1)} expected)`);
  }
  try {
    report.walArchive = await walArchiveStatus(config, repositories);
    for (const r of report.walArchive?.repositories ?? []) {
      if (r.error) problems.push(`the WAL archive in ${r.name} cannot be read: ${r.error}`);
      else if ((r.lagSeconds ?? 0) > WAL_MAX_LAG_SECONDS) problems.push(`WAL shipping to ${r.name} is ${r.behind} segment(s), ${r.lagSeconds} s behind (is the wal-shipping workflow running? is ${r.name} reachable?)`);
    }
  } catch (err) {
    problems.push(`the WAL archive cannot be read: ${(err as Error).message}`);
  }
  // On a host that archives WAL (it has a spool, perhaps still empty: archiving that fails from
  // the start): is PostgreSQL's queue keeping up?
  if (hasSpool(config, repositories)) {
    try {
      report.walQueue = await archiveQueue(config);
    } catch (err) {
      report.walQueue = { error: errorText(err) };
    }
    problems.push(...walQueueProblems(report.walQueue, config.wal.queueMaxSegments));
  }
  report.latestBaseBackup = await latestBaseBackup(repositories, expected, verifier, problems);
  // The age unrounded: rounded to 0.01 days it reads 8.00 for up to 7 minutes past the bound.
  if (report.latestBaseBackup && (Date.now() - Date.parse(report.latestBaseBackup.stoppedAt)) / 3_600_000 > maxAgeHours.base) {
    problems.push(`the newest base backup is ${report.latestBaseBackup.ageDays.toFixed(1)} days old: point-in-time recovery replays all the WAL since`);
  }
  report.storage = await repositoryStats(repositories, { verifier });
  problems.push(...storageProblems(report.storage));
  // A repository that cannot be read is already a problem (above); one readable for the catalog but not for this is one too.
  for (const s of report.storage) {
    if (!s.reachable && !problems.some((p) => p.startsWith(`repository ${s.repository} cannot be read`))) problems.push(`repository ${s.repository} cannot be measured: ${s.error}`);
  }
  report.configuration = pitrPreconditionProblems(config);
  report.latestRetention = await latestRetention(repositories);
  const queue = report.walQueue && report.walQueue.error === undefined ? report.walQueue : undefined;
  const assessed = assessObjectives(
    {
      now: Date.now(),
      newestDumpAt: latest?.startedAt,
      pitr: Boolean(report.latestBaseBackup && report.walArchive),
      archiveQueueSeconds: queue ? (queue.oldestReadySeconds ?? 0) : undefined,
      shippingLagSeconds: (report.walArchive?.repositories ?? []).map((r) => ({ repository: r.name, seconds: r.error ? null : r.lagSeconds })),
      lastDrill: await latestDrillReport<DrillReport>(repositories).catch(() => undefined),
    },
    config.objectives,
  );
  report.objectives = assessed.status;
  problems.push(...assessed.problems);
  report.ok = problems.length === 0;
  return report;
}

/** The newest retention report in the first repository that holds one (report ids sort by time). */
async function latestRetention(repositories: Repository[]): Promise<StatusReport['latestRetention']> {
  for (const repository of repositories) {
    try {
      const keys = (await repository.list(RETENTION_REPORT_PREFIX)).map((o) => o.key).filter((k) => /^retention\/[^/]+\.json$/.test(k)).sort();
      const newest = keys.at(-1);
      if (!newest) continue;
      const report = await readReport(repository, newest.slice(RETENTION_REPORT_PREFIX.length, -'.json'.length));
      const deletedBackups = report.backups.filter((b) => b.action === 'delete').length;
      const deletedWal = report.wal.reduce((n, w) => n + w.delete.length, 0);
      return { reportId: report.reportId, decidedAt: report.decidedAt, dryRun: report.dryRun, deletedBackups, deletedWal, foundIn: repository.name };
    } catch {
      continue;
    }
  }
  return null;
}

function hasSpool(config: Config, repositories: Repository[]): boolean {
  try {
    spoolRepository(config, repositories);
    return true;
  } catch {
    return false;
  }
}

/** The archive queue's problems: archiving failing, or falling behind (pg_wal grows until the disk is full). */
export function walQueueProblems(queue: StatusReport['walQueue'], maxSegments: number): string[] {
  if (!queue) return [];
  if (queue.error !== undefined) return [`PostgreSQL's WAL archive queue cannot be read: ${queue.error}${/permission denied/i.test(queue.error) ? ' (the role needs pg_monitor)' : ''}`];
  const problems: string[] = [];
  if (queue.failing) problems.push(`archive_command is failing: ${queue.archiver.lastFailedWal} failed at ${queue.archiver.lastFailedTime} (the PostgreSQL log has its message)`);
  const age = queue.oldestReadySeconds ?? 0;
  if (queue.ready > maxSegments || age > WAL_MAX_LAG_SECONDS) {
    problems.push(
      `WAL archiving is behind: ${queue.ready} WAL file(s) wait in pg_wal, the oldest ready since ${queue.oldestReadyAt} (${age} s); pg_wal grows until archiving catches up (limit ${maxSegments} files, ${WAL_MAX_LAG_SECONDS} s)`,
    );
  }
  return problems;
}

export async function runStatus(report: StatusReport, out: Printer): Promise<number> {
  out.result(report, () => {
    const lines = [
      `${report.ok ? 'OK' : 'ATTENTION'}  temporal ${report.temporal.address} (${report.temporal.namespace}): ${report.temporal.reachable ? 'reachable' : 'UNREACHABLE'}`,
      ...report.taskQueues.map((q) => `  queue ${q.name}: ${q.pollers} poller(s)`),
      report.latestBackup
        ? `  newest backup ${report.latestBackup.backupId}, finished ${report.latestBackup.finishedAt} (${report.latestBackup.ageHours} h ago), in ${report.latestBackup.foundIn.join(', ')}`
        : '  no complete backup',
      report.latestVerification
        ? `  newest verification: backup ${report.latestVerification.backupId} ${verificationWords(report.latestVerification)}${
            report.latestVerification.copies ? `, ${report.latestVerification.copies.summary}` : ''
          } ${report.latestVerification.finishedAt} (${report.latestVerification.ageDays} d ago)`
        : '  no backup has been verified yet',
      objectiveLine('RPO', report.objectives.rpo),
      objectiveLine('RTO', report.objectives.rto),
      ...(report.latestBaseBackup ? [`  newest base backup ${report.latestBaseBackup.backupId}, ${report.latestBaseBackup.ageDays} d old, in ${report.latestBaseBackup.foundIn.join(', ')}`] : []),
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
