// One word of a command PostgreSQL runs through /bin/sh (archive_command, restore_command):
// PostgreSQL first replaces %p, %f, %r and %% in the string, then the shell reads it.

/** Single-quoted for the shell, each % doubled for PostgreSQL: any path comes through unchanged. */
export function postgresCommandWord(value: string): string {
  return `'${value.replace(/'/g, `'\\''`).replace(/%/g, '%%')}'`;
}
