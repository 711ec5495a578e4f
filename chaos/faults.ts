// The faults: each is injected at a moment the runner draws, and returns what to do once the
// run has closed (thaw a frozen worker and let its stale attempt act, heal the network, free
// the disk, give the S3 key back). Transient faults must be survived (the run completes); the
// permanent ones (a full or read-only repository, the S3 key revoked) may fail the run, but
// only with the right error and cleanly.
import { openSync, closeSync, writeSync, rmSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type { S3FaultKind } from './s3FaultProxy.js';
import type { ChaosStack } from './stack.js';
import type { WorkerPool } from './workers.js';

export const FAULT_KINDS = [
  'sigkill',
  'freeze',
  'cutoff',
  'temporal-restart',
  's3-500',
  's3-503',
  's3-slowdown',
  's3-reset',
  's3-stall',
  's3-truncate',
  'pg-restart-fast',
  'pg-restart-immediate',
  'repo-full',
  'repo-readonly',
  's3-revoke',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Error types a run may end with under a permanent fault. */
export const PERMANENT_FAULT_ERRORS: Partial<Record<FaultKind, string[]>> = {
  'repo-full': ['DiskFull'],
  'repo-readonly': ['StorageAccessDenied'],
  // S3 answers 403 InvalidAccessKeyId; the storage layer maps every 403 to StorageAccessDenied.
  // A read with no other copy to turn to (the drill reads the S3 copy only) ends NoUsableCopy,
  // each copy's refusal in its message: allowed for that scenario only (judgement.ts).
  's3-revoke': ['StorageAccessDenied'],
};

/** The repositories a fault leaves unreadable until it heals. */
export function unreadableUnder(kind: FaultKind): string[] {
  return kind === 's3-revoke' ? ['s3'] : [];
}

/** The repositories a fault leaves unwritable until it heals: what a failed run cannot clean there is the sweep's. */
export function unwritableUnder(kind: FaultKind): string[] {
  if (kind === 'repo-full' || kind === 'repo-readonly') return ['nas'];
  if (kind === 's3-revoke') return ['s3'];
  return [];
}

export interface FaultContext {
  stack: ChaosStack;
  workers: WorkerPool;
  /** A number in [from, to], from the run's seeded generator. */
  draw(from: number, to: number): number;
}

export interface InjectedFault {
  /** What exactly was done, for the report. */
  detail: string;
  /** Called once the run has closed (or been declared hung). */
  afterRun(): Promise<void>;
}

export function faultApplies(kind: FaultKind, stack: ChaosStack): boolean {
  return kind === 'repo-full' || kind === 'repo-readonly' ? stack.nasIsTmpfs : true;
}

export async function injectFault(kind: FaultKind, ctx: FaultContext): Promise<InjectedFault> {
  const { stack, workers } = ctx;
  const nothing = async () => undefined;
  switch (kind) {
    case 'sigkill': {
      const victim = await workers.current();
      workers.expectExit(victim);
      victim.signal('SIGKILL');
      await workers.replace();
      return { detail: `SIGKILL to worker group ${victim.pid}, new worker started`, afterRun: nothing };
    }
    case 'freeze': {
      const frozen = await workers.current();
      frozen.signal('SIGSTOP');
      await workers.replace();
      return {
        detail: `SIGSTOP to worker group ${frozen.pid} until the run closed, then SIGCONT`,
        async afterRun() {
          frozen.signal('SIGCONT');
          // The stale attempt wakes: give it time to do whatever it would do.
          await new Promise((r) => setTimeout(r, 5000));
          await workers.retire(frozen);
        },
      };
    }
    case 'cutoff': {
      const ms = ctx.draw(5000, 25_000);
      await stack.temporalProxy.cut();
      const restored = new Promise<void>((resolve) => setTimeout(() => void stack.temporalProxy.restore().then(resolve, resolve), ms));
      return { detail: `workers cut off from Temporal for ${ms} ms`, afterRun: () => restored };
    }
    case 'temporal-restart':
      await stack.temporal.restart();
      return { detail: 'Temporal dev server SIGKILLed and started again on its database file', afterRun: nothing };
    case 's3-500':
    case 's3-503':
    case 's3-slowdown':
    case 's3-reset':
    case 's3-truncate': {
      const count = ctx.draw(1, 6);
      stack.s3Proxy.inject(kind as S3FaultKind, { count });
      return { detail: `${kind} on the next ${count} S3 request(s)`, afterRun: async () => stack.s3Proxy.heal() };
    }
    case 's3-stall': {
      const count = ctx.draw(1, 2);
      stack.s3Proxy.inject('s3-stall', { count });
      return { detail: `the next ${count} S3 request(s) never answered`, afterRun: async () => stack.s3Proxy.heal() };
    }
    case 'pg-restart-fast':
    case 'pg-restart-immediate': {
      const mode = kind === 'pg-restart-fast' ? 'fast' : 'immediate';
      await stack.cluster.restart(mode);
      // Crash recovery skips up to 32 values of every sequence used since its last WAL record.
      if (mode === 'immediate') stack.sequenceSlack += 32;
      return { detail: `PostgreSQL restarted (${mode})`, afterRun: nothing };
    }
    case 'repo-full': {
      const filler = path.join(stack.repositories.nas, '.chaos-filler');
      fillUp(filler, stack.repositories.nas);
      return { detail: 'NAS repository filled up', afterRun: async () => rmSync(filler, { force: true }) };
    }
    case 's3-revoke':
      // Real: the workers' access key is deleted on the server (weed shell s3.configure -delete).
      await stack.s3Identity.revoke();
      return { detail: "the workers' S3 access key deleted on the server until the run closed", afterRun: () => stack.s3Identity.restore() };
    case 'repo-readonly': {
      // A file open for writing makes the remount fail (EBUSY): tried until the writer lets go.
      const tries = await remount(stack.repositories.nas, 'ro');
      return {
        detail: tries ? `NAS repository remounted read-only (after ${tries} busy tries)` : 'NAS repository remounted read-only',
        afterRun: async () => void (await remount(stack.repositories.nas, 'rw')),
      };
    }
  }
}

/** Writes zeros until the filesystem has no room left. */
function fillUp(file: string, dir: string): void {
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(1024 * 1024);
  try {
    for (;;) {
      const fs = statfsSync(dir);
      if (fs.bavail * fs.bsize < block.length) break;
      writeSync(fd, block);
    }
    writeSync(fd, Buffer.alloc(Number(statfsSync(dir).bavail * statfsSync(dir).bsize)));
  } catch {
    // ENOSPC: full, as wanted
  } finally {
    closeSync(fd);
  }
}

/** mount -o remount,<mode>, retried while the filesystem is busy; returns the busy tries. */
async function remount(dir: string, mode: 'ro' | 'rw'): Promise<number> {
  for (let tries = 0; ; tries++) {
    const done = await execa('mount', ['-o', `remount,${mode}`, dir]).then(
      () => true,
      (err) => {
        if (!/busy/i.test(String(err.stderr)) || tries >= 600) throw err;
        return false;
      },
    );
    if (done) return tries;
    await new Promise((r) => setTimeout(r, 50));
  }
}
