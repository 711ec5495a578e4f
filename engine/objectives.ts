// The objectives (config `objectives`: RPO, RTO, the newest good backup's maximum age per kind)
// against what is measured now. Pure: the caller gathers the measurements (status, the monitor).
//
// Measured RPO: the data a disaster of the database host would lose now. With point-in-time
// recovery (a base backup, and WAL archived through our command), the WAL PostgreSQL has not
// archived yet (the oldest waiting file's age) plus the shipping lag of the best repository off
// that host; otherwise, or when no such repository can be read, the age of the newest dump's
// snapshot. Measured RTO: how long the last drill took from its start until the restored
// database passed its checks (a drill is the only full recovery we time).
import type { Config } from '../common/config.js';
import type { Problem } from './problem.js';

export interface ObjectiveMeasurements {
  now: number;
  /** The newest good dump's snapshot (its start). */
  newestDumpAt?: string;
  /** Point-in-time recovery is possible: a base backup and a WAL archive exist. */
  pitr: boolean;
  /** Age in seconds of the oldest WAL file PostgreSQL has not archived yet (0: none waiting); undefined: not known. */
  archiveQueueSeconds?: number;
  /** Shipping lag in seconds of each repository off the database host; null: it cannot be read. */
  shippingLagSeconds: { repository: string; seconds: number | null }[];
  /** The newest drill report that could be read. */
  lastDrill?: { reportId: string; finishedAt: string; ok: boolean; rtoSeconds?: number };
}

export interface ObjectivesStatus {
  rpo: { objectiveMinutes: number; measuredMinutes: number | null; basis: 'wal' | 'dump' | 'none'; met: boolean; detail: string };
  rto: { objectiveMinutes: number; measuredMinutes: number | null; drill: { reportId: string; finishedAt: string; ok: boolean } | null; met: boolean; detail: string };
  /** How old the newest good one of each may get, in hours (config objectives.maxAgeHours). */
  maxAgeHours: Config['objectives']['maxAgeHours'];
}

const minutes = (seconds: number) => Math.round((seconds / 60) * 10) / 10;

export function assessObjectives(m: ObjectiveMeasurements, objectives: Config['objectives']): { status: ObjectivesStatus; problems: Problem[] } {
  const problems: Problem[] = [];

  // RPO: the better of the WAL and the newest dump.
  const candidates: { basis: 'wal' | 'dump'; seconds: number; detail: string }[] = [];
  const readable = m.shippingLagSeconds.filter((l): l is { repository: string; seconds: number } => l.seconds !== null);
  if (m.pitr && readable.length) {
    const best = readable.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    const queue = m.archiveQueueSeconds ?? 0;
    candidates.push({
      basis: 'wal',
      seconds: queue + best.seconds,
      detail: `WAL: ${queue} s waiting to be archived${m.archiveQueueSeconds === undefined ? ' (not known here)' : ''}, ${best.seconds} s behind in ${best.repository}`,
    });
  }
  if (m.newestDumpAt) {
    const seconds = Math.max(0, Math.round((m.now - Date.parse(m.newestDumpAt)) / 1000));
    candidates.push({ basis: 'dump', seconds, detail: `the newest dump's snapshot, ${m.newestDumpAt}` });
  }
  const best = candidates.sort((a, b) => a.seconds - b.seconds)[0];
  const rpo: ObjectivesStatus['rpo'] = best
    ? { objectiveMinutes: objectives.rpoMinutes, measuredMinutes: minutes(best.seconds), basis: best.basis, met: best.seconds <= objectives.rpoMinutes * 60, detail: best.detail }
    : { objectiveMinutes: objectives.rpoMinutes, measuredMinutes: null, basis: 'none', met: false, detail: 'no complete backup and no archived WAL: everything would be lost' };
  if (!rpo.met) {
    problems.push({
      key: 'objectives.rpo',
      message: rpo.measuredMinutes === null
        ? `RPO objective ${objectives.rpoMinutes} min not met: ${rpo.detail}`
        : `RPO objective ${objectives.rpoMinutes} min not met: a disaster now would lose ${rpo.measuredMinutes} min of data (${rpo.detail})`,
    });
  }

  // RTO: the last drill.
  const drill = m.lastDrill;
  let rto: ObjectivesStatus['rto'];
  if (!drill) {
    rto = { objectiveMinutes: objectives.rtoMinutes, measuredMinutes: null, drill: null, met: true, detail: 'not measured yet: no drill has run (backupctl drill)' };
  } else if (!drill.ok || drill.rtoSeconds === undefined) {
    rto = { objectiveMinutes: objectives.rtoMinutes, measuredMinutes: null, drill: { reportId: drill.reportId, finishedAt: drill.finishedAt, ok: drill.ok }, met: false, detail: `the last drill (${drill.reportId}) failed: no recovery time was measured` };
    problems.push({ key: 'objectives.rto', message: `RTO objective ${objectives.rtoMinutes} min not proved: ${rto.detail}` });
  } else {
    const measured = minutes(drill.rtoSeconds);
    const met = drill.rtoSeconds <= objectives.rtoMinutes * 60;
    rto = { objectiveMinutes: objectives.rtoMinutes, measuredMinutes: measured, drill: { reportId: drill.reportId, finishedAt: drill.finishedAt, ok: true }, met, detail: `the last drill (${drill.reportId}) recovered in ${measured} min` };
    if (!met) problems.push({ key: 'objectives.rto', message: `RTO objective ${objectives.rtoMinutes} min not met: ${rto.detail}` });
  }
  if (drill) {
    const ageHours = (m.now - Date.parse(drill.finishedAt)) / 3_600_000;
    if (ageHours > objectives.maxAgeHours.drill) problems.push({ key: 'drill.stale', message: `the newest drill is ${(ageHours / 24).toFixed(1)} days old (at most ${(objectives.maxAgeHours.drill / 24).toFixed(1)} expected)` });
  }
  return { status: { rpo, rto, maxAgeHours: { ...objectives.maxAgeHours } }, problems };
}
