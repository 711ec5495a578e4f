// What the dashboard page shows, made from `backupctl status`'s report (collectStatus) and the
// catalog's timeline: each component's freshness against its objective, RPO and RTO, the open
// problems by key, failed runs with their Web UI links, every backup on a timeline and the
// bytes they hold. Only these fields reach the browser, every text redacted once more: no
// repository credential or database password can ride along.
import { redact } from '../../common/redact.js';
import { severityOf } from '../../common/alertSeverity.js';
import type { Config } from '../../common/config.js';
import type { ObjectivesStatus } from '../../engine/objectives.js';
import type { TimelineEntry } from '../../engine/backupTimeline.js';
import type { StatusReport } from '../commands/status.js';

/** ok: green; warning: amber; failing: red; none: nothing to judge yet (grey). */
export type ComponentState = 'ok' | 'warning' | 'failing' | 'none';

export interface ComponentView {
  name: 'database' | 'base' | 'verification' | 'drill' | 'wal' | 'temporal';
  state: ComponentState;
  newestAt: string | null;
  ageHours: number | null;
  maxAgeHours: number | null;
  detail: string;
  /** The keys of the open problems that make it what it is. */
  problems: string[];
}

export interface DashboardData {
  generatedAt: string;
  ok: boolean;
  components: ComponentView[];
  objectives: ObjectivesStatus;
  problems: { key: string; message: string; severity: 'critical' | 'warning' }[];
  failedRuns: { workflowId: string; runId: string; type: string; closeTime: string | null; link?: string }[];
  running: { workflowId: string; type: string; startTime: string; phase?: string }[];
  timeline: TimelineEntry[];
  storedBytes: { label: string; points: { at: string; bytes: number }[] };
  temporal: { namespace: string; reachable: boolean; webUi: string | null };
  monitor: { running: boolean; lastLookAt: string | null } | null;
}

/** Problem key prefixes that belong to each component. */
const PREFIXES: Record<ComponentView['name'], RegExp> = {
  database: /^database\./,
  base: /^base\./,
  verification: /^verification\./,
  drill: /^(drill\.|objectives\.rto)/,
  wal: /^wal\./,
  temporal: /^(temporal\.|workers\.|monitor\.|alerts\.)/,
};

const round = (n: number) => Math.round(n * 100) / 100;

export const STORED_BYTES_LABEL =
  'Bytes held now by the backups in the catalog (every copy), accumulated by each backup\'s date. Deleted backups and WAL are not counted: this is not the repositories\' size in the past.';

export function dashboardView(report: StatusReport, timeline: TimelineEntry[], config: Config, now = Date.now()): DashboardData {
  const { maxAgeHours } = config.objectives;
  const age = (at: string | null | undefined) => (at ? round((now - Date.parse(at)) / 3_600_000) : null);
  const component = (name: ComponentView['name'], newestAt: string | null, maxAge: number | null, detail: string): ComponentView => {
    const keys = report.keyedProblems.filter((p) => PREFIXES[name].test(p.key)).map((p) => p.key);
    const hours = age(newestAt);
    const overdue = hours !== null && maxAge !== null && hours > maxAge;
    const state: ComponentState = overdue || keys.some((k) => severityOf(k) === 'critical') ? 'failing' : keys.length ? 'warning' : newestAt || name === 'wal' || name === 'temporal' ? 'ok' : 'none';
    return { name, state, newestAt, ageHours: hours, maxAgeHours: maxAge, detail, problems: keys };
  };
  const drill = report.objectives.rto.drill;
  const components = [
    component('database', report.latestBackup?.finishedAt ?? null, maxAgeHours.database, report.latestBackup ? `newest dump ${report.latestBackup.backupId} in ${report.latestBackup.foundIn.join(', ')}` : 'no complete database backup'),
    component('base', report.latestBaseBackup?.stoppedAt ?? null, maxAgeHours.base, report.latestBaseBackup ? `newest base backup ${report.latestBaseBackup.backupId} in ${report.latestBaseBackup.foundIn.join(', ')}` : 'no base backup'),
    component('verification', report.latestVerification?.finishedAt ?? null, maxAgeHours.verification, report.latestVerification ? `backup ${report.latestVerification.backupId} ${report.latestVerification.ok ? 'restored' : 'FAILED to restore'}` : 'no backup verified yet'),
    component('drill', drill?.finishedAt ?? null, maxAgeHours.drill, drill ? `drill ${drill.reportId} ${drill.ok ? 'passed' : 'FAILED'}` : 'no drill yet'),
    component('wal', report.walArchive?.newestArchivedAt || null, null, report.walArchive ? `newest segment ${report.walArchive.newestSegment}` : 'no WAL archive on this host'),
    component('temporal', null, null, report.temporal.reachable ? `reachable, ${report.taskQueues.map((q) => `${q.name}: ${q.pollers} poller(s)`).join(', ')}; ${monitorWords(report.monitor)}` : 'UNREACHABLE'),
  ];
  let total = 0;
  const points = timeline.map((e) => ({ at: e.finishedAt, bytes: (total += e.bytes * e.foundIn.length) }));
  const data: DashboardData = {
    generatedAt: new Date(now).toISOString(),
    ok: report.ok,
    components,
    objectives: report.objectives,
    problems: report.keyedProblems.map((p) => ({ key: p.key, message: p.message, severity: severityOf(p.key) })),
    failedRuns: report.recentFailures,
    running: report.running.map((r) => ({ workflowId: r.workflowId, type: r.type, startTime: r.startTime, ...(r.phase ? { phase: r.phase } : {}) })),
    timeline,
    storedBytes: { label: STORED_BYTES_LABEL, points },
    temporal: { namespace: report.temporal.namespace, reachable: report.temporal.reachable, webUi: config.temporal.webUiUrl ?? null },
    monitor: report.monitor ? { running: report.monitor.running, lastLookAt: report.monitor.lastLookAt ?? null } : null,
  };
  return redactDeep(data);
}

function monitorWords(monitor: StatusReport['monitor']): string {
  if (!monitor) return 'monitor unknown';
  if (!monitor.running) return `monitor ${monitor.workflowId} not running`;
  return `monitor: last look ${monitor.lastLookAt ?? 'not yet'}${monitor.lastLookError ? ' FAILED' : ''}, ${monitor.openProblems ?? 0} open problem(s)`;
}

/** Every string in the value redacted (common/redact.ts), keys included. */
function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map(redactDeep) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [redact(k), redactDeep(v)])) as T;
  return value;
}
