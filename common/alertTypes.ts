// What one alert says, whichever channel carries it (engine/alerts/). A problem has a stable
// key, so the monitor can tell its opening from a reminder and from its resolution, and a
// channel can thread them. Nothing here may hold a secret or a row of data: an alert leaves
// the machine.

export const ALERT_EVENTS = ['opened', 'reminder', 'resolved', 'failed-run'] as const;
export type AlertEvent = (typeof ALERT_EVENTS)[number];

export const ALERT_SEVERITIES = ['critical', 'warning'] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

export interface Alert {
  /** The problem's stable key, the same at every pass while it lasts: "database.stale", "wal.archiver". */
  key: string;
  event: AlertEvent;
  severity: AlertSeverity;
  /** One line for people: what is wrong. */
  title: string;
  /** Plain text, several lines allowed: the facts and what to do. */
  text: string;
  /** The host the problem was seen from (config.host). */
  host: string;
  /** When this alert was raised (ISO 8601). */
  at: string;
  /** Where to look further, e.g. the failed run in the Temporal Web UI. */
  link?: string;
  /** When the problem first opened (ISO 8601): on reminders and resolutions. */
  openedAt?: string;
}

/** One channel's outcome for one alert. `channel` names it without its secrets (`webhook ops (hooks.example.com)`). */
export interface AlertDeliveryResult {
  channel: string;
  ok: boolean;
  /** Why it failed, without any secret. */
  error?: string;
  /** Whether trying the same channel again later may succeed. False when ok. */
  retryable: boolean;
}
