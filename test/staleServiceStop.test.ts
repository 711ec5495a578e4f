// A stale attempt of the restore's stop step must never leave the application's services stopped.
// Chaos run (restore --replace, the worker's process group frozen with SIGSTOP until the run
// closed, then SIGCONT): the frozen attempt's `systemctl stop` finished after a newer attempt had
// stopped, the workflow had swapped, started the services and completed; nobody started them again.
// The activities run as Temporal runs them (MockActivityEnvironment, the real attempt adapter);
// the server's answer to describeWorkflowExecution is faked, and flips as the run would: the run
// goes on (or closes) while the stale attempt's stop command runs.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRestoreActivities } from '../activities/restore.js';
import type { Config } from '../common/config.js';

const UNITS = ['web', 'worker'];
let root: string;
let dir: string;

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'stale-service-stop-'));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

let n = 0;
beforeEach(() => {
  dir = path.join(root, `case-${++n}`);
  mkdirSync(path.join(dir, 'stopped'), { recursive: true });
  // A stand-in for systemctl: which units are stopped, and every call in order.
  writeFileSync(
    path.join(dir, 'systemctl'),
    `#!/bin/bash\nset -e\necho "$1 $2" >> ${dir}/calls\nif [ "$1" = stop ]; then touch ${dir}/stopped/$2; else rm -f ${dir}/stopped/$2; fi\n`,
  );
  chmodSync(path.join(dir, 'systemctl'), 0o755);
});

const stopped = (unit: string) => existsSync(path.join(dir, 'stopped', unit));
const calls = () => (existsSync(path.join(dir, 'calls')) ? readFileSync(path.join(dir, 'calls'), 'utf8').trim().split('\n') : []);

function activities() {
  const systemctl = path.join(dir, 'systemctl');
  const config = { host: 'stale-services', restore: { services: { units: UNITS, stopCommand: [systemctl, 'stop'], startCommand: [systemctl, 'start'] } } } as unknown as Config;
  return createRestoreActivities({ config, repositories: [] } as never);
}

const ACTIVITY_ID = '9';
const current = { workflowExecutionInfo: { status: 1 }, pendingActivities: [{ activityId: ACTIVITY_ID, attempt: 1, state: 2 }] };
const superseded = { workflowExecutionInfo: { status: 1 }, pendingActivities: [{ activityId: ACTIVITY_ID, attempt: 2, state: 2 }] };
const closed = { workflowExecutionInfo: { status: 2 }, pendingActivities: [] };

/** Attempt 1 of an activity whose server answers describeWorkflowExecution with `answer()`. */
function attemptOne(answer: () => unknown) {
  const client = {
    withAbortSignal: <R>(_signal: AbortSignal, fn: () => Promise<R>) => fn(),
    workflowService: { describeWorkflowExecution: async () => answer() },
  };
  return new MockActivityEnvironment(
    { attempt: 1, activityId: ACTIVITY_ID, workflowNamespace: 'default', workflowExecution: { workflowId: 'restore-stale-stop', runId: 'run-stale-stop' } } as Partial<Info>,
    { client: client as never },
  );
}

const outcome = (run: Promise<unknown>) => run.then((units) => `done: ${JSON.stringify(units)}`, (err: any) => `${err.type ?? err.name}: ${err.message}`);

test.each(['web', 'worker'])('a stop attempt whose workflow closed once %s was stopped leaves every unit started', async (flipAfter) => {
  // The run goes on without this attempt while its stop command runs (it was frozen there):
  // by the time that unit is stopped, the workflow has swapped, started the services and closed.
  const env = attemptOne(() => (stopped(flipAfter) ? closed : current));
  const result = await outcome(env.run(activities().stopApplicationServices));
  expect(result).toMatch(/^AttemptSuperseded: .*has closed/);
  expect(UNITS.filter(stopped)).toEqual([]);
  // It stopped nothing after it knew, and started again only what it had stopped.
  const upTo = UNITS.slice(0, UNITS.indexOf(flipAfter) + 1);
  expect(calls()).toEqual([...upTo.map((u) => `stop ${u}`), ...[...upTo].reverse().map((u) => `start ${u}`)]);
});

test("a stop attempt superseded while its workflow runs waits for the workflow's end, then starts the units", async () => {
  // The newer attempt stopped, the swap ran, the workflow's start step ran; then this attempt's
  // stop landed. The workflow closes a moment later: nobody else will start the units.
  let askedAfterStop = 0;
  const env = attemptOne(() => {
    if (!stopped('worker')) return current;
    return ++askedAfterStop <= 2 ? superseded : closed;
  });
  const result = await outcome(env.run(activities().stopApplicationServices));
  expect(result).toMatch(/^AttemptSuperseded: /);
  expect(askedAfterStop).toBeGreaterThan(2);
  expect(UNITS.filter(stopped)).toEqual([]);
}, 60_000);

test('a stop attempt that stands stops every unit and leaves them stopped, as before', async () => {
  const env = attemptOne(() => current);
  expect(await outcome(env.run(activities().stopApplicationServices))).toBe(`done: ${JSON.stringify(UNITS)}`);
  expect(UNITS.filter(stopped)).toEqual(UNITS);
});

test('a stop attempt that no longer stands before it begins stops nothing', async () => {
  const env = attemptOne(() => superseded);
  expect(await outcome(env.run(activities().stopApplicationServices))).toMatch(/^AttemptSuperseded: /);
  expect(calls()).toEqual([]);
});

test('a start attempt superseded while its workflow runs starts nothing; once the workflow closed, it starts', async () => {
  for (const unit of UNITS) writeFileSync(path.join(dir, 'stopped', unit), '');
  expect(await outcome(attemptOne(() => superseded).run(activities().startApplicationServices))).toMatch(/^AttemptSuperseded: /);
  expect(UNITS.filter(stopped)).toEqual(UNITS);
  expect(await outcome(attemptOne(() => closed).run(activities().startApplicationServices))).toBe(`done: ${JSON.stringify([...UNITS].reverse())}`);
  expect(UNITS.filter(stopped)).toEqual([]);
});

test('a stop attempt whose workflow cancelled it while its stop command ran starts the units again', async () => {
  // TRY_CANCEL: the workflow does not wait for the attempt; its cleanup may start the units before this stop lands.
  const cancelRequested = { workflowExecutionInfo: { status: 1 }, pendingActivities: [{ activityId: ACTIVITY_ID, attempt: 1, state: 3 }] };
  const env = attemptOne(() => (stopped('worker') ? cancelRequested : current));
  expect(await outcome(env.run(activities().stopApplicationServices))).toMatch(/^CancelledFailure: /);
  expect(UNITS.filter(stopped)).toEqual([]);
});
