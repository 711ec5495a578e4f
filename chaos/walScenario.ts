// "WAL shipping": PostgreSQL archives through `backupctl wal-push` into the spool (always, under
// every scenario); a run writes rows into the WAL database and closes a few segments, starts its
// own shipWal workflow (one pass a second), and closes once every segment of the spool up to its
// last one is in every repository, seen from outside. The fault lands anywhere in between: while
// PostgreSQL archives, while a pass ships. Under a fault that keeps a repository refusing
// (full, read-only, revoked), the run ends as failed with the refusal's type once the workflow
// has reported it for a few passes and everything else has arrived.
//
// shipWal never closes by itself (it is the host's long-lived shipper): after the fault has
// healed, the check waits for what was held back to arrive, cancels the workflow between two
// passes (the operator's way to end it), and then checks the archive whole.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { walShippingQuery } from '../workflows/messages.js';
import type { WalShippingState } from '../common/pitrTypes.js';
import { settle, sleep, startWorkflow, until, within, type Outcome, type Scenario } from './scenario.js';
import { WAL_DB, type ChaosStack } from './stack.js';
import { shippingLag, walArchiveProblems } from './walInvariants.js';

const SEGMENTS_PER_RUN = 3;
/** Passes a repository must go on refusing with one error type before the run counts as failed. */
const REFUSING_PASSES = 3;
/** After the fault healed, how long what was held back may take to arrive. */
const CATCH_UP_MS = 90_000;

interface StackState {
  /** Runs' shipWal workflows, until their check ends them. */
  shippers: Map<string, WorkflowHandle>;
  /** sha256 of segments as PostgreSQL wrote them in pg_wal, read as each was closed. */
  written: Map<string, string>;
}

const states = new WeakMap<ChaosStack, StackState>();

function stateOf(stack: ChaosStack): StackState {
  let state = states.get(stack);
  if (!state) states.set(stack, (state = { shippers: new Map(), written: new Map() }));
  return state;
}

/**
 * Commits a row in the WAL database and closes the current segment; returns its name. Retried
 * while PostgreSQL restarts under a fault (these are the harness's writes, not the product's).
 */
export async function closeSegment(stack: ChaosStack, label: string, stop: () => boolean = () => false): Promise<string> {
  for (let tries = 0; ; tries++) {
    try {
      await stack.cluster.query(WAL_DB, 'INSERT INTO marks (label) VALUES ($1)', [label]);
      return (await stack.cluster.query<{ name: string }>('postgres', 'SELECT pg_walfile_name(pg_switch_wal()) AS name')).rows[0].name;
    } catch (err) {
      if (stop() || tries >= 120) throw err;
      await sleep(500);
    }
  }
}

/** Whether the spool holds a segment's entry (wal-push has archived it). */
export function archived(stack: ChaosStack, segment: string): boolean {
  return existsSync(path.join(stack.repositories.local, 'wal', `${segment}.json`));
}

/**
 * Reads the segment as PostgreSQL wrote it, once it is complete (.ready or .done) and before a
 * checkpoint may recycle it.
 */
async function recordWritten(stack: ChaosStack, segment: string): Promise<void> {
  const wal = path.join(stack.cluster.dataDir, 'pg_wal');
  const complete = () => Promise.resolve(['ready', 'done'].some((s) => existsSync(path.join(wal, 'archive_status', `${segment}.${s}`))));
  if (!(await until(complete, 30_000, 20))) return;
  try {
    stateOf(stack).written.set(segment, createHash('sha256').update(readFileSync(path.join(wal, segment))).digest('hex'));
  } catch {
    // recycled already: the other checks still hold for it
  }
}

const errorTypeOf = (lastError: string | undefined) => /^([A-Z][A-Za-z]+): /.exec(lastError ?? '')?.[1];

