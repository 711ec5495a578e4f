// Attack (hostile review of the retry budgets a Temporal-server restart can exhaust): the
// CLI's --wait waits on the workflow's result through the Temporal client, whose own retry of
// a lost connection gives up after about 20 s (10 attempts, backoff to 5 s). A server restart
// or failover longer than that made `backupctl backup database --wait` (and restore, verify,
// drill, pitr, sweep) exit with "Failed to get Workflow execution history" while the workflow
// went on and completed: the operator, or the script around the CLI, took a backup that was
// made for one that failed. A lost connection is now waited through; any other error (the
// workflow failed, the server refused) ends the wait at once.
import { ServiceError, WorkflowFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { startAndReport } from '../../client/workflowRun.js';
import type { Printer } from '../../client/output.js';

/** gRPC status codes (@grpc/grpc-js status). */
const UNAVAILABLE = 14;
const PERMISSION_DENIED = 7;

function grpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code}: ${details}`), { code, details, metadata: {} });
}

/** A client whose workflow's result fails with `failures` first, then is `result`. */
function clientWith(failures: Error[], result: object) {
  const asked: number[] = [];
  const handle = {
    workflowId: 'backup-database-20261128T200000Z',
    firstExecutionRunId: 'run-1',
    async result() {
      asked.push(Date.now());
      const failure = failures.shift();
      if (failure) throw failure;
      return result;
    },
  };
  const client = { workflow: { start: async () => handle } } as unknown as Client;
  return { client, asked };
}

function collect(): { out: Printer; printed: object[] } {
  const printed: object[] = [];
  return { printed, out: { json: true, result: (value) => void printed.push(value) } };
}

const backup = async (_input: object) => ({ backupId: 'b1' });
const lost = () => new ServiceError('Failed to get Workflow execution history', { cause: grpcError(UNAVAILABLE, 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:7233') });

test('a Temporal server away longer than the client retries: --wait waits through it and reports the result', async () => {
  const { client, asked } = clientWith([lost()], { backupId: 'b1' });
  const { out, printed } = collect();
  const code = await startAndReport(client, backup, { workflowId: 'backup-database-20261128T200000Z', args: [{}], wait: true }, out, () => 'done');
  expect({ code, printed, asked: asked.length }).toEqual({ code: 0, printed: [{ backupId: 'b1' }], asked: 2 });
}, 20_000);

test('a failed workflow and a refusal by the server end the wait at once', async () => {
  const failed = new WorkflowFailedError('Workflow execution failed', ApplicationFailure.nonRetryable('no space', 'DiskFull'), 'NON_RETRYABLE_FAILURE');
  const refused = new ServiceError('Failed to get Workflow execution history', { cause: grpcError(PERMISSION_DENIED, 'Request unauthorized.') });
  for (const failure of [failed, refused]) {
    const { client, asked } = clientWith([failure], { backupId: 'b1' });
    const { out, printed } = collect();
    await expect(startAndReport(client, backup, { workflowId: 'backup-database-20261128T200000Z', args: [{}], wait: true }, out, () => 'done')).rejects.toBe(failure);
    expect({ printed, asked: asked.length }).toEqual({ printed: [], asked: 1 });
  }
});
