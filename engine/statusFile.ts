// The status file the monitor writes on every look (config monitor.statusFile), for whatever
// read the seed's status.json: its fields (timestamp, database_backups, status, alerts) in the
// same spirit, and the whole picture beside them. Schema: docs/status.schema.json. Written
// atomically (a temp file renamed over it), so a reader never sees half of one.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { severityOf } from '../common/alertSeverity.js';
import type { HealthReport } from './health.js';
import type { IntegritySummary } from './integritySample.js';

export interface StatusFile {
  formatVersion: 1;
  /** When the look was made. */
  timestamp: string;
  host: string;
  /** OK: no problem; WARNING: problems, none critical; ERROR: at least one critical problem. */
  status: 'OK' | 'WARNING' | 'ERROR';
  /** Every problem's message (the seed's field). */
  alerts: string[];
  problems: { key: string; severity: 'critical' | 'warning'; message: string }[];
  /** The newest few database backups, newest last (the seed's field, richer). */
  database_backups: HealthReport['recentBackups'];
  latestBackup: HealthReport['latestBackup'];
  latestVerification: HealthReport['latestVerification'];
  latestBaseBackup: HealthReport['latestBaseBackup'];
  walArchive: HealthReport['walArchive'];
  objectives: HealthReport['objectives'];
  storage: { repository: string; reachable: boolean; freeBytes: number | null; daysUntilFull: number | null }[];
  latestRetention: HealthReport['latestRetention'];
  /** The integrity sample of this look (absent when monitor.integrity.periodDays is 0). */
  integrity?: IntegritySummary;
}

export function buildStatusFile(health: HealthReport, host: string, now: number): StatusFile {
  const problems = health.problems.map((p) => ({ key: p.key, severity: severityOf(p.key), message: p.message }));
  return {
    formatVersion: 1,
    timestamp: new Date(now).toISOString(),
    host,
    status: problems.some((p) => p.severity === 'critical') ? 'ERROR' : problems.length ? 'WARNING' : 'OK',
    alerts: problems.map((p) => p.message),
    problems,
    database_backups: health.recentBackups,
    latestBackup: health.latestBackup,
    latestVerification: health.latestVerification,
    latestBaseBackup: health.latestBaseBackup,
    walArchive: health.walArchive,
    objectives: health.objectives,
    storage: health.storage.map((s) => (s.reachable ? { repository: s.repository, reachable: true, freeBytes: s.freeBytes, daysUntilFull: s.daysUntilFull } : { repository: s.repository, reachable: false, freeBytes: null, daysUntilFull: null })),
    latestRetention: health.latestRetention,
    ...(health.integrity ? { integrity: health.integrity } : {}),
  };
}

/** Writes it whole or not at all: a temp file beside it, then renamed over it. Readable by all (it holds no secret). */
export async function writeStatusFile(file: string, status: StatusFile): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.partial`;
  try {
    await writeFile(temp, JSON.stringify(status, null, 2) + '\n', { mode: 0o644, flag: 'wx' });
    await rename(temp, file);
  } finally {
    await rm(temp, { force: true });
  }
}
