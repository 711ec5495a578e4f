// `backupctl dev --dir` in a folder another OS user controls (one made in /tmp by them first,
// or below one of theirs): they could swap the wrapper script, the configuration or the S3 keys
// the stack writes there, and the operator (root, often) runs them next. Refused before anything
// starts. Run as root (CI), the other user is `nobody`.
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runDev } from '../client/dev/stack.js';

const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

(asRoot ? test : test.skip)("a state folder another user owns, or one below a folder of theirs, is refused and left as it was", async () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'backupctl-devdir-'));
  try {
    const theirs = path.join(base, 'theirs');
    mkdirSync(theirs, { mode: 0o777 });
    chownSync(theirs, NOBODY, NOBODY);
    // Random ports: were the folder taken, the stack would not collide with another.
    const portOffset = 1000 + Math.floor(Math.random() * 8000);
    await expect(runDev({ dir: theirs, once: true, serve: false, portOffset })).rejects.toThrow(/owned by uid 65534/);
    expect(readdirSync(theirs)).toEqual([]);
    await expect(runDev({ dir: path.join(theirs, 'dev'), once: true, serve: false, portOffset })).rejects.toThrow(/owned by uid 65534/);
    expect(existsSync(path.join(theirs, 'dev'))).toBe(false);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}, 180_000);
