// Files that hold a secret (a database password, the signing key, the key's passphrase) must
// be their owner's alone, as libpq requires of ~/.pgpass and ssh of a private key: a copy of
// the secret readable by every local account is no secret. A file owned by root may also be
// readable by its group (0640), the usual way to share it with a service account. A container
// secret (Docker's and Kubernetes' /run/secrets/, often 0444) is exempt: that mount is visible
// inside its container only.
import { statSync } from 'node:fs';
import path from 'node:path';
import { ErrorType } from '../common/types.js';
import { permanent } from './errors.js';

/** Throws InvalidConfig when `file` grants group or others more than the rule above allows. */
export function assertSecretFileMode(field: string, file: string): void {
  if (/^\/(var\/)?run\/secrets\//.test(path.resolve(file))) return;
  let info;
  try {
    info = statSync(file);
  } catch {
    // Missing or unreadable: the reader says so, with its own words.
    return;
  }
  // Not a file (a folder by mistake): the reader fails on it, with its own words.
  if (!info.isFile()) return;
  const mode = info.mode & 0o777;
  const allowed = info.uid === 0 ? 0o740 : 0o700;
  if ((mode & ~allowed) === 0) return;
  throw permanent(
    ErrorType.InvalidConfig,
    `${field} ${file} holds a secret but can be ${mode & 0o022 ? 'written' : 'read'} by ${mode & 0o007 ? 'every local account' : 'its group'} (mode ${mode.toString(8).padStart(4, '0')}); ` +
      `make it its owner's alone: chmod 600 ${file}${info.uid === 0 ? ' (or 640, owned by root, to share it with a group)' : ''}`,
  );
}
