// Activities of the monitor: look at the backups (engine/health.ts, no Temporal), look for our
// failed runs (the activity's own Temporal client), and deliver alerts (engine/alerts/). Each
// is read-only but the delivery, which sends to the channels it is told to and says, per
// channel, what happened.
import { Context } from '@temporalio/activity';
import type { Alert } from '../common/alertTypes.js';
import { FAILED_RUNS_PER_LOOK, type DeliveryOutcome, type FailedRun, type MonitorFindings, type MonitorLookInput } from '../common/monitorTypes.js';
import { deliverAlert, type AlertChannels } from '../engine/alerts/deliver.js';
import { emailChannelName } from '../engine/alerts/emailChannel.js';
import { webhookChannelName } from '../engine/alerts/webhookChannel.js';
import { redact } from '../common/redact.js';
import { workflowRunLink } from '../common/webUiLink.js';
import { errorText } from '../engine/errors.js';
import { assessHealth, type HealthReport } from '../engine/health.js';
import { sampleIntegrity } from '../engine/integritySample.js';
import { boundProblems } from '../engine/problemBounds.js';
import { buildStatusFile, writeStatusFile } from '../engine/statusFile.js';
import type { DatabaseBackupDeps } from './databaseBackup.js';
import { scheduleProblems } from './scheduleLook.js';

/** The workflow types that are ours: a failure of any of them is told at once. */
const OUR_WORKFLOWS = ['backupDatabase', 'backupBase', 'verifyBackup', 'recoveryDrill', 'restoreDatabase', 'pointInTimeRecovery', 'applyRetention', 'shipWal', 'sweepLeftovers', 'monitor'];
/** Failed runs listed at most in one look (visibility rows only; the oldest 50 of them are told). */
const FAILED_RUNS_LISTED = 10_000;

export interface MonitorDeps extends DatabaseBackupDeps {
  /** Told of every look at the backups (the worker's metrics read it). */
  observeHealth?: (health: HealthReport, at: number) => void;
}

