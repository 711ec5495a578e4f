// Chaos pass of 2026-11-28 (seed 20261128): a process that has exited but is not yet reaped (a
// zombie: its parent died too, and an init that reaps slowly, or never, as in many containers,
// inherited it) was taken for a live owner of its temporary folder, which then stayed. A zombie
// uses nothing: its folders are a dead process's.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { deadOwnersFolders, ownedTempPrefix } from '../engine/tempDirs.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tempdirs-zombie-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const stateOf = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return 'gone';
  }
};

test("a zombie's folder is a dead process's; a live process's is not", async () => {
  // The shell starts a short child, prints its pid and becomes `sleep`, which never reaps it.
  const parent = execa('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 30'], { reject: false });
  const zombie = await new Promise<number>((resolve) => parent.stdout!.once('data', (chunk: Buffer) => resolve(Number(String(chunk).trim()))));
  const live = parent.pid!;
  try {
    const folderOf = (pid: number) => path.join(dir, `${ownedTempPrefix('gpg').replace(`-${process.pid}-`, `-${pid}-`)}abc`);
    // Made while both run: younger than each process, as a live owner's folder is.
    mkdirSync(folderOf(zombie));
    mkdirSync(folderOf(live));
    const deadline = Date.now() + 10_000;
    while (stateOf(zombie) !== 'Z' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(stateOf(zombie)).toBe('Z');
    expect(await deadOwnersFolders([dir], ['gpg'])).toEqual([folderOf(zombie)]);
  } finally {
    parent.kill('SIGKILL');
    await parent;
  }
}, 30_000);
