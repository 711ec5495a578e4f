// Attack (issue 8, item 9 / README promise 7): the startup sweep trusts a process id alone.
// In the shipped container (Dockerfile: ENTRYPOINT ["node", ...]) the worker is PID 1, and a
// worker restarted after SIGKILL is PID 1 again, on the same hostname; its /tmp (the container's
// writable layer, where restore staging lands whenever /dev/shm is smaller than the archive
// twice plus 512 MiB: Docker's /dev/shm is 64 MiB) or its restore.workDir volume survive the
// restart. The sweep then takes the dead worker's plaintext for its own and keeps it for ever.
// The same holds for any pid reused by an unrelated process. A folder whose modification time
// is older than the process its name points to cannot have been made by that process.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ownedTempPrefix, sweepDeadOwners } from '../engine/tempDirs.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'attack-sweep-'));

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A staging folder as restore.ts makes it, holding "plaintext", last touched `agoSeconds` ago. */
function staleStaging(name: string, agoSeconds: number): string {
  const dir = path.join(root, name);
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(path.join(dir, 'dump.pgcustom'), 'PGDMP plaintext of a killed restore', { mode: 0o600 });
  const then = new Date(Date.now() - agoSeconds * 1000);
  utimesSync(path.join(dir, 'dump.pgcustom'), then, then);
  utimesSync(dir, then, then);
  return dir;
}

/** When a process started, from /proc (clock ticks since boot), as epoch milliseconds. */
function processStartMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const startTicks = Number(fields[19]);
  const ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
  const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  return Date.now() - (uptime - startTicks / ticks) * 1000;
}

test('a worker restarted under the same pid (PID 1 in its container) sweeps the plaintext its killed predecessor left, and keeps its own', async () => {
  // The predecessor's folder: our pid, our host tag, older than this process.
  const ageSeconds = Math.ceil(process.uptime()) + 3600;
  const predecessor = staleStaging(`${ownedTempPrefix('restore')}Prev01`, ageSeconds);
  expect(new Date(Date.now() - ageSeconds * 1000).getTime()).toBeLessThan(processStartMs(process.pid));
  // This process's own live staging folder: must stay.
  const own = mkdtempSync(path.join(root, ownedTempPrefix('restore')));
  writeFileSync(path.join(own, 'dump.pgcustom'), 'in use');

  const removed = await sweepDeadOwners([root]);

  expect(existsSync(own)).toBe(true);
  expect(removed).toContain(predecessor);
  expect(existsSync(predecessor)).toBe(false);
});

test('a pid reused by an unrelated live process does not keep a dead worker\'s plaintext for ever', async () => {
  const stranger = execa('sleep', ['60']);
  try {
    await new Promise((r) => setTimeout(r, 200));
    const startedAt = processStartMs(stranger.pid!);
    // The dead worker's folder, named with the pid the stranger now has, made an hour before it started.
    const dead = staleStaging(`backupctl-restore-${stranger.pid}-${ownedTempPrefix('gpg').split('-')[3]}-Dead01`, 3600);
    expect(Date.now() - 3600 * 1000).toBeLessThan(startedAt);

    const removed = await sweepDeadOwners([root]);

    expect(removed).toContain(dead);
    expect(existsSync(dead)).toBe(false);
  } finally {
    stranger.kill('SIGKILL');
    await stranger.catch(() => undefined);
  }
});
