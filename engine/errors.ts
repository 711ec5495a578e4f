// Classifies failures once: which are permanent (fail the workflow now, with a message that
// names the problem) and which are transient (let Temporal retry). Unknown stays retryable.
// Plain typed errors: this code knows nothing of Temporal. The activities turn them into
// Temporal's failures in one place (activities/failures.ts).
import { ErrorType } from '../common/types.js';
import { redact } from '../common/redact.js';

/** A classified failure: its type (an ErrorType), whether a retry may help, and details for people. */
export class EngineError extends Error {
  override readonly name = 'EngineError';
  readonly type: ErrorType;
  readonly retryable: boolean;
  /** The opposite of retryable, named as Temporal names it. */
  readonly nonRetryable: boolean;
  readonly details?: Record<string, unknown>;

  constructor(type: ErrorType, message: string, options: { retryable: boolean; details?: Record<string, unknown>; cause?: Error }) {
    super(message, options.cause ? { cause: options.cause } : undefined);
    this.type = type;
    this.retryable = options.retryable;
    this.nonRetryable = !options.retryable;
    if (options.details) this.details = options.details;
  }
}

/** Whether err is an EngineError (also one made by another copy of this module). */
export function isEngineError(err: unknown): err is EngineError {
  return err instanceof EngineError || Boolean(err && typeof err === 'object' && (err as { name?: unknown }).name === 'EngineError' && typeof (err as { type?: unknown }).type === 'string');
}

export function permanent(type: ErrorType, message: string, details?: Record<string, unknown>): EngineError {
  return new EngineError(type, redact(message), { retryable: false, details });
}

export function transient(type: ErrorType, message: string, cause?: Error): EngineError {
  return new EngineError(type, redact(message), { retryable: true, cause });
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
  // The server went away mid-session (a crash, an immediate restart, a failover): libpq's and
  // node-postgres's words for it, and the server's own as it goes down or comes back.
  {
    pattern:
      /server closed the connection unexpectedly|terminating connection due to (administrator command|unexpected postmaster exit|crash of another server process)|the database system is in recovery mode|no connection to the server|could not receive data from server|could not send data to server|SSL SYSCALL error: EOF detected|Connection terminated unexpectedly|Connection terminated due to connection timeout|Client has encountered a connection error and is not queryable/i,
    type: ErrorType.DatabaseUnreachable,
    retryable: true,
  },
];

/** Turns an error from a database connection or a PostgreSQL tool into a classified failure. */
export function classifyDatabaseError(err: unknown, context: string): EngineError {
  if (isEngineError(err)) return err;
  const text = errorText(err);
  for (const rule of RULES) {
    if (rule.pattern.test(text)) {
      const message = `${context}: ${firstLines(text)}`;
      return rule.retryable ? transient(rule.type, message, asError(err)) : permanent(rule.type, message);
    }
  }
  return transient(ErrorType.DumpFailed, `${context}: ${firstLines(text)}`, asError(err));
}

/**
 * What a path error means, when no retry can change it: the disk is full, the file system is
 * read-only, access is forbidden, or the path is not what it must be (a file where a folder
 * belongs, a folder where a file belongs, a symlink loop). The path is named in the message.
 */
const PERMANENT_FILESYSTEM_ERRORS: Record<string, { type: ErrorType; reason: string }> = {
  ENOSPC: { type: ErrorType.DiskFull, reason: 'no space left on the device' },
  EDQUOT: { type: ErrorType.DiskFull, reason: 'the disk quota is exhausted' },
  EROFS: { type: ErrorType.StorageAccessDenied, reason: 'the file system is read-only' },
  EACCES: { type: ErrorType.StorageAccessDenied, reason: 'permission denied' },
  EPERM: { type: ErrorType.StorageAccessDenied, reason: 'operation not permitted' },
  ENOTDIR: { type: ErrorType.InvalidConfig, reason: 'a part of the path is a file, not a directory' },
  EEXIST: { type: ErrorType.InvalidConfig, reason: 'something that is not a directory is in the way' },
  EISDIR: { type: ErrorType.InvalidConfig, reason: 'it is a directory, where a file belongs' },
  ELOOP: { type: ErrorType.InvalidConfig, reason: 'too many levels of symbolic links' },
  ENAMETOOLONG: { type: ErrorType.InvalidConfig, reason: 'the path is too long' },
};

/** Errors from the filesystem: a full disk, a read-only or forbidden path, or a path of the wrong kind is permanent. */
/** The kernel's words for the errors PERMANENT_FILESYSTEM_ERRORS knows (and a missing file), as tools print them (strerror). */
const STRERROR: Array<[RegExp, string]> = [
  [/No space left on device/i, 'ENOSPC'],
  [/Disk quota exceeded/i, 'EDQUOT'],
  [/Read-only file system/i, 'EROFS'],
  [/Permission denied/i, 'EACCES'],
  [/Operation not permitted/i, 'EPERM'],
  [/Not a directory/i, 'ENOTDIR'],
  [/Is a directory/i, 'EISDIR'],
  [/Too many levels of symbolic links/i, 'ELOOP'],
  [/File name too long/i, 'ENAMETOOLONG'],
  [/No such file or directory/i, 'ENOENT'],
];

/** The errno code a tool's message reports (strerror's words), if any: for classifyFilesystemError. */
export function errnoOfMessage(message: string): string | undefined {
  return STRERROR.find(([pattern]) => pattern.test(message))?.[1];
}

export function classifyFilesystemError(err: unknown, context: string): EngineError {
  if (isEngineError(err)) return err;
  const { code, path: where } = (err ?? {}) as NodeJS.ErrnoException;
  const known = code ? PERMANENT_FILESYSTEM_ERRORS[code] : undefined;
  if (known) return permanent(known.type, `${context}: ${where ? `${where}: ` : ''}${known.reason} (${code})`);
  return transient(ErrorType.StorageUnreachable, `${context}: ${firstLines(errorText(err))}`, asError(err));
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
