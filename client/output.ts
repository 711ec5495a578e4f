// What the CLI prints: exactly one JSON object on stdout with --json, text for people
// otherwise; diagnostics go to stderr either way.
import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { ConfigError } from '../common/config.js';
import { isEngineError } from '../engine/errors.js';

export { formatBytes } from '../common/formatBytes.js';

export interface Printer {
  json: boolean;
  result(value: object, human: () => string): void;
}

export function printer(json: boolean): Printer {
  return {
    json,
    result(value, human) {
      process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : human() + '\n');
    },
  };
}

/** Type and message of whatever failed, as the operator should read them. */
export function failureOf(err: unknown): { type: string; message: string } {
  if (err instanceof WorkflowFailedError) {
    const cause = err.cause;
    if (cause instanceof ApplicationFailure) return { type: cause.type ?? 'WorkflowFailed', message: cause.message };
    return { type: cause?.name ?? 'WorkflowFailed', message: cause?.message ?? err.message };
  }
  if (err instanceof ConfigError) return { type: err.type, message: err.message };
  if (isEngineError(err)) return { type: err.type, message: err.message };
  if (err instanceof ApplicationFailure) return { type: err.type ?? 'Error', message: err.message };
  if (err instanceof Error) return { type: err.name, message: err.message };
  return { type: 'Error', message: String(err) };
}

