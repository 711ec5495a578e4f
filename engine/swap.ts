// The swap of a verified restored database into the live one's place: the live database
// closed to new connections, its sessions ended, then both renames in ONE transaction (live ->
// keepAs, replacement -> live), so there is never a moment without a live database. Only a
// database this run restored goes live; in the same transaction its owner marker becomes a
// plain "live" comment, so no later run's cleanup can take it for its own. Idempotent: a swap
// this run already did (its COMMIT went through, whatever became of the answer) is recognised
// and reported. ALLOW_CONNECTIONS false outlives the session that set it: it is undone on every
// path, on a fresh connection when the swap's own died (bounded, while the server restarts),
// and at the start of every attempt, for one whose worker died before it could. A lost
// connection is DatabaseUnreachable (retryable). Permanent: SwapFailed.
import { ErrorType } from '../common/types.js';
import { classifyDatabaseError, errorText, isEngineError, permanent, transient } from './errors.js';
import type { DatabaseTarget } from './postgres.js';
import { allowConnectionsAgain, databaseComment, madeBy, markDatabase, quoteIdent, terminateSessions, withServer, type Maker } from './restoreTarget.js';

export interface SwapInput {
  live: string;
  replacement: string;
  keepAs: string;
}

export interface SwapResult {
  live: string;
  keptAs: string;
  sessionsEnded: number;
}

/** Where the swap says what it did. */
export interface SwapLog {
  info(message: string, details: Record<string, unknown>): void;
  warn(message: string, details: Record<string, unknown>): void;
}

/** Swaps `input.replacement`, restored by `maker`'s run, into `input.live`'s place on `server`. */
export async function swapIntoLive(server: DatabaseTarget, input: SwapInput, maker: Maker, log: SwapLog): Promise<SwapResult> {
  const reopen = async (client: Parameters<typeof allowConnectionsAgain>[0], names: string[]) => {
    const reopened = await allowConnectionsAgain(client, server, names);
    if (reopened.length) log.warn('databases accept connections again', { databases: reopened });
  };
  return withServer(server, async (client) => {
    // An earlier attempt whose worker died, or whose server stayed away past its bound, may
    // have left the live database refusing connections: the application's outage.
    await reopen(client, [input.live]);
    const live = await databaseComment(client, input.live);
    const replacement = await databaseComment(client, input.replacement);
    const kept = await databaseComment(client, input.keepAs);
    if (kept.exists && live.exists && !replacement.exists) {
      if (swappedInBy(live.comment) !== maker.runId) {
        throw permanent(ErrorType.SwapFailed, `cannot swap: "${input.replacement}" is missing and "${input.keepAs}" exists, but "${input.live}" was not swapped in by this run`);
      }
      // Done by an earlier attempt (or this one's COMMIT, its answer lost): the database it
      // kept may still refuse connections.
      await reopen(client, [input.keepAs, input.live]);
      return { live: input.live, keptAs: input.keepAs, sessionsEnded: 0 };
    }
    if (!live.exists || !replacement.exists || kept.exists) {
      throw permanent(
        ErrorType.SwapFailed,
        `cannot swap: live "${input.live}" ${live.exists ? 'exists' : 'is missing'}, restored "${input.replacement}" ${replacement.exists ? 'exists' : 'is missing'}, "${input.keepAs}" ${kept.exists ? 'already exists' : 'is free'}`,
      );
    }
    // Only what this run restored goes live.
    if (madeBy(replacement.comment)?.runId !== maker.runId) {
      throw permanent(ErrorType.SwapFailed, `cannot swap: database "${input.replacement}" was not restored by this run`);
    }
    let swapped: { live: string; keptAs: string; sessionsEnded: number } | undefined;
    let failure: unknown;
    try {
      // Inside the try: a connection lost on this statement may still have committed it.
      await client.query(`ALTER DATABASE ${quoteIdent(input.live)} WITH ALLOW_CONNECTIONS false`);
      const ended = (await terminateSessions(client, input.live)) + (await terminateSessions(client, input.replacement));
      await client.query('BEGIN');
      await client.query(`ALTER DATABASE ${quoteIdent(input.live)} RENAME TO ${quoteIdent(input.keepAs)}`);
      await client.query(`ALTER DATABASE ${quoteIdent(input.replacement)} RENAME TO ${quoteIdent(input.live)}`);
      // Live now, so no run owns it any more: its comment must not be a marker any
      // cleanup would take as its own. In the same transaction as the renames.
      await markDatabase(client, input.live, liveComment(maker));
      await client.query('COMMIT');
      log.info('live database swapped', { live: input.live, keptAs: input.keepAs, sessionsEnded: ended });
      swapped = { live: input.live, keptAs: input.keepAs, sessionsEnded: ended };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      failure = swapFailure(err, input);
    }
    // On every path: whichever name it has now (the COMMIT may have gone through
    // unanswered), the old database stays usable for inspection, and the live one usable
    // at all. On this connection, or a fresh one when it died.
    try {
      await reopen(client, [input.keepAs, input.live]);
    } catch (err) {
      // Still refusing: a retry's first step lets them in again, so a retry must come.
      const unreachable = classifyDatabaseError(err, `"${input.live}" or "${input.keepAs}" may still refuse connections`);
      throw transient(ErrorType.DatabaseUnreachable, failure === undefined ? unreachable.message : `${errorText(failure)}; ${unreachable.message}`);
    }
    if (failure !== undefined || !swapped) throw failure;
    return swapped;
  });
}

