// `--wait`'s progress (client/progress.ts): the line from a heartbeat (phase, bytes, rate over
// the last samples, ETA when the activity says its total), redrawn in place at a terminal;
// plain lines otherwise, only when something changed and at most so often.
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { ProgressLine, watchProgress } from '../../client/progress.js';

const MiB = 1024 * 1024;
const T0 = 1_800_000_000_000;

test('phase, bytes, rate and ETA from successive heartbeats; the attempt and its last failure after a retry', () => {
  const line = new ProgressLine(T0);
  const at = (s: number, bytes: number, extra: object = {}) => line.render({ activity: 'restoreIntoNewDatabase', attempt: 1, details: { phase: 'restoring', bytes, totalBytes: 100 * MiB, ...extra } }, T0 + s * 1000);
  expect(at(0, 0)).toBe('restoreIntoNewDatabase  restoring  0 B  00:00 elapsed');
  expect(at(1, 10 * MiB)).toBe('restoreIntoNewDatabase  restoring  10.0 MiB  10.0 MiB/s  ETA 00:09 (of 100.0 MiB)  00:01 elapsed');
  expect(at(2, 20 * MiB)).toBe('restoreIntoNewDatabase  restoring  20.0 MiB  10.0 MiB/s  ETA 00:08 (of 100.0 MiB)  00:02 elapsed');
  expect(line.render({ activity: 'dumpDatabaseToRepositories', attempt: 2, lastFailure: 'worker lost', details: { phase: 'dumping', plainBytes: 5 * MiB } }, T0 + 3000)).toBe(
    'dumpDatabaseToRepositories  dumping  5.0 MiB  attempt 2 (last failure: worker lost)  00:03 elapsed',
  );
  expect(line.render(undefined, T0 + 61_000)).toBe('waiting: no activity running (01:01 elapsed)');
});

function fakeClient(details: () => object | undefined): Client {
  return {
    workflow: {
      options: { loadedDataConverter: { payloadConverter: defaultPayloadConverter, payloadCodecs: [], failureConverter: undefined } },
      getHandle: () => ({
        describe: async () => {
          const d = details();
          return { raw: { pendingActivities: d ? [{ activityType: { name: 'dumpDatabaseToRepositories' }, attempt: 1, heartbeatDetails: { payloads: [defaultPayloadConverter.toPayload(d)] } }] : [] } };
        },
      }),
    },
  } as unknown as Client;
}

function fakeStream(isTTY: boolean) {
  const written: string[] = [];
  return { stream: { isTTY, columns: 80, write: (text: string) => (written.push(text), true) } as unknown as NodeJS.WritableStream & { isTTY?: boolean }, written };
}

const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
};

test('at a terminal: one line redrawn in place, cleared at the end', async () => {
  let bytes = 0;
  const { stream, written } = fakeStream(true);
  const watch = watchProgress(fakeClient(() => ({ phase: 'dumping', plainBytes: (bytes += MiB) })), 'wf', stream, { intervalMs: 20 });
  await until(() => written.length >= 3);
  watch.stop();
  expect(written.slice(0, 3).every((w) => w.startsWith('\r\x1b[2KdumpDatabaseToRepositories  dumping  '))).toBe(true);
  expect(written.some((w) => w.includes('\n'))).toBe(false);
  expect(written.at(-1)).toBe('\r\x1b[2K');
});

test('not a terminal: plain lines, only when something changed, at most once per interval', async () => {
  const { stream, written } = fakeStream(false);
  let phase = 'dumping';
  const watch = watchProgress(fakeClient(() => ({ phase })), 'wf', stream, { intervalMs: 10, plainEveryMs: 0 });
  await until(() => written.length >= 1);
  await new Promise((r) => setTimeout(r, 100));
  expect(written).toEqual([expect.stringMatching(/^progress: dumpDatabaseToRepositories {2}dumping {2}00:00 elapsed\n$/)]);
  phase = 'verifying';
  await until(() => written.length >= 2);
  watch.stop();
  expect(written[1]).toMatch(/^progress: dumpDatabaseToRepositories {2}verifying {2}/);
  expect(written).toHaveLength(2);
});
