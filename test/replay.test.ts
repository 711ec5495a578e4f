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
  expect(files).toEqual(expect.arrayContaining(['backupDatabase.json', 'restoreDatabase.json', 'verifyBackup.json', 'recoveryDrill.json', 'monitor.json']));
});

test.each(files)('%s holds ids, sizes, checksums and counts: no connection string, password or key', (file) => {
  const text = readFileSync(path.join(HISTORIES, file), 'utf8');
  expect(text).not.toMatch(/postgres(ql)?:\/\/|app-secret|PRIVATE KEY/);
});

test.each(files)('%s replays without a determinism error', async (file) => {
  const result = await replay(load(file), file);
  expect(result.error).toBeUndefined();
});

test.each(files)('%s, altered (its first activity swapped for another), fails with a determinism error', async (file) => {
  const json = load(file);
  const scheduled = json.events.find((e: any) => e.activityTaskScheduledEventAttributes).activityTaskScheduledEventAttributes;
  scheduled.activityType.name = scheduled.activityType.name === 'writeBackupManifest' ? 'discardBackupObjects' : 'writeBackupManifest';
  const result = await replay(json, `altered-${file}`);
  expect(result.error).toBeInstanceOf(DeterminismViolationError);
});
