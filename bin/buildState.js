// Is dist/ (the compiled JavaScript, `npm run build`) as new as the TypeScript sources beside
// it? In a checkout being edited the answer may be no, and then the sources run through tsx;
// where there are no sources (the Docker image) the build is all there is.
//   node bin/buildState.js   exits 0 when the build is current, 1 when it is missing or stale.
import { readdirSync, statSync } from 'node:fs';
import process from 'node:process';
import { URL, fileURLToPath } from 'node:url';
import path from 'node:path';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Written by `npm run build` when dist/ is complete. */
export const BUILD_STAMP = path.join('dist', '.built');
const SOURCE_FOLDERS = ['common', 'engine', 'workflows', 'activities', 'workers', 'client'];

/** The newest modification time (ms) of a source file (.ts, .cjs; the dashboard page's .js, .html, .css) under the source folders; 0 when there are none. */
function newestSource(root) {
  let newest = 0;
  const walk = (dir) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (/\.(ts|cjs|js|html|css)$/.test(entry.name)) newest = Math.max(newest, statSync(file).mtimeMs);
    }
  };
  for (const folder of SOURCE_FOLDERS) walk(path.join(root, folder));
  return newest;
}

/** True when the project's dist/ holds a finished build at least as new as every source file. */
export function buildIsCurrent(root = ROOT) {
  let built;
  try {
    built = statSync(path.join(root, BUILD_STAMP)).mtimeMs;
  } catch {
    return false;
  }
  return newestSource(root) <= built;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  process.exitCode = buildIsCurrent() ? 0 : 1;
}