/** Until every repository holds the spool up to `last`, or the ones lacking it go on refusing. */
async function shipped(stack: ChaosStack, handle: WorkflowHandle, last: string, closed: () => Outcome | undefined, ended: () => boolean): Promise<Outcome> {
  const refusing = new Map<string, { type: string; since: number }>();
  for (;;) {
    const early = closed();
    if (early) return early.status === 'completed' ? { status: 'failed', message: 'shipWal returned: it never should' } : early;
    if (ended()) return { status: 'terminated' };
    const lag = await shippingLag(stack, last);
    const behind = Object.keys(lag.missing).filter((r) => lag.missing[r].length);
    if (lag.spool.has(last) && !behind.length) return { status: 'completed' };
    const state = await handle.query(walShippingQuery).catch(() => undefined);
    if (state && lag.spool.has(last)) {
      for (const [name, repository] of Object.entries(state.repositories)) {
        const type = errorTypeOf(repository.lastError);
        if (!type) refusing.delete(name);
        else if (refusing.get(name)?.type !== type) refusing.set(name, { type, since: state.passes });
      }
      const stuck = behind.map((r) => refusing.get(r));
      if (stuck.every((s) => s && state.passes - s.since >= REFUSING_PASSES)) {
        return { status: 'failed', errorType: stuck[0]!.type, message: `${behind.join(', ')} refused for ${REFUSING_PASSES} passes: ${state.repositories[behind[0]].lastError}` };
      }
    }
    await sleep(500);
  }
}

/** Cancels shipWal between two passes (no pass running), as an operator ends it; returns problems. */
async function stopShipping(handle: WorkflowHandle): Promise<string[]> {
  const passes = async () => (await handle.query(walShippingQuery)).passes;
  const before = await passes().catch(() => -1);
  await until(async () => (await passes()) > before && !(await handle.describe()).raw.pendingActivities?.length, 30_000, 100);
  await handle.cancel();
  const end = await within(settle(handle), 60_000, { status: 'hung' } as Outcome);
  if (end.status === 'cancelled') return [];
  if (end.status === 'hung') await handle.terminate('chaos: shipWal did not end on cancellation').catch(() => undefined);
  return [`shipWal, cancelled, ended ${end.status}${end.errorType ? ` ${end.errorType}` : ''}${end.message ? `: ${end.message.slice(0, 160)}` : ''}`];
}

function describeLag(missing: Record<string, string[]>, state: WalShippingState | undefined): string {
  return Object.entries(missing)
    .filter(([, names]) => names.length)
    .map(([r, names]) => `${r} lacks ${names.length} (${names.slice(0, 2).join(', ')}${state?.repositories[r]?.lastError ? `; last error ${state.repositories[r].lastError!.slice(0, 120)}` : ''})`)
    .join('; ');
}

export const walShippingScenario: Scenario = {
  name: 'WAL shipping',
  typicalMs: 8000,
  async start(stack, workflowId) {
    const state = stateOf(stack);
    const handle = await startWorkflow(stack.client, 'shipWal', workflowId, { intervalSeconds: 1 });
    state.shippers.set(workflowId, handle);
    let ended = false;
    let closed: Outcome | undefined;
    void settle(handle).then((o) => (closed = o));
    const outcome = (async (): Promise<Outcome> => {
      let last = '';
      for (let i = 0; i < SEGMENTS_PER_RUN; i++) {
        last = await closeSegment(stack, `${workflowId}:${i}`, () => ended);
        await recordWritten(stack, last);
      }
      return shipped(stack, handle, last, () => closed, () => ended);
    })().catch((err: Error): Outcome => ({ status: 'failed', errorType: 'HarnessError', message: `the run's own writes failed: ${err.message}` }));
    return {
      outcome,
      async terminate() {
        ended = true;
        await handle.terminate('chaos: no close within the bound').catch(() => undefined);
      },
    };
  },
  async check(stack, outcome, run) {
    const state = stateOf(stack);
    const handle = state.shippers.get(run.workflowId);
    state.shippers.delete(run.workflowId);
    const problems: string[] = [];
    let shippedUpTo: string | undefined;
    if (handle && outcome.status !== 'hung' && outcome.status !== 'terminated') {
      // The fault has healed: what it held back must arrive now.
      const { spool } = await shippingLag(stack);
      const bound = [...spool].sort().at(-1);
      let lag: Record<string, string[]> = {};
      const caughtUp = await until(async () => {
        lag = (await shippingLag(stack, bound)).missing;
        return Object.values(lag).every((m) => !m.length);
      }, CATCH_UP_MS, 500);
      if (caughtUp) shippedUpTo = bound;
      else problems.push(`shipping did not catch up within ${CATCH_UP_MS / 1000} s after the fault healed: ${describeLag(lag, await handle.query(walShippingQuery).catch(() => undefined))}`);
      const running = await handle.describe().then((d) => d.status.name === 'RUNNING', () => false);
      if (running) problems.push(...(await stopShipping(handle)));
    }
    problems.push(...(await walArchiveProblems(stack, { shippedUpTo, written: state.written })));
    return problems;
  },
};
