// The dev stack's OpenPGP key pair. The public half is what the backup worker gets; the
// private half stays in its own keyring, standing in for the restore host's key.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { runCommand } from '../../activities/exec.js';

export interface KeyPair {
  publicKeyFile: string;
  /** GNUPGHOME holding the private key (for restores and checks). */
  privateHome: string;
  fingerprint: string;
}

/**
 * The key pair in `dir`, made when missing. With `passphraseFile`, a new private key is
 * protected by the passphrase in that file (read by gpg: never on its command line).
 */
export async function ensureKeyPair(dir: string, uid = 'backupctl dev <backupctl-dev@localhost.invalid>', passphraseFile?: string): Promise<KeyPair> {
  const privateHome = path.join(dir, 'private-gnupg');
  const publicKeyFile = path.join(dir, 'backup-public.asc');
  mkdirSync(privateHome, { recursive: true, mode: 0o700 });
  const gpg = (args: string[]) => runCommand('gpg', ['--homedir', privateHome, '--batch', '--no-tty', ...args]);
  let fingerprint = fingerprintOf((await gpg(['--with-colons', '--list-secret-keys']).catch(() => ({ stdout: '' }))).stdout);
  if (!fingerprint) {
    const protection = passphraseFile ? ['--pinentry-mode', 'loopback', '--passphrase-file', passphraseFile] : ['--passphrase', ''];
    await gpg([...protection, '--quick-gen-key', uid, 'ed25519', 'sign', 'never']);
    fingerprint = fingerprintOf((await gpg(['--with-colons', '--list-secret-keys'])).stdout)!;
    await gpg([...protection, '--quick-add-key', fingerprint, 'cv25519', 'encr', 'never']);
  }
  if (!existsSync(publicKeyFile)) await gpg(['--armor', '--output', publicKeyFile, '--export', fingerprint]);
  return { publicKeyFile, privateHome, fingerprint };
}

function fingerprintOf(colons: string): string | undefined {
  const lines = colons.split('\n');
  const sec = lines.findIndex((l) => l.startsWith('sec:'));
  if (sec < 0) return undefined;
  return lines.slice(sec + 1).find((l) => l.startsWith('fpr:'))?.split(':')[9];
}
