// Attack on the chaos harness's judgement: a tool process of the stack that no live worker is an
// ancestor of is an orphan, a violation. The check knew only some of the tools the engine runs:
// not `cat` (the producer stage of the WAL archive's pipeline, engine/walArchive.ts), `pg_ctl`
// (a recovery server's start, status and `-w` stop, engine/recoveryCluster.ts) nor `pg_amcheck`
// (a verification's check, engine/inspection.ts). Such an orphan, left by a killed or frozen
// worker, passed every run. Planted here: one of each, named as the engine's are, outside any
// worker, and one inside a live "worker" that stays unreported.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { strayProcesses } from '../chaos/invariants.js';
import type { ChaosStack } from '../chaos/stack.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'chaos-stray-tools-'));
const stack = { tmpDir: path.join(dir, 'tmp') } as unknown as ChaosStack;
const planted: number[] = [];

afterAll(() => {
  for (const pid of planted) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A process named `name` (a copy of `sleep`, so it waits and costs nothing), with the stack's
 * TMPDIR, orphaned: started by a shell that exits at once, so its parent is init (or this
 * machine's subreaper), never this test.
 */
function orphan(name: string): number {
  const binary = path.join(dir, name);
  copyFileSync(execFileSync('sh', ['-c', 'command -v sleep'], { encoding: 'utf8' }).trim(), binary);
  const pid = Number(execFileSync('sh', ['-c', `"${binary}" 600 >/dev/null 2>&1 </dev/null & echo $!`], { env: { ...process.env, TMPDIR: stack.tmpDir }, encoding: 'utf8' }).trim());
  planted.push(pid);
  return pid;
}

test('an orphaned cat, pg_ctl or pg_amcheck of the stack is reported; one under a live worker is not', async () => {
  const orphans = ['cat', 'pg_ctl', 'pg_amcheck'].map((name) => ({ name, pid: orphan(name) }));
  // A "worker" (a live process of the stack) with its own cat below it.
  const worker = spawn('sh', ['-c', `"${path.join(dir, 'cat')}" 600 & wait`], { env: { ...process.env, TMPDIR: stack.tmpDir }, stdio: 'ignore', detached: true });
  planted.push(worker.pid!);
  await new Promise((r) => setTimeout(r, 300));
  const found = await strayProcesses(stack, [worker.pid!]);
  expect(found).toEqual(expect.arrayContaining(orphans.map(({ name, pid }) => expect.stringMatching(new RegExp(`^${name} \\(pid ${pid}, `)))));
  expect(found).toHaveLength(orphans.length);
});
