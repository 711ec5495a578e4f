// `backupctl restore database <id|latest|path>`: restores into a new database on the
// restoring host (the verification host, else the database host), verifies it, and with
// --replace swaps it into the live database's place.
import type { Client } from '@temporalio/client';
import { restoreDatabase } from '../../workflows/index.js';
import { hostTaskQueue } from '../../common/types.js';
import type { RestoreDatabaseInput, RestoreDatabaseResult } from '../../common/restoreTypes.js';
import { validateRestoreDatabaseInput } from '../../workflows/inputValidation.js';
import { verificationHost, type Config } from '../../common/config.js';
import { formatBytes, type Printer } from '../output.js';
import { defaultWorkflowId, numberOption, refuseInvalid, startAndReport } from '../workflowRun.js';

export interface RestoreOptions {
  into?: string;
  replace?: boolean;
  jobs?: string;
  wait?: boolean;
  workflowId?: string;
  host?: string;
  allowUnsigned?: boolean;
}

/** The workflow's input, checked by the workflow's own check: throws InputRefused before anything starts. */
export function restoreDatabaseInput(config: Config, backup: string, options: RestoreOptions): RestoreDatabaseInput {
  return refuseInvalid(
    {
      hostTaskQueue: hostTaskQueue(options.host ?? verificationHost(config)),
      backup,
      into: options.into,
      replace: Boolean(options.replace),
      jobs: numberOption(options.jobs) as number | undefined,
      ...(options.allowUnsigned ? { allowUnsigned: true } : {}),
    },
    validateRestoreDatabaseInput,
  );
}

export async function runRestoreDatabase(client: Client, config: Config, backup: string, options: RestoreOptions, out: Printer): Promise<number> {
  return startRestoreDatabase(client, restoreDatabaseInput(config, backup, options), options, out);
}

export async function startRestoreDatabase(client: Client, input: RestoreDatabaseInput, options: RestoreOptions, out: Printer): Promise<number> {
  return startAndReport(
    client,
    restoreDatabase,
    { workflowId: options.workflowId ?? defaultWorkflowId('restore-database'), wait: options.wait, args: [input] },
    out,
    describeRestore,
  );
}

export function describeRestore(result: RestoreDatabaseResult): string {
  const { restored, inspection, swap, timing } = result;
  const from = 'path' in restored.copy ? restored.copy.path : `${restored.copy.repository}: ${restored.copy.key}`;
  return [
    `restored into database ${restored.database} from ${from} (${formatBytes(restored.plainBytes)}) in ${timing.totalSeconds.toFixed(1)} s`,
    ...(restored.warnings ?? []).map((w) => `  WARNING: ${w}`),
    ...restored.skipped.map((s) => `  skipped ${s.repository}: ${s.errorType}: ${s.reason}`),
    ...(restored.createdRoles.length ? [`  created roles from the backup's globals: ${restored.createdRoles.join(', ')}`] : []),
    `  rows: ${Object.entries(inspection.rowCounts).map(([t, n]) => `${t}=${n}`).join(', ') || '(no counts recorded)'}`,
    ...inspection.checks.map((c) => `  check ${c.name}: ${c.ok ? 'ok' : `FAILED ${c.detail}`}`),
    swap
      ? `  swapped into ${swap.live}; the old database is kept as ${swap.keptAs}; services started: ${swap.servicesStarted.join(', ')}`
      : '  the live database was not touched (use --replace to swap)',
  ].join('\n');
}
