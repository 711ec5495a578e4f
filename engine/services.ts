// The application's services around a database swap: stopped so nothing writes to the old
// database mid-swap, and started again on every path. The commands are configuration
// (default `systemctl stop|start <unit>`, the seed's units); stopping a stopped unit and
// starting a running one are no-ops for systemctl, so both steps may be retried.
//
// A stale attempt (its worker frozen mid-stop while the run went on with a newer attempt, then
// woken) must not leave the services stopped behind the run: the run has swapped and started
// them, or is about to. Each unit's stop is fenced by the attempt's standing, and once a stop
// command ran, the server is asked again; an attempt that no longer stands starts again what it
// stopped: at once when its workflow has closed or was cancelled, else when the workflow closes
// (its own start step starts them before that, unless that step already ran). A start refuses
// only while a newer attempt of a still running workflow holds its place. Outside an attempt
// (the CLI, a test) every attempt stands: nothing changes.
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorType } from '../common/types.js';
import type { Config } from '../common/config.js';
import { attemptStanding, currentAttempt, orchestratorStanding, staleAttempt, type Standing } from './attemptStanding.js';
import { errorText, permanent, transient } from './errors.js';
import { runCommand } from './exec.js';

export type ServiceAction = 'stop' | 'start';

export interface StaleStopOptions {
  /** How long a superseded stop waits for its still running workflow to close (default 10 minutes). */
  waitForCloseMs?: number;
  /** How often it asks meanwhile (default 2 seconds). */
  pollMs?: number;
}

export async function runServiceCommands(config: Config, action: ServiceAction, signal?: AbortSignal, options: StaleStopOptions = {}): Promise<string[]> {
  return action === 'stop' ? stopUnits(config, signal, options) : startUnits(config);
}

async function runUnit(config: Config, action: ServiceAction, unit: string, signal?: AbortSignal): Promise<void> {
  const { stopCommand, startCommand } = config.restore.services;
  const [file, ...args] = action === 'stop' ? stopCommand : startCommand;
  try {
    await runCommand(file, [...args, unit], { signal });
  } catch (err) {
    const text = `${action} ${unit}: \`${[file, ...args, unit].join(' ')}\` failed: ${errorText(err)}`;
    if ((err as { code?: string }).code === 'ENOENT') throw permanent(ErrorType.ServiceCommandFailed, text);
    throw transient(ErrorType.ServiceCommandFailed, text);
  }
}

const STOPPING = "stopping the application's services";

async function stopUnits(config: Config, signal: AbortSignal | undefined, options: StaleStopOptions): Promise<string[]> {
  const { units } = config.restore.services;
  /** The units whose stop command this attempt ran (or began: a stop cut short may have stopped). */
  const touched: string[] = [];
  let lost: Extract<Standing, { state: 'gone' | 'cancelled' }> | undefined;
  let ended: unknown;
  for (const unit of units) {
    const standing = await attemptStanding();
    if (standing.state === 'gone') {
      lost = standing;
      break;
    }
    if (standing.state === 'cancelled') {
      ended = cancelled();
      break;
    }
    touched.push(unit);
    try {
      await runUnit(config, 'stop', unit, signal);
    } catch (err) {
      ended = err;
      break;
    }
  }
  // Once a stop ran, however the loop ended: does the run still wait for this attempt? The
  // server answers, even when the runner already told the attempt to stop.
  if (touched.length && !lost) {
    const after = await orchestratorStanding();
    if (after.state === 'gone' || after.state === 'cancelled') lost = after;
  }
  if (lost) {
    if (touched.length) await startAfterStaleStop(config, touched, lost, options);
    throw lost.state === 'gone' ? staleAttempt(STOPPING, lost.why) : cancelled();
  }
  if (ended !== undefined) throw ended;
  return units;
}

/**
 * Starts again the units a stop attempt that no longer stands stopped: at once when its
 * workflow closed (the run's start step has run, or never will) or cancelled it (its cleanup
 * starts them anyway, perhaps already did); when a newer attempt took its place in a workflow
 * that still runs, once that workflow closes (bounded: the run's own start step comes before).
 */
async function startAfterStaleStop(
  config: Config,
  touched: string[],
  lost: Extract<Standing, { state: 'gone' | 'cancelled' }>,
  { waitForCloseMs = 10 * 60_000, pollMs = 2_000 }: StaleStopOptions,
): Promise<void> {
  const warn = (message: string, details: Record<string, unknown>) => currentAttempt()?.warn(message, { units: touched, ...details });
  let why = lost.state === 'gone' ? lost.why : 'the workflow cancelled this step';
  if (lost.state === 'gone' && !lost.workflowClosed) {
    warn('a stale attempt stopped services while its workflow still runs: waiting for the workflow to close before starting them again', { why });
    const deadline = Date.now() + waitForCloseMs;
    let closed = false;
    while (!closed && Date.now() < deadline) {
      await sleep(pollMs);
      const now = await orchestratorStanding();
      if (now.state === 'gone' && now.workflowClosed) {
        closed = true;
        why = now.why;
      }
    }
    if (!closed) {
      warn("a stale attempt stopped services; its workflow still runs: the workflow's own start step starts them", { why, waitedMs: waitForCloseMs });
      return;
    }
  }
  const failed: string[] = [];
  for (const unit of [...touched].reverse()) {
    try {
      await runUnit(config, 'start', unit);
    } catch (err) {
      failed.push(errorText(err));
    }
  }
  if (failed.length) warn('a stale attempt stopped services and could not start them all again: start them by hand', { why, failures: failed });
  else warn('a stale attempt stopped services after its run had gone on: started them again', { why });
}

async function startUnits(config: Config): Promise<string[]> {
  // Started in the reverse order of stopping: workers before the web app's scheduler, say.
  const ordered = [...config.restore.services.units].reverse();
  for (const unit of ordered) {
    // A newer attempt of a running workflow holds this step: starting is its call. Once the
    // workflow closed, starting is never wrong (nothing of that run stops them again).
    const standing = await orchestratorStanding();
    if (standing.state === 'gone' && !standing.workflowClosed) throw staleAttempt(`starting the application's services (${unit})`, standing.why);
    await runUnit(config, 'start', unit);
  }
  return ordered;
}

function cancelled(): Error {
  return currentAttempt()?.cancelled() ?? new Error('cancel requested');
}
