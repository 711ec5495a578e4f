// Where this code runs from: the TypeScript sources (through tsx, in development and tests) or
// the JavaScript that `npm run build` compiles into dist/ (what bin/backupctl.js, the worker and
// the Docker image run). Paths to our own files are made here, so they hold in both.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(import.meta.url);

/** True when running the compiled JavaScript in dist/. */
export const COMPILED = here.endsWith('.js');

/** The folder holding common/, engine/, workflows/, activities/, workers/ and client/: the project, or its dist/. */
export const CODE_ROOT = path.resolve(path.dirname(here), '..');

/** The project's folder (package.json, bin/, .tools/). */
export const PROJECT_ROOT = COMPILED ? path.resolve(CODE_ROOT, '..') : CODE_ROOT;

/** A module of ours by its source path (`workers/bundleWorkflows.ts`), as it runs here: the source or its compiled file. */
export function codeFile(sourcePath: string): string {
  return path.join(CODE_ROOT, COMPILED ? sourcePath.replace(/\.ts$/, '.js') : sourcePath);
}

/** The CLI that PostgreSQL's restore_command runs (wal-fetch). */
export const CLI_PATH = path.join(PROJECT_ROOT, 'bin', 'backupctl.js');
