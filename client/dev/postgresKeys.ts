// What PostgreSQL's archive_command and restore_command (the `postgres` OS user) read: the
// public encryption key (wal-push), the signing key's public half (wal-fetch replays WAL shipped
// elsewhere only with its entry's signature checked), and a keyring of its own for wal-fetch's
// decryption (a recovery host gives the PostgreSQL user its keyring the same way). Copied into
// `dir` (made 0755), readable or owned by that user. The dev stack and the chaos stack use it.
import { chmodSync, copyFileSync, cpSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { serverOwner } from '../../engine/localCluster.js';
import type { KeyPair } from './demoKeys.js';

export interface PostgresKeys {
  publicKeyFile: string;
  signingPublicKeyFile: string;
  /** A copy of the private keyring, owned by the postgres OS user. */
  privateHome: string;
}

export async function postgresReadableKeys(dir: string, keys: KeyPair): Promise<PostgresKeys> {
  const owner = serverOwner();
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  const publicKeyFile = path.join(dir, 'public.asc');
  copyFileSync(keys.publicKeyFile, publicKeyFile);
  chmodSync(publicKeyFile, 0o644);
  const signingPublicKeyFile = path.join(dir, 'signing-public.pem');
  copyFileSync(keys.signing.publicKeyFile, signingPublicKeyFile);
  chmodSync(signingPublicKeyFile, 0o644);
  const privateHome = path.join(dir, 'gnupg');
  cpSync(keys.privateHome, privateHome, { recursive: true, force: true, filter: (src) => !/S\.gpg-agent|\.lock$/.test(src) });
  if (owner.spawn.uid !== undefined) await execa('chown', ['-R', `${owner.spawn.uid}:${owner.spawn.gid}`, privateHome]);
  return { publicKeyFile, signingPublicKeyFile, privateHome };
}
