// pino for the process, and Temporal's workflow and activity loggers routed into it, so
// every line is structured JSON with workflowId / activityId and never a secret.
import { DefaultLogger, Runtime, type LogEntry, type LogLevel } from '@temporalio/worker';
import pino, { type Logger } from 'pino';
import { REDACT_PATHS, redact } from '../common/redact.js';

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  // stderr: stdout belongs to the CLI's --json output.
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '***' },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

let installed = false;

/** Routes the Temporal runtime's logs (SDK, workflow `log`, activity `log`) to pino, and exports its metrics when asked; once per process. */
export function installTemporalLogging(logger: Logger, options: { sdkMetricsPort?: number } = {}): void {
  if (installed) return;
  installed = true;
  const temporalLevel = (logger.level.toUpperCase() === 'FATAL' ? 'ERROR' : logger.level.toUpperCase()) as LogLevel;
  Runtime.install({
    // The SDK's own metrics (workflow and activity task latencies, pollers, ...), on loopback:
    // the worker's metrics endpoint serves them after the backups' (workers/metrics.ts).
    ...(options.sdkMetricsPort ? { telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${options.sdkMetricsPort}` } } } } : {}),
    logger: new DefaultLogger(temporalLevel, (entry: LogEntry) => {
      logger[PINO_LEVEL[entry.level]]({ ...(entry.meta ?? {}) }, redact(entry.message));
    }),
  });
}