export function createMonitorActivities(deps: MonitorDeps) {
  const { config } = deps;
  return {
    /**
     * Looks at the backups as `backupctl status` does, without Temporal: every problem with its
     * key and message (no secret: repository errors are redacted; no row of data), and writes
     * the status file when monitor.statusFile is set (whole, renamed into place: a retry
     * writes it again); then re-reads the integrity sample due (engine/integritySample.ts; the
     * workflow carries its cursor: `input.integrity`, returned anew). Heartbeats `{ phase,
     * bytesRead }` while it reads.
     */
    async monitorChecks(input: MonitorLookInput = {}): Promise<MonitorFindings> {
      const ctx = Context.current();
      const progress = { phase: 'looking', bytesRead: 0 };
      const beat = setInterval(() => ctx.heartbeat({ ...progress }), 5_000);
      try {
        const health = await assessHealth(config, deps.repositories);
        // Only the monitor's look reads the sample back (`backupctl status` stays quick).
        progress.phase = 'integrity sample';
        const sample = await sampleIntegrity(config, deps.repositories, {
          now: Date.now(),
          intervalSeconds: input.intervalSeconds ?? config.monitor.intervalSeconds,
          cursor: input.integrity,
          reader: { signal: ctx.cancellationSignal, idleMs: Math.max(1000, Math.min(60_000, (ctx.info.heartbeatTimeoutMs || 100_000) * 0.6)), onBytes: (n) => (progress.bytesRead += n) },
        });
        health.problems.push(...(await scheduleProblems(() => ctx.client, config)));
        const problems = [...health.problems, ...(sample?.problems ?? [])].map((p) => ({ key: p.key, message: redact(p.message) }));
        const report = { ...health, problems, integrity: sample?.summary };
        deps.observeHealth?.(report, Date.now());
        if (config.monitor.statusFile) {
          try {
            await writeStatusFile(config.monitor.statusFile, buildStatusFile(report, config.host, Date.now()));
          } catch (err) {
            problems.push({ key: 'monitor.status-file', message: `the status file ${config.monitor.statusFile} cannot be written: ${redact(errorText(err))}` });
          }
        }
        // The status file and the metrics have them all; the workflow keeps and tells a bounded few.
        return { host: config.host, reminderMinutes: config.alerts.reminderMinutes, problems: boundProblems(problems), ...(sample ? { integrity: sample.cursor } : {}) };
      } finally {
        clearInterval(beat);
      }
    },

    /**
     * Our workflows that failed (or timed out) after `since`, the oldest 50 at most, oldest first, with
     * their failure's type and message and a link to the run in the Web UI when
     * temporal.webUiUrl is set. Read-only.
     */
    async failedRunsSince(input: { since: string }): Promise<FailedRun[]> {
      const ctx = Context.current();
      const client = ctx.client;
      const types = OUR_WORKFLOWS.map((t) => `'${t}'`).join(', ');
      const query = `(ExecutionStatus = 'Failed' OR ExecutionStatus = 'TimedOut') AND CloseTime > '${new Date(input.since).toISOString()}' AND WorkflowType IN (${types})`;
      // The listing comes newest first: the oldest are told first (the next look starts after
      // the newest told), so none is passed over when more failed than one look tells.
      const listed = [];
      for await (const wf of client.workflow.list({ query })) {
        listed.push(wf);
        if (listed.length % 1000 === 0) ctx.heartbeat({ phase: 'listing failed runs', listed: listed.length });
        if (listed.length >= FAILED_RUNS_LISTED) break;
      }
      const oldest = listed.sort((a, b) => (a.closeTime?.getTime() ?? 0) - (b.closeTime?.getTime() ?? 0)).slice(0, FAILED_RUNS_PER_LOOK);
      const runs: FailedRun[] = [];
      for (const wf of oldest) {
        const handle = client.workflow.getHandle(wf.workflowId, wf.runId);
        let failureType = wf.status.name === 'TIMED_OUT' ? 'TimedOut' : 'Failed';
        let failureMessage = wf.status.name === 'TIMED_OUT' ? 'the run timed out' : '(no failure recorded)';
        try {
          for (const event of (await handle.fetchHistory()).events ?? []) {
            const failure = event.workflowExecutionFailedEventAttributes?.failure;
            if (failure) {
              failureType = failure.applicationFailureInfo?.type || failure.cause?.applicationFailureInfo?.type || 'Failed';
              failureMessage = failure.cause?.message ? `${failure.message}: ${failure.cause.message}` : (failure.message ?? failureMessage);
            }
          }
        } catch {
          // The history may be gone already: the run's type and time still say enough.
        }
        const link = workflowRunLink(config.temporal.webUiUrl, config.temporal.namespace, wf.workflowId, wf.runId);
        runs.push({
          workflowId: wf.workflowId,
          runId: wf.runId,
          type: wf.type,
          closeTime: wf.closeTime?.toISOString() ?? new Date().toISOString(),
          failureType,
          failureMessage: redact(failureMessage),
          ...(link ? { link } : {}),
        });
        ctx.heartbeat({ phase: 'listing failed runs', found: runs.length });
      }
      return runs.sort((a, b) => a.closeTime.localeCompare(b.closeTime));
    },

    /** The configured channels' names (as delivery results name them); no secret. */
    async alertChannels(): Promise<string[]> {
      return [...(config.alerts.email ? [emailChannelName(config.alerts.email)] : []), ...config.alerts.webhooks.map((hook) => webhookChannelName(hook))];
    },

    /**
     * Sends each alert to the configured channels (only those named in `only`, when given: the
     * ones that failed before), all at once; one outcome per alert, one result per channel.
     * Never fails for a channel that fails: the workflow keeps what a channel did not take and
     * tries it again later, so a recipient that has an alert does not get it twice.
     */
    async deliverAlerts(input: { alerts: { alert: Alert; only?: string[] }[] }): Promise<DeliveryOutcome[]> {
      const outcomes: DeliveryOutcome[] = [];
      for (const { alert, only } of input.alerts) {
        const channels: AlertChannels = {
          ...(config.alerts.email && (!only || only.includes(emailChannelName(config.alerts.email))) ? { email: config.alerts.email } : {}),
          webhooks: config.alerts.webhooks.filter((hook) => !only || only.includes(webhookChannelName(hook))),
        };
        outcomes.push({ alert, results: await deliverAlert(alert, channels) });
        Context.current().heartbeat({ phase: 'delivering', delivered: outcomes.length });
      }
      return outcomes;
    },
  };
}
