// Checks a recovery target against the recoverable window and picks the base backup to start
// from. Pure and deterministic: used by the workflow's signal and update handlers.
import type { BaseBackupSummary, RecoverableWindow, RecoveryTarget } from '../common/pitrTypes.js';

export type TargetVerdict = { ok: true; target: RecoveryTarget; base: BaseBackupSummary } | { ok: false; reason: string };

const ISO_WITH_ZONE = /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d(:?\d\d)?)$/;
const LSN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;

export function lsnValue(lsn: string): bigint {
  const [high, low] = lsn.split('/');
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`);
}

function describeWindow(window: RecoverableWindow): string {
  return `the recoverable window is ${window.earliest ?? '(no base backup)'} .. ${window.latest ?? '(no archived WAL)'}`;
}

/** The time a target's value names, in ms; NaN when it names none (Date.parse takes 2026-02-30 for March 2). */
function timeOf(value: string): number {
  const [, year, month, day, hour, minute, second = '0'] = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d))?/.exec(value) ?? [];
  const daysInMonth = new Date(Date.UTC(Number(year), Number(month), 0)).getUTCDate();
  if (!year || Number(month) < 1 || Number(month) > 12 || Number(day) < 1 || Number(day) > daysInMonth || Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59) return NaN;
  // ECMAScript reads only ±hh:mm offsets; ±hh and ±hhmm are ISO 8601 too.
  return Date.parse(value.replace(' ', 'T').replace(/([+-]\d\d)(\d\d)?$/, (_, h: string, m?: string) => `${h}:${m ?? '00'}`));
}

function shapeProblem(candidate: unknown): string | undefined {
  const target = candidate as RecoveryTarget;
  if (!target || typeof target !== 'object' || typeof target.value !== 'string' || !['time', 'lsn', 'xid', 'name'].includes(target.kind)) {
    return 'a target is { kind: time | lsn | xid | name, value: string }';
  }
  return undefined;
}

/**
 * What is wrong with a target on its own, before any window is known; undefined when nothing.
 * The workflow's checkTarget starts with it, and the CLI runs it before it starts a recovery.
 */
export function targetFormProblem(candidate: unknown): string | undefined {
  const shape = shapeProblem(candidate);
  if (shape) return shape;
  const target = candidate as RecoveryTarget;
  switch (target.kind) {
    case 'time':
      if (!ISO_WITH_ZONE.test(target.value)) return `"${target.value}" is not an ISO 8601 time with an explicit zone (Z or +hh:mm), e.g. 2026-11-26T14:30:00Z`;
      if (Number.isNaN(timeOf(target.value))) return `"${target.value}" is not a valid time`;
      return undefined;
    case 'lsn':
      return LSN.test(target.value) ? undefined : `"${target.value}" is not an LSN such as 0/3000060`;
    case 'xid':
      return /^\d{1,10}$/.test(target.value) ? undefined : `"${target.value}" is not a transaction id`;
    case 'name':
      return target.value.length && target.value.length <= 63 ? undefined : 'a restore point name has 1 to 63 characters';
  }
}

export function checkTarget(candidate: unknown, window: RecoverableWindow): TargetVerdict {
  const shape = shapeProblem(candidate);
  if (shape) return { ok: false, reason: shape };
  const target = candidate as RecoveryTarget;
  if (!window.baseBackups.length) return { ok: false, reason: 'there is no base backup to recover from yet (backupctl backup base)' };
  const problem = targetFormProblem(target);
  if (problem) return { ok: false, reason: problem };
  const oldest = window.baseBackups[0];
  switch (target.kind) {
    case 'time': {
      const at = timeOf(target.value);
      if (at <= Date.parse(oldest.stoppedAt)) return { ok: false, reason: `${target.value} is before the end of the oldest base backup; ${describeWindow(window)}` };
      if (!window.latest || at > Date.parse(window.latest)) return { ok: false, reason: `${target.value} is after the newest archived WAL; ${describeWindow(window)}` };
      const base = [...window.baseBackups].reverse().find((b) => Date.parse(b.stoppedAt) < at)!;
      // PostgreSQL reads this form in any TimeZone setting.
      const value = new Date(at).toISOString().replace('T', ' ').replace('Z', '+00');
      return { ok: true, target: { kind: 'time', value }, base };
    }
    case 'lsn': {
      const lsn = lsnValue(target.value);
      const base = [...window.baseBackups].reverse().find((b) => lsnValue(b.stopLsn) <= lsn);
      if (!base) return { ok: false, reason: `${target.value} is before the end of the oldest base backup (${oldest.stopLsn}); ${describeWindow(window)}` };
      if (!window.latestLsn || lsn > lsnValue(window.latestLsn)) {
        return { ok: false, reason: `${target.value} is past the archived WAL (it ends at ${window.latestLsn ?? 'nothing'}); ${describeWindow(window)}` };
      }
      return { ok: true, target: { kind: 'lsn', value: target.value.toUpperCase() }, base };
    }
    case 'xid':
      // Where a transaction id lies is not known before replay: start from the oldest base backup.
      return { ok: true, target, base: oldest };
    case 'name':
      return { ok: true, target, base: oldest };
  }
}
