// The one place that decides what a secret looks like in text we log or report.

const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)([^@\s]+)(@)/gi;
const KEY_VALUE = /\b([A-Za-z_]*(?:password|passwd|secret|token|passphrase)[A-Za-z_]*)(\s*[=:]\s*)("[^"]*"|'[^']*'|\S+)/gi;

/** Hides passwords in connection strings and key=value pairs. */
export function redact(text: string): string {
  return text.replace(URL_PASSWORD, '$1***$3').replace(KEY_VALUE, '$1$2***');
}

/** pino redaction paths for the same secrets, wherever they appear in a log object. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'secretAccessKey',
  '*.secretAccessKey',
  'env.PGPASSWORD',
  'env.AWS_SECRET_ACCESS_KEY',
  'databaseUrl',
  '*.databaseUrl',
];