/**
 * After a restore that failed once its swap had begun (the workflow's compensation): lets the
 * live database accept connections again, and the name the swap keeps the old one as only when
 * the swap of run `runId` went through (the live database says so: liveComment). Before that,
 * the name may hold another's database, closed on purpose, which the swap refused to touch and
 * nobody may open (hostile review: the compensation opened it). Waits for the server as
 * allowConnectionsAgain does; returns the names it changed.
 */
export async function reopenAfterFailedSwap(server: DatabaseTarget, input: { live: string; keepAs: string }, runId: string | undefined): Promise<string[]> {
  const reopened = await allowConnectionsAgain(undefined, server, [input.live]);
  // The server is back: whose the kept name is, read from the live database's comment.
  const swappedByThisRun = runId !== undefined && (await withServer(server, async (client) => swappedInBy((await databaseComment(client, input.live)).comment))) === runId;
  return swappedByThisRun ? [...reopened, ...(await allowConnectionsAgain(undefined, server, [input.keepAs]))] : reopened;
}

/** The comment of a database swapped in as the live one: what happened, and no owner marker. */
function liveComment(maker: Maker): string {
  return `live database (backupctl: swapped in ${new Date().toISOString()} by workflow ${maker.workflowId}, run ${maker.runId}); no restore owns it`;
}

/** The run that swapped a live database in, from its liveComment; nothing for any other comment. */
function swappedInBy(comment: string | null): string | undefined {
  return comment === null ? undefined : /^live database \(backupctl: swapped in \S+ by workflow .*, run ([0-9A-Za-z-]+)\); no restore owns it$/s.exec(comment)?.[1];
}

/**
 * What a failed swap means: a lost connection (a terminated session, a restarting server) is
 * worth a retry, which finds the swap done or not done, never half done (one transaction); a
 * refusal by the server (a session that will not go, a name taken) would come again.
 */
function swapFailure(err: unknown, input: SwapInput) {
  if (isEngineError(err)) return err;
  const failure = classifyDatabaseError(err, `swapping ${input.replacement} into ${input.live}`);
  if (failure.type === ErrorType.DatabaseUnreachable) return failure;
  return permanent(ErrorType.SwapFailed, `swapping ${input.replacement} into ${input.live}: ${errorText(err)}`);
}
