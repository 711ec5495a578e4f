// Finds the binaries that scripts/setup.sh installs into the project-local .tools folder.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../common/runtime.js';

export { PROJECT_ROOT };

/** A tool from .tools/venv/bin, else from PATH. */
export function projectTool(name: 'temporal' | 'temporal-test-server' | 'weed'): string {
  const local = path.join(PROJECT_ROOT, '.tools', 'venv', 'bin', name);
  return existsSync(local) ? local : name;
}
