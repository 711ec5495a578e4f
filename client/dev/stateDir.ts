// The dev stack's state folder must be this user's own, below folders no other user may
// rearrange: the stack writes there the wrapper script, the configuration and the S3 keys that
// the operator (root, often) runs and reads next. A folder another user made first (in /tmp, say)
// or could rename away and replace is refused before anything is written.
import { existsSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';

const OTHERS_WRITE = 0o002;
const STICKY = 0o1000;

/** Throws when `dir` (or, not made yet, the nearest folder above it), or a folder above that, belongs to another user or is theirs to rearrange. */
export function assertOwnStateDir(dir: string): void {
  const mine = process.getuid?.();
  if (mine === undefined) return;
  let existing = path.resolve(dir);
  while (!existsSync(existing)) existing = path.dirname(existing);
  for (let current = realpathSync(existing); ; current = path.dirname(current)) {
    const stat = statSync(current);
    if (stat.uid !== mine && stat.uid !== 0) {
      throw new Error(`--dir ${dir}: ${current} is owned by uid ${stat.uid}, another user, who could replace what the dev stack writes there; choose a folder of your own`);
    }
    // World-writable without the sticky bit (which /tmp has): anyone may rename what is in it.
    if (stat.mode & OTHERS_WRITE && !(stat.mode & STICKY)) {
      throw new Error(`--dir ${dir}: ${current} may be written by any user (mode ${(stat.mode & 0o7777).toString(8)}), who could replace what the dev stack keeps below it; choose a folder of your own`);
    }
    if (current === path.dirname(current)) return;
  }
}
