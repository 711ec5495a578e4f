// `backupctl drill`: the monthly recovery drill, on demand, on the drill host from the offsite copy.
import type { Client } from '@temporalio/client';
import { recoveryDrill } from '../../workflows/index.js';
import { hostTaskQueue } from '../../common/types.js';
import type { DrillReport, RecoveryDrillInput } from '../../common/restoreTypes.js';
import { validateRecoveryDrillInput } from '../../workflows/inputValidation.js';
import { ConfigError, drillRepository, type Config } from '../../common/config.js';
import type { Printer } from '../output.js';
import { defaultWorkflowId, refuseInvalid, startAndReport } from '../workflowRun.js';

export function drillInput(config: Config, backup = 'latest', options: { allowUnsigned?: boolean } = {}): RecoveryDrillInput {
  if (!config.drill.host) throw new ConfigError('drill.host is not set: the drill runs on a host other than the database host, with its own worker');
  const repository = drillRepository(config);
  if (!repository) throw new ConfigError('drill.repository is not set and no S3 repository is configured: the drill restores the offsite copy');
  return refuseInvalid(
    { hostTaskQueue: hostTaskQueue(config.drill.host), repository, backup, healthUrl: config.drill.healthUrl, ...(options.allowUnsigned ? { allowUnsigned: true } : {}) },
    validateRecoveryDrillInput,
  );
}

export async function runDrill(client: Client, config: Config, options: { wait?: boolean; workflowId?: string; backup?: string }, out: Printer): Promise<number> {
  return startDrill(client, drillInput(config, options.backup), options, out);
}

export async function startDrill(client: Client, input: RecoveryDrillInput, options: { wait?: boolean; workflowId?: string }, out: Printer): Promise<number> {
  return startAndReport(
    client,
    recoveryDrill,
    { workflowId: options.workflowId ?? defaultWorkflowId('recovery-drill'), wait: options.wait, args: [input] },
    out,
    describeDrill,
  );
}

export function describeDrill(report: DrillReport): string {
  return [
    `recovery drill ${report.ok ? 'passed' : 'FAILED'} on ${report.host} from ${report.repository}: backup ${report.backupId}`,
    ...(report.restored?.warnings ?? []).map((w) => `  WARNING: ${w}`),
    `  recovery time (RTO) ${report.rtoSeconds?.toFixed(1) ?? '-'} s; data age (RPO) ${report.rpoSeconds?.toFixed(0) ?? '-'} s`,
    ...(report.inspection?.checks ?? []).map((c) => `  check ${c.name}: ${c.ok ? 'ok' : `FAILED ${c.detail}`}`),
    ...(report.health ? [`  ${report.health.name}: ${report.health.ok ? 'ok' : 'FAILED'} ${report.health.detail}`] : []),
    `  drill database ${report.torndown ? 'torn down' : 'NOT torn down'}`,
  ].join('\n');
}
