// How urgent a problem is, by its key (engine/health.ts names them): critical when it can lose
// data or leave a recovery impossible, a warning otherwise.
import type { AlertSeverity } from './alertTypes.js';

const CRITICAL = /^(database\.(none|stale|copy-missing)|objectives\.|wal\.(archiving-failing|archiving-behind|lag|unreadable)|storage\.full|repository\.unreadable|verification\.(failed|copies-damaged)|integrity\.(corrupt|missing)|base\.(stale|none|copy-missing)|monitor\.blind|run\.failed)/;

export function severityOf(key: string): AlertSeverity {
  return CRITICAL.test(key) ? 'critical' : 'warning';
}
