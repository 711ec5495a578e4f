// Every recorded history in test/histories replays against today's workflow code; a change
// that would break running workflows fails here first. One deliberately altered history must
// fail, proving the check can fail.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from '../workers/worker.js';

const HISTORIES = path.resolve('test/histories');
const files = readdirSync(HISTORIES).filter((f) => f.endsWith('.json'));

function load(file: string) {
  return JSON.parse(readFileSync(path.join(HISTORIES, file), 'utf8'));
}

async function replay(json: unknown, workflowId: string) {
  const results = Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, [{ workflowId, history: historyFromJSON(json) }]);
  for await (const result of results) return result;
  throw new Error('nothing replayed');
}

test('there is a recorded history for every workflow', () => {
  expect(files).toEqual(expect.arrayContaining(['backupDatabase.json']));
});

test.each(files)('%s replays without a determinism error', async (file) => {
  const result = await replay(load(file), file);
  expect(result.error).toBeUndefined();
});

test('an altered history (a different activity scheduled) fails with a determinism error', async () => {
  const json = load('backupDatabase.json');
  const scheduled = json.events.find((e: any) => e.activityTaskScheduledEventAttributes);
  expect(scheduled.activityTaskScheduledEventAttributes.activityType.name).toBe('planDatabaseBackup');
  scheduled.activityTaskScheduledEventAttributes.activityType.name = 'dumpDatabaseToRepositories';
  const result = await replay(json, 'altered');
  expect(result.error).toBeInstanceOf(DeterminismViolationError);
});
