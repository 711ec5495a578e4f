// Classifies failures once: which are permanent (fail the workflow now, with a message that
// names the problem) and which are transient (let Temporal retry). Unknown stays retryable.
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../workflows/types.js';
import { redact } from './redact.js';

export function permanent(type: ErrorType, message: string, details?: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({ type, message: redact(message), nonRetryable: true, details: details ? [details] : undefined });
}

export function transient(type: ErrorType, message: string, cause?: Error): ApplicationFailure {
  return ApplicationFailure.create({ type, message: redact(message), nonRetryable: false, cause });
}

interface Rule {
  pattern: RegExp;
  type: ErrorType;
  retryable: boolean;
}

// Messages from libpq, pg_dump, gpg and the kernel, in the order they should be tried.
const RULES: Rule[] = [
  { pattern: /database "[^"]*" does not exist/i, type: ErrorType.UnknownDatabase, retryable: false },
  { pattern: /password authentication failed|no password supplied|no pg_hba\.conf entry|role "[^"]*" does not exist/i, type: ErrorType.AuthenticationFailed, retryable: false },
  { pattern: /permission denied for|must be superuser|must be owner/i, type: ErrorType.PermissionDenied, retryable: false },
  { pattern: /ENOSPC|No space left on device/i, type: ErrorType.DiskFull, retryable: false },
  { pattern: /ECONNREFUSED|Connection refused|could not connect|ETIMEDOUT|ECONNRESET|EHOSTUNREACH|the database system is (starting up|shutting down)|timeout expired/i, type: ErrorType.DatabaseUnreachable, retryable: true },
];

/** Turns an error from a database connection or a PostgreSQL tool into a classified failure. */
export function classifyDatabaseError(err: unknown, context: string): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const text = errorText(err);
  for (const rule of RULES) {
    if (rule.pattern.test(text)) {
      const message = `${context}: ${firstLines(text)}`;
      return rule.retryable ? transient(rule.type, message, asError(err)) : permanent(rule.type, message);
    }
  }
  return transient(ErrorType.DumpFailed, `${context}: ${firstLines(text)}`, asError(err));
}

/** Errors from the filesystem: a full disk or a read-only or forbidden path is permanent. */
export function classifyFilesystemError(err: unknown, context: string): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const text = `${context}: ${firstLines(errorText(err))}`;
  if (code === 'ENOSPC' || code === 'EDQUOT') return permanent(ErrorType.DiskFull, text);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return permanent(ErrorType.StorageAccessDenied, text);
  return transient(ErrorType.StorageUnreachable, text, asError(err));
}

export function errorText(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { stderr?: unknown; shortMessage?: unknown; message?: unknown };
    const stderr = typeof e.stderr === 'string' ? e.stderr.trim() : '';
    const message = typeof e.shortMessage === 'string' ? e.shortMessage : typeof e.message === 'string' ? e.message : String(err);
    return redact(stderr ? `${stderr}\n${message}` : message);
  }
  return redact(String(err));
}

function firstLines(text: string, max = 6): string {
  return text.split('\n').filter(Boolean).slice(0, max).join(' | ');
}

function asError(err: unknown): Error | undefined {
  return err instanceof Error ? err : undefined;
}
