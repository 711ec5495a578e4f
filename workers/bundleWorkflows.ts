// Bundles the workflow code into a file, in a process of its own: webpack and swc leave about
// 90 MiB behind in whatever process runs them, and the worker should not carry that for days.
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';
import { codeFile } from '../common/runtime.js';

export const WORKFLOWS_PATH = codeFile('workflows/index.ts');

const silent = () => undefined;
export const quietBundlerLogger = {
  log: silent,
  trace: silent,
  debug: silent,
  info: silent,
  warn: (message: string, meta?: object) => console.warn(message, meta ?? ''),
  error: (message: string, meta?: object) => console.error(message, meta ?? ''),
};

/** failureConverterPath: the failure converter workflow code uses (payload encryption's); default the SDK's. */
export async function writeWorkflowBundle(outFile: string, failureConverterPath?: string): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, failureConverterPath, logger: quietBundlerLogger });
  await writeFile(outFile, code, { mode: 0o600 });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await writeWorkflowBundle(process.argv[2], process.argv[3]);
}
