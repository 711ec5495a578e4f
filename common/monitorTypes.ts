// The monitor (workflows/monitor.ts): what it is given, what it keeps from pass to pass, and
// what its query answers. Problems are keyed (engine/health.ts); each open one remembers when
// it opened and when people were last told.
import type { Alert, AlertDeliveryResult } from './alertTypes.js';

export interface MonitorInput {
  /** The database host's task queue: its worker reads the repositories, the spool and PostgreSQL. */
  hostTaskQueue: string;
  /** Seconds between two looks at the backups (default 900: every 15 minutes). */
  intervalSeconds?: number;
  /** Seconds between two looks for failed runs of ours (default 60). */
  failedRunsSeconds?: number;
  /** Carried over continue-as-new. */
  state?: MonitorState;
}

export interface OpenProblem {
  message: string;
  severity: Alert['severity'];
  openedAt: string;
  /** When people were last told (the opening, or the last reminder). */
  lastToldAt: string;
  /** Looks in a row that did not find it (resolved at two). */
  missedLooks?: number;
}

export interface MonitorState {
  open: Record<string, OpenProblem>;
  /** Alerts not taken yet: tried again at the next tick, on the channels `only` names (those that failed, retryably), or on every channel. */
  undelivered: { alert: Alert; only?: string[] }[];
  /** Each channel's last outcome, for status and the query. */
  channels: Record<string, { ok: boolean; at: string; error?: string }>;
  /** Failed runs already told about (run ids), the newest few hundred. */
  toldRuns: string[];
  /** Failed runs are looked for from here on (ISO 8601). */
  failedRunsSince: string;
  lastLookAt: string | null;
  /** Why the last look at the backups could not be made, if it could not. */
  lastLookError?: string;
  looks: number;
  /** Where the integrity sample is (absent before the first look that took one). */
  integrity?: IntegrityCursor;
}

/**
 * The integrity sample's place, kept by the workflow between looks: which slots the last look
 * took (by its time: the next takes every slot after it), and the objects found corrupt or
 * missing, re-read at every look until they are whole again (else their problem would be
 * resolved at the next two looks, which do not take their slot).
 */
export interface IntegrityCursor {
  sampledThrough: string;
  /** Problem keys (integrity.corrupt:<repository>:<key>, integrity.missing:...), at most a few hundred. */
  recheck: string[];
  /** The newest object found corrupt or missing, and when. */
  lastCorruption?: { key: string; foundAt: string };
}

/** What a look is given (monitorChecks): all optional, so a look scheduled without them still runs. */
export interface MonitorLookInput {
  /** The workflow's seconds between looks: the sample's slot width (default config monitor.intervalSeconds). */
  intervalSeconds?: number;
  integrity?: IntegrityCursor;
}

/** What the checks found (monitorChecks). */
export interface MonitorFindings {
  host: string;
  /** config alerts.reminderMinutes: how often an open problem is recalled. */
  reminderMinutes: number;
  problems: { key: string; message: string }[];
  /** The integrity sample's place after this look (absent when the sample is off). */
  integrity?: IntegrityCursor;
}

/** At most this many failed runs are told in one look, the oldest first; the rest at the next. */
export const FAILED_RUNS_PER_LOOK = 50;

/** A failed run of ours, as the monitor tells it. */
export interface FailedRun {
  workflowId: string;
  runId: string;
  type: string;
  closeTime: string;
  failureType: string;
  failureMessage: string;
  /** The run in the Temporal Web UI, when config temporal.webUiUrl is set. */
  link?: string;
}

export interface DeliveryOutcome {
  alert: Alert;
  results: AlertDeliveryResult[];
}
