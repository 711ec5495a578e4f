// The application's services around a database swap: stopped so nothing writes to the old
// database mid-swap, and started again on every path. The commands are configuration
// (default `systemctl stop|start <unit>`, the seed's units); stopping a stopped unit and
// starting a running one are no-ops for systemctl, so both steps may be retried.
import { ErrorType } from '../common/types.js';
import type { Config } from '../common/config.js';
import { errorText, permanent, transient } from './errors.js';
import { runCommand } from './exec.js';

export type ServiceAction = 'stop' | 'start';

export async function runServiceCommands(config: Config, action: ServiceAction, signal?: AbortSignal): Promise<string[]> {
  const { units, stopCommand, startCommand } = config.restore.services;
  const [file, ...args] = action === 'stop' ? stopCommand : startCommand;
  // Started in the reverse order of stopping: workers before the web app's scheduler, say.
  const ordered = action === 'stop' ? units : [...units].reverse();
  for (const unit of ordered) {
    try {
      await runCommand(file, [...args, unit], { signal });
    } catch (err) {
      const text = `${action} ${unit}: \`${[file, ...args, unit].join(' ')}\` failed: ${errorText(err)}`;
      if ((err as { code?: string }).code === 'ENOENT') throw permanent(ErrorType.ServiceCommandFailed, text);
      throw transient(ErrorType.ServiceCommandFailed, text);
    }
  }
  return ordered;
}
