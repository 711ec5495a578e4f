// Starting a workflow from the CLI: a business-key workflow id (a second start collides
// instead of running twice), and either "started" at once or the result after --wait.
import { watchProgress } from './progress.js';
import { backupIdOf } from '../workflows/backupId.js';
import { ServiceError, WorkflowIdReusePolicy, isGrpcDeadlineError, isGrpcServiceError, isRetryableError, type Client, type Workflow, type WorkflowStartOptions } from '@temporalio/client';
import { COMPRESSIONS, ErrorType, SHARED_TASK_QUEUE, type Compression } from '../common/types.js';
import type { Printer } from './output.js';

/** `<kind>-20261126T031500Z`, from the client's clock. */
export function defaultWorkflowId(kind: string, now = new Date()): string {
  return `${kind}-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

/** Bad input, refused before any workflow starts: nothing exists to fail. The CLI exits 2. */
export class InputRefused extends Error {
  readonly type = ErrorType.InvalidInput;
  override readonly name = ErrorType.InvalidInput;
}

/**
 * Runs a workflow's own input check (workflows/inputValidation.ts) on the input the CLI is
 * about to start it with, and returns that input; whatever the check throws becomes InputRefused.
 */
export function refuseInvalid<T>(input: T, validate: (input: T) => void): T {
  try {
    validate(input);
  } catch (err) {
    throw new InputRefused(err instanceof Error ? err.message : String(err));
  }
  return input;
}

/** --workflow-id of a backup: it must make a backup id (backupId.ts), checked before anything starts. */
export function backupWorkflowIdOption(workflowId: string | undefined): void {
  if (workflowId !== undefined) refuseInvalid(workflowId, backupIdOf);
}

/** --compression, checked before anything starts. */
export function compressionOption(value: string | undefined): Compression | undefined {
  if (value !== undefined && !COMPRESSIONS.includes(value as Compression)) throw new InputRefused(`--compression ${value} is not one of: ${COMPRESSIONS.join(', ')}`);
  return value as Compression | undefined;
}

/**
 * A whole-number option as the workflow should see it: digits become a number, anything else
 * stays the text it was, so the workflow's check names what was typed (Number('2x') is NaN,
 * which JSON would carry as null).
 */
export function numberOption(value: string | undefined): number | string | undefined {
  if (value === undefined) return undefined;
  return /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : value;
}

/** --repository names, checked against this configuration before anything starts. */
export function repositoriesOption(names: string[] | undefined, configured: string[]): string[] | undefined {
  if (!names?.length) return undefined;
  const unknown = names.filter((name) => !configured.includes(name));
  if (unknown.length) throw new InputRefused(`--repository ${unknown.join(', ')}: not configured; configured repositories: ${configured.join(', ')}`);
  return names;
}

export async function startAndReport<W extends Workflow>(
  client: Client,
  workflow: W,
  options: { workflowId: string; args: Parameters<W>; wait?: boolean },
  out: Printer,
  describe: (result: Awaited<ReturnType<W>>) => string,
): Promise<number> {
  const handle = await client.workflow.start(workflow, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId: options.workflowId,
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    args: options.args,
  } as unknown as WorkflowStartOptions<W>);
  if (!options.wait) {
    out.result({ workflowId: options.workflowId, runId: handle.firstExecutionRunId, status: 'started' }, () => `started ${options.workflowId}; follow it with: backupctl status`);
    return 0;
  }
  // At a terminal, a live line from the heartbeats; plain lines otherwise; nothing with --json.
  const progress = out.json ? undefined : watchProgress(client, options.workflowId, process.stderr);
  let result: Awaited<ReturnType<W>>;
  try {
    result = (await resultThroughOutages(handle)) as Awaited<ReturnType<W>>;
  } finally {
    progress?.stop();
  }
  out.result(result as object, () => describe(result));
  return 0;
}

/** How long --wait goes on waiting while Temporal does not answer, from the first failure. */
const OUTAGE_PATIENCE_MS = 60 * 60_000;
/** A call that ran this long before it failed found the server answering at first: a new outage. */
const ANSWERED_FOR_MS = 60_000;

/**
 * The workflow's result, waited for through a Temporal outage. The client retries a lost
 * connection for about 20 s (10 attempts, backoff to 5 s); a server restart or failover takes
 * longer, and the workflow goes on meanwhile, so giving up would report a backup that is being
 * made as one that failed. A lost connection (a retryable gRPC status, a deadline) is waited
 * through, for up to an hour per outage, saying so on stderr; anything else (the workflow's
 * own failure, a refusal by the server) ends the wait at once.
 */
export async function resultThroughOutages<T>(handle: { workflowId: string; result(): Promise<T> }): Promise<T> {
  let outageSince: number | undefined;
  let delayMs = 1000;
  for (;;) {
    const asked = Date.now();
    try {
      return await handle.result();
    } catch (err) {
      if (!lostConnection(err)) throw err;
      const now = Date.now();
      if (outageSince === undefined || now - asked >= ANSWERED_FOR_MS) {
        outageSince = now;
        delayMs = 1000;
      }
      if (now - outageSince >= OUTAGE_PATIENCE_MS) throw err;
      process.stderr.write(`backupctl: Temporal does not answer (${(err as Error).message}: ${(err as ServiceError).cause?.message ?? ''}); ${handle.workflowId} goes on without us; asking for its result again in ${delayMs / 1000} s\n`);
      await new Promise((r) => setTimeout(r, delayMs));
      delayMs = Math.min(delayMs * 2, 30_000);
    }
  }
}

function lostConnection(err: unknown): boolean {
  if (!(err instanceof ServiceError)) return false;
  const cause = err.cause;
  return isGrpcDeadlineError(err) || (isGrpcServiceError(cause) && isRetryableError({ code: cause.code, details: cause.details, metadata: cause.metadata }));
}
