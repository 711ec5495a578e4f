// Ships the WAL archive from the spool (where archive_command writes) to NAS and S3, forever:
// one pass every interval, each repository on its own, so S3 being down delays only S3 while
// the local archive keeps PostgreSQL's pg_wal from filling. A failed pass is recorded (the
// query and `backupctl status` show the lag and the error) and retried on the next one.
// Continues as new every few hundred passes to keep its history short.
import { allHandlersFinished, condition, continueAsNew, log, setHandler, sleep } from '@temporalio/workflow';
import { hostActivities, quickMetadata, walShippingPass } from './activityOptions.js';
import { describeFailure } from './failures.js';
import { walShippingQuery } from './messages.js';
import type { ShipWalInput, WalShippingState } from '../common/pitrTypes.js';
import { checkObject, checkTaskQueue, invalidInput } from './inputChecks.js';

const PASSES_PER_RUN = 200;

export async function shipWal(input: ShipWalInput): Promise<void> {
  checkObject(input);
  checkTaskQueue(input.hostTaskQueue);
  const interval = input.intervalSeconds ?? 30;
  if (!Number.isInteger(interval) || interval < 1 || interval > 3600) throw invalidInput('intervalSeconds', input.intervalSeconds, 'expected 1 to 3600');

  const quick = hostActivities(quickMetadata, input.hostTaskQueue);
  const ship = hostActivities(walShippingPass, input.hostTaskQueue);
  const { spool, targets } = await quick.walShippingTargets();
  const state: WalShippingState = input.state ?? { spool, repositories: {}, passes: 0 };
  state.spool = spool;
  for (const name of targets) state.repositories[name] ??= { newestSegment: null, behind: 0, lastShippedAt: null };
  setHandler(walShippingQuery, () => state);

  for (let pass = 0; pass < PASSES_PER_RUN; pass++) {
    const outcomes = await Promise.allSettled(targets.map((repository) => ship.shipWalTo({ repository })));
    const now = new Date().toISOString();
    outcomes.forEach((outcome, i) => {
      const repo = state.repositories[targets[i]];
      if (outcome.status === 'fulfilled') {
        repo.newestSegment = outcome.value.newestSegment;
        repo.behind = outcome.value.behind;
        if (outcome.value.shipped > 0) repo.lastShippedAt = now;
        delete repo.lastError;
        delete repo.lastErrorAt;
      } else {
        repo.lastError = describeFailure(outcome.reason);
        repo.lastErrorAt = now;
        log.warn('WAL shipping pass failed', { repository: targets[i], error: repo.lastError });
      }
    });
    state.passes++;
    await sleep(interval * 1000);
  }
  await condition(allHandlersFinished);
  await continueAsNew<typeof shipWal>({ ...input, state });
}
